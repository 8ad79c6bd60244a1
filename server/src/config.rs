//! `avocet serve` configuration: flags, environment and an optional YAML file, merged and checked.
//!
//! Precedence: a flag (or its environment variable) wins over the file, which wins over the
//! default. Every problem names the setting and the bad value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use avocet_consensus::{NodeId, Timing};
use serde::Deserialize;

/// Gives the public gRPC address when none is set (the async-DR guide's port 9001).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9001";

/// Gives the Raft peer address when none is set (the async-DR guide's port 9010).
pub const DEFAULT_RAFT_LISTEN: &str = "0.0.0.0:9010";

/// Gives the Prometheus metrics address when none is set.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9002";

/// Gives the stage deadline when none is set: six hours.
pub const DEFAULT_STAGE_DEADLINE: Duration = Duration::from_secs(6 * 60 * 60);

/// Bounds `--clock-skew-ms`, in milliseconds (one day).
pub const CLOCK_SKEW_MS_MAX: i64 = 24 * 60 * 60 * 1000;

/// Says why the configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// Names the setting, e.g. `--peers`.
    pub setting: String,
    /// Says what is wrong, quoting the bad value.
    pub message: String,
}

fn error(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.to_owned(), message: message.into() }
}

/// Holds the settings given on the command line (each `None` when not given).
#[derive(Debug, Clone, Default)]
pub struct ServeFlags {
    /// Gives `--config`.
    pub config: Option<PathBuf>,
    /// Gives `--id`.
    pub id: Option<NodeId>,
    /// Gives `--listen`.
    pub listen: Option<String>,
    /// Gives `--raft-listen`.
    pub raft_listen: Option<String>,
    /// Gives `--raft-advertise`.
    pub raft_advertise: Option<String>,
    /// Gives `--peers`.
    pub peers: Option<String>,
    /// Gives `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// Gives `--bootstrap`.
    pub bootstrap: bool,
    /// Gives `--statefulset` (the headless Service's domain the pods are named under).
    pub statefulset: Option<String>,
    /// Gives `--replicas` (or `AVOCET_REPLICAS`): the StatefulSet's size.
    pub replicas: Option<u64>,
    /// Gives the host name (`HOSTNAME`, else the kernel's) the StatefulSet ordinal is read from.
    pub hostname: Option<String>,
    /// Gives `--admin-token` (or `AVOCET_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Gives `--peer-token` (or `AVOCET_PEER_TOKEN`).
    pub peer_token: Option<String>,
    /// Gives `--heartbeat-ms` (hidden; tests use fast clocks).
    pub heartbeat_ms: Option<u64>,
    /// Gives `--election-timeout-ms MIN-MAX` (hidden).
    pub election_timeout_ms: Option<String>,
    /// Gives `--worker-token` (or `AVOCET_WORKER_TOKEN`).
    pub worker_token: Option<String>,
    /// Gives `--timezone`.
    pub timezone: Option<String>,
    /// Gives `--stage-deadline`.
    pub stage_deadline: Option<String>,
    /// Gives `--metrics-listen`.
    pub metrics_listen: Option<String>,
    /// Gives `--clock-scale` (hidden; tests run minute policies every second).
    pub clock_scale: Option<f64>,
    /// Gives `--clock-epoch` (hidden).
    pub clock_epoch: Option<String>,
    /// Gives `--clock-skew-ms` (hidden; the chaos tests' wrong clock).
    pub clock_skew_ms: Option<i64>,
    /// Gives `--tls-cert` (PEM certificate chain of the public API).
    pub tls_cert: Option<PathBuf>,
    /// Gives `--tls-key` (PEM private key of the public API).
    pub tls_key: Option<PathBuf>,
    /// Gives `--pair-check-interval`.
    pub pair_check_interval: Option<String>,
    /// Gives `--kubeconfig` (the source cluster the controller watches).
    pub kubeconfig: Option<PathBuf>,
    /// Gives `--store` (the object store volumes go through).
    pub store: Option<String>,
    /// Gives `--store-key-file` (the secret the store's key is derived from).
    pub store_key_file: Option<PathBuf>,
    /// Gives `--volume-root` (where this node, as a destination, restores volumes).
    pub volume_root: Option<PathBuf>,
    /// Gives `--workers` (migrations this node's worker pool runs at once).
    pub workers: Option<u32>,
    /// Gives `--master-key-file` (the key credentials are sealed with).
    pub master_key_file: Option<PathBuf>,
}

/// Holds the settings of a YAML configuration file; keys mirror the flags in camelCase.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Gives `id`.
    pub id: Option<NodeId>,
    /// Gives `listen`.
    pub listen: Option<String>,
    /// Gives `raftListen`.
    pub raft_listen: Option<String>,
    /// Gives `raftAdvertise`.
    pub raft_advertise: Option<String>,
    /// Gives `peers` as `id=host:port,…` or a list of such entries.
    pub peers: Option<PeersSetting>,
    /// Gives `dataDir`.
    pub data_dir: Option<PathBuf>,
    /// Gives `bootstrap`.
    pub bootstrap: Option<bool>,
    /// Gives `adminToken`.
    pub admin_token: Option<String>,
    /// Gives `peerToken`.
    pub peer_token: Option<String>,
    /// Gives `workerToken`.
    pub worker_token: Option<String>,
    /// Gives `timezone`.
    pub timezone: Option<String>,
    /// Gives `stageDeadline`.
    pub stage_deadline: Option<String>,
    /// Gives `metricsListen`.
    pub metrics_listen: Option<String>,
    /// Gives `tlsCert`.
    pub tls_cert: Option<PathBuf>,
    /// Gives `tlsKey`.
    pub tls_key: Option<PathBuf>,
    /// Gives `pairCheckInterval`.
    pub pair_check_interval: Option<String>,
    /// Gives `kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// Gives `store`.
    pub store: Option<String>,
    /// Gives `storeKeyFile`.
    pub store_key_file: Option<PathBuf>,
    /// Gives `volumeRoot`.
    pub volume_root: Option<PathBuf>,
    /// Gives `workers`.
    pub workers: Option<u32>,
    /// Gives `masterKeyFile`.
    pub master_key_file: Option<PathBuf>,
}

/// Holds the `peers` setting of a file: one string or a list of `id=host:port` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PeersSetting {
    /// `1=host:port,2=host:port`.
    Text(String),
    /// `["1=host:port", "2=host:port"]`.
    List(Vec<String>),
}

impl ConfigFile {
    /// Reads a YAML configuration file.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| error("--config", format!("cannot read {shown}: {e}")))?;
        serde_saphyr::from_str(&text).map_err(|e| error("--config", format!("{shown}: {e}")))
    }
}

/// Holds a checked configuration of one node.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Names this node (1 or more).
    pub id: NodeId,
    /// Gives the public gRPC address.
    pub listen: SocketAddr,
    /// Gives the Raft peer address to bind.
    pub raft_listen: SocketAddr,
    /// Gives the Raft address peers reach this node at.
    pub raft_advertise: String,
    /// Lists the group's nodes and Raft addresses (may be empty to join later).
    pub peers: BTreeMap<NodeId, String>,
    /// Names the data directory.
    pub data_dir: PathBuf,
    /// Creates a new group if the data directory holds none.
    pub bootstrap: bool,
    /// Holds the token clients must present for admin calls.
    pub admin_token: String,
    /// Holds the token peers present on Raft calls.
    pub peer_token: String,
    /// Sets Raft's clocks.
    pub timing: Timing,
    /// Holds the token workers present (None: only the admin token opens the worker calls).
    pub worker_token: Option<String>,
    /// Names the zone of policies without `policy.timezone`.
    pub timezone: String,
    /// Bounds how long a migration may stay in one stage.
    pub stage_deadline: Duration,
    /// Gives the Prometheus metrics address.
    pub metrics_listen: SocketAddr,
    /// Scales the clock: `epoch + (now − epoch) × scale` (tests only; 1 in production).
    pub clock_scale: f64,
    /// Gives the scaled clock's epoch.
    pub clock_epoch: Option<chrono::DateTime<chrono::Utc>>,
    /// Moves this node's clock (before scaling), to test that one wrong clock changes nothing.
    pub clock_skew: chrono::TimeDelta,
    /// Holds the public API's PEM certificate chain and key when it serves TLS.
    pub tls: Option<TlsFiles>,
    /// Spaces the leader's checks of every ClusterPair's destination.
    pub pair_check_interval: Duration,
    /// Names the kubeconfig of the source cluster whose Stork resources the controller mirrors
    /// (no controller without it).
    pub kubeconfig: Option<PathBuf>,
    /// Says where volume data goes (default: the local-directory store under the data dir).
    pub store: avocet_transfer::store::StoreUrl,
    /// Holds the secret the store's encryption key is derived from (no workers and no
    /// restores without it: there is no built-in key).
    pub store_key: Option<Secret>,
    /// Names the folder this node, as a destination, restores volumes into.
    pub volume_root: Option<PathBuf>,
    /// Says how many migrations this node's worker pool runs at once (0: no pool).
    pub workers: u32,
    /// Holds the secret credentials are sealed with (no credentials can be stored without).
    pub master_key: Option<Secret>,
    /// Says where this node sits in its StatefulSet, when started with `--statefulset`.
    pub statefulset: Option<StatefulSetSeat>,
}

/// A node's place in a StatefulSet: its pod name is `<name>-<ordinal>`, and every pod is
/// reached as `<name>-<i>.<domain>` through the headless Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSetSeat {
    /// The StatefulSet's name (the pod name without `-<ordinal>`).
    pub name: String,
    /// This pod's ordinal (node id = ordinal + 1).
    pub ordinal: u64,
    /// The headless Service's domain, e.g. `avocet-peers.avocet.svc.cluster.local`.
    pub domain: String,
    /// The StatefulSet's size.
    pub replicas: u64,
}

impl StatefulSetSeat {
    /// Reads the seat from a pod's host name, `<name>-<ordinal>`.
    pub fn from_hostname(
        hostname: &str,
        domain: &str,
        replicas: u64,
    ) -> Result<StatefulSetSeat, ConfigError> {
        let hostname = hostname.trim();
        let parsed = hostname
            .rsplit_once('-')
            .and_then(|(name, ordinal)| Some((name, ordinal.parse::<u64>().ok()?)))
            .filter(|(name, _)| !name.is_empty());
        let Some((name, ordinal)) = parsed else {
            return Err(error(
                "--statefulset",
                format!(
                    "the host name {hostname:?} does not end in -<ordinal> as a StatefulSet pod's does (set HOSTNAME)"
                ),
            ));
        };
        if domain.is_empty() || domain.contains(':') || domain.contains('/') {
            return Err(error(
                "--statefulset",
                format!(
                    "{domain:?} is not a DNS domain such as avocet-peers.avocet.svc.cluster.local"
                ),
            ));
        }
        if replicas == 0 || ordinal >= replicas {
            return Err(error(
                "--replicas",
                format!(
                    "{replicas} does not include this pod's ordinal {ordinal} ({hostname}); give the StatefulSet's replicas"
                ),
            ));
        }
        Ok(StatefulSetSeat { name: name.to_owned(), ordinal, domain: domain.to_owned(), replicas })
    }

    /// Pod `ordinal`'s host name under the headless Service.
    pub fn host(&self, ordinal: u64) -> String {
        format!("{}-{ordinal}.{}", self.name, self.domain)
    }

    /// Every pod as a peer: node `i + 1` at `<name>-<i>.<domain>:<port>`.
    pub fn peers(&self, port: u16) -> BTreeMap<NodeId, String> {
        (0..self.replicas).map(|i| (i + 1, format!("{}:{port}", self.host(i)))).collect()
    }
}

/// Reads a key file of at least 32 bytes of secret.
fn read_secret(setting: &str, key_file: &Path) -> Result<Secret, ConfigError> {
    let material = std::fs::read(key_file)
        .map_err(|e| error(setting, format!("{} cannot be read: {e}", key_file.display())))?;
    let least = avocet_transfer::seal::KEY_MATERIAL_MIN;
    if material.len() < least {
        return Err(error(
            setting,
            format!(
                "{} holds {} bytes; at least {least} bytes of secret are needed",
                key_file.display(),
                material.len()
            ),
        ));
    }
    Ok(Secret(material))
}

/// Holds secret bytes, never printed.
#[derive(Clone)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Holds a PEM certificate chain and private key, read at start-up.
#[derive(Clone)]
pub struct TlsFiles {
    /// Holds the certificate chain.
    pub cert: Vec<u8>,
    /// Holds the private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles").field("cert_bytes", &self.cert.len()).finish_non_exhaustive()
    }
}

/// How often the leader re-checks every ClusterPair unless told otherwise.
pub const DEFAULT_PAIR_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Parses a duration like `6h`, `90m`, `45s` or `1h30m`.
pub fn parse_duration(setting: &str, text: &str) -> Result<Duration, ConfigError> {
    let bad = || error(setting, format!("{text:?} is not a duration like 6h, 90m or 45s"));
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        total = total.checked_add(value.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    if total > avocet_scheduler::catalog::STAGE_DEADLINE_MAX_SECONDS {
        return Err(error(setting, format!("{text:?} is longer than ten years")));
    }
    Ok(Duration::from_secs(total))
}

/// Parses `--peers id=host:port,...`: ids are 1 or more, each listed once, addresses host:port.
pub fn parse_peers(
    setting: &str,
    entries: &[&str],
) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for entry in
        entries.iter().flat_map(|text| text.split(',')).map(str::trim).filter(|e| !e.is_empty())
    {
        let (id, address) = entry
            .split_once('=')
            .ok_or_else(|| error(setting, format!("{entry:?} is not id=host:port")))?;
        let id: NodeId = id.trim().parse().ok().filter(|id| *id >= 1).ok_or_else(|| {
            error(setting, format!("{id:?} in {entry:?} is not a node id (1 or more)"))
        })?;
        let address = address.trim();
        check_host_port(setting, address)?;
        if peers.insert(id, address.to_owned()).is_some() {
            return Err(error(setting, format!("node {id} is listed twice")));
        }
    }
    Ok(peers)
}

fn check_host_port(setting: &str, address: &str) -> Result<(), ConfigError> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(error(setting, format!("{address:?} is not host:port")));
    };
    if host.is_empty() || !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return Err(error(setting, format!("{address:?} is not host:port")));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(error(
            setting,
            format!("{address:?} is not host:port (write IPv6 addresses as [::1]:9010)"),
        ));
    }
    Ok(())
}

/// Names a setting as the user wrote it: the flag, or the key in the configuration file.
fn label(flag: &str, key: &str, from_flag: bool, file: Option<&Path>) -> String {
    match (from_flag, file) {
        (false, Some(path)) => format!("{key} (in {})", path.display()),
        _ => flag.to_owned(),
    }
}

fn socket(setting: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| error(setting, format!("{text:?} is not an address like 0.0.0.0:9001")))
}

fn parse_election(text: &str) -> Result<(u64, u64), ConfigError> {
    let setting = "--election-timeout-ms";
    let (low, high) =
        text.split_once('-').ok_or_else(|| error(setting, format!("{text:?} is not MIN-MAX")))?;
    let parse = |part: &str| {
        part.trim().parse::<u64>().map_err(|_| error(setting, format!("{text:?} is not MIN-MAX")))
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if low == 0 || high <= low {
        return Err(error(setting, format!("{text:?} needs 0 < MIN < MAX")));
    }
    Ok((low, high))
}

impl ServeConfig {
    /// Merges flags over the file over defaults, and checks the result.
    pub fn resolve(flags: ServeFlags) -> Result<ServeConfig, ConfigError> {
        let file = match &flags.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let path = flags.config.as_deref();
        let id_label = label("--id", "id", flags.id.is_some(), path);
        let seat = match &flags.statefulset {
            Some(domain) => {
                let hostname = match &flags.hostname {
                    Some(name) => name.clone(),
                    None => {
                        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default()
                    }
                };
                let replicas = flags.replicas.ok_or_else(|| {
                    error("--replicas", "is required with --statefulset (or AVOCET_REPLICAS): give the StatefulSet's replicas")
                })?;
                Some(StatefulSetSeat::from_hostname(&hostname, domain, replicas)?)
            }
            None => None,
        };
        let id = flags
            .id
            .or(file.id)
            .or(seat.as_ref().map(|seat| seat.ordinal + 1))
            .ok_or_else(|| error("--id", "is required: give this node's id (1 or more)"))?;
        if let Some(seat) = &seat
            && id != seat.ordinal + 1
        {
            return Err(error(
                &id_label,
                format!(
                    "{id} is not ordinal {} + 1 of --statefulset's pod; leave --id out",
                    seat.ordinal
                ),
            ));
        }
        if id == 0 {
            return Err(error(&id_label, "0 is not a node id (use 1 or more)"));
        }
        let listen = socket(
            &label("--listen", "listen", flags.listen.is_some(), path),
            flags.listen.as_deref().or(file.listen.as_deref()).unwrap_or(DEFAULT_LISTEN),
        )?;
        let raft_listen = socket(
            &label("--raft-listen", "raftListen", flags.raft_listen.is_some(), path),
            flags
                .raft_listen
                .as_deref()
                .or(file.raft_listen.as_deref())
                .unwrap_or(DEFAULT_RAFT_LISTEN),
        )?;
        let peers = match (&flags.peers, &file.peers) {
            (Some(text), _) => parse_peers("--peers", &[text])?,
            (None, Some(PeersSetting::Text(text))) => {
                parse_peers(&label("--peers", "peers", false, path), &[text])?
            }
            (None, Some(PeersSetting::List(list))) => parse_peers(
                &label("--peers", "peers", false, path),
                &list.iter().map(String::as_str).collect::<Vec<_>>(),
            )?,
            (None, None) => match &seat {
                Some(seat) => seat.peers(raft_listen.port()),
                None => BTreeMap::new(),
            },
        };
        if seat.is_some() && (flags.peers.is_some() || file.peers.is_some()) {
            return Err(error(
                "--peers",
                "cannot be given with --statefulset, which names every pod itself",
            ));
        }
        if !peers.is_empty() && !peers.contains_key(&id) {
            return Err(error(
                &label("--peers", "peers", flags.peers.is_some(), path),
                format!("does not list node {id} (this node); list every node of the group"),
            ));
        }
        let advertise_label =
            label("--raft-advertise", "raftAdvertise", flags.raft_advertise.is_some(), path);
        let raft_advertise = match flags.raft_advertise.or(file.raft_advertise) {
            Some(address) => {
                check_host_port(&advertise_label, &address)?;
                address
            }
            None => match peers.get(&id) {
                Some(address) => address.clone(),
                None if raft_listen.ip().is_unspecified() => {
                    return Err(error(
                        "--raft-advertise",
                        format!(
                            "is required: --raft-listen {raft_listen} is not an address peers can reach, \
                             and --peers does not list node {id}"
                        ),
                    ));
                }
                None => raft_listen.to_string(),
            },
        };
        let data_dir = flags.data_dir.or(file.data_dir).ok_or_else(|| {
            error("--data-dir", "is required: give the directory for this node's log and snapshots")
        })?;
        let admin_token = flags.admin_token.or(file.admin_token).unwrap_or_default();
        if admin_token.is_empty() {
            return Err(error(
                "--admin-token",
                "is required (or AVOCET_ADMIN_TOKEN): every client call needs a token",
            ));
        }
        let peer_token = flags.peer_token.or(file.peer_token).unwrap_or_default();
        if peer_token.is_empty() {
            return Err(error(
                "--peer-token",
                "is required (or AVOCET_PEER_TOKEN): every Raft call needs a token",
            ));
        }
        if peer_token == admin_token {
            return Err(error(
                "--peer-token",
                "must differ from --admin-token, so a client token never opens Raft",
            ));
        }
        let mut timing = Timing::default();
        if let Some(heartbeat) = flags.heartbeat_ms {
            if heartbeat == 0 {
                return Err(error("--heartbeat-ms", "0 is not an interval (use 1 or more)"));
            }
            timing.heartbeat = Duration::from_millis(heartbeat);
        }
        if let Some(text) = &flags.election_timeout_ms {
            let (low, high) = parse_election(text)?;
            timing.election_min = Duration::from_millis(low);
            timing.election_max = Duration::from_millis(high);
        }
        if timing.heartbeat >= timing.election_min {
            return Err(error(
                "--heartbeat-ms",
                format!(
                    "{} ms must be shorter than the shortest election timeout ({} ms)",
                    timing.heartbeat.as_millis(),
                    timing.election_min.as_millis()
                ),
            ));
        }
        let worker_token = flags.worker_token.or(file.worker_token).filter(|t| !t.is_empty());
        if worker_token.as_deref().is_some_and(|t| t == peer_token) {
            return Err(error(
                "--worker-token",
                "must differ from --peer-token, so a worker token never opens Raft",
            ));
        }
        let timezone_label = label("--timezone", "timezone", flags.timezone.is_some(), path);
        let timezone = flags.timezone.or(file.timezone).unwrap_or_else(|| "UTC".to_owned());
        if timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(error(
                &timezone_label,
                format!("{timezone:?} is not an IANA time zone name like Europe/Berlin"),
            ));
        }
        let deadline_label =
            label("--stage-deadline", "stageDeadline", flags.stage_deadline.is_some(), path);
        let stage_deadline = match flags.stage_deadline.or(file.stage_deadline) {
            Some(text) => parse_duration(&deadline_label, &text)?,
            None => DEFAULT_STAGE_DEADLINE,
        };
        let pair_label = label(
            "--pair-check-interval",
            "pairCheckInterval",
            flags.pair_check_interval.is_some(),
            path,
        );
        let pair_check_interval = match flags.pair_check_interval.or(file.pair_check_interval) {
            Some(text) => parse_duration(&pair_label, &text)?,
            None => DEFAULT_PAIR_CHECK_INTERVAL,
        };
        if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&pair_check_interval) {
            return Err(error(&pair_label, "must be from 1s to 24h"));
        }
        let metrics_listen = socket(
            &label("--metrics-listen", "metricsListen", flags.metrics_listen.is_some(), path),
            flags
                .metrics_listen
                .as_deref()
                .or(file.metrics_listen.as_deref())
                .unwrap_or(DEFAULT_METRICS_LISTEN),
        )?;
        let clock_scale = flags.clock_scale.unwrap_or(1.0);
        if !(clock_scale.is_finite() && clock_scale > 0.0 && clock_scale <= 100_000.0) {
            return Err(error(
                "--clock-scale",
                format!("{clock_scale} is not a factor from above 0 to 100000"),
            ));
        }
        let clock_epoch = match &flags.clock_epoch {
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| {
                        error(
                            "--clock-epoch",
                            format!(
                                "{text:?} is not an RFC 3339 instant like 2026-03-08T00:00:00Z"
                            ),
                        )
                    })?
                    .to_utc(),
            ),
            None => None,
        };
        if clock_scale != 1.0 && clock_epoch.is_none() {
            return Err(error(
                "--clock-epoch",
                "is required with --clock-scale: every node must scale from the same instant",
            ));
        }
        let clock_skew = match flags.clock_skew_ms {
            Some(ms) if ms.unsigned_abs() > CLOCK_SKEW_MS_MAX.unsigned_abs() => {
                return Err(error(
                    "--clock-skew-ms",
                    format!("{ms} is not within ±{CLOCK_SKEW_MS_MAX} ms (one day)"),
                ));
            }
            Some(ms) => chrono::TimeDelta::milliseconds(ms),
            None => chrono::TimeDelta::zero(),
        };
        let cert_label = label("--tls-cert", "tlsCert", flags.tls_cert.is_some(), path);
        let key_label = label("--tls-key", "tlsKey", flags.tls_key.is_some(), path);
        let tls = match (flags.tls_cert.or(file.tls_cert), flags.tls_key.or(file.tls_key)) {
            (None, None) => None,
            (Some(_), None) => return Err(error(&key_label, "is required with --tls-cert")),
            (None, Some(_)) => return Err(error(&cert_label, "is required with --tls-key")),
            (Some(cert), Some(key)) => {
                let read = |setting: &str, file: &Path| {
                    std::fs::read(file)
                        .map_err(|e| error(setting, format!("cannot read {}: {e}", file.display())))
                };
                let files =
                    TlsFiles { cert: read(&cert_label, &cert)?, key: read(&key_label, &key)? };
                if !String::from_utf8_lossy(&files.cert).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(error(
                        &cert_label,
                        format!("{} holds no PEM certificate", cert.display()),
                    ));
                }
                if !String::from_utf8_lossy(&files.key).contains("PRIVATE KEY-----") {
                    return Err(error(
                        &key_label,
                        format!("{} holds no PEM private key", key.display()),
                    ));
                }
                Some(files)
            }
        };
        let kubeconfig_label =
            label("--kubeconfig", "kubeconfig", flags.kubeconfig.is_some(), path);
        let kubeconfig = flags.kubeconfig.or(file.kubeconfig);
        if let Some(file) = &kubeconfig
            && !file.is_file()
            && file.as_path() != std::path::Path::new(crate::serve::IN_CLUSTER)
        {
            return Err(error(
                &kubeconfig_label,
                format!("{} is not a readable file", file.display()),
            ));
        }
        let store_label = label("--store", "store", flags.store.is_some(), path);
        let store = match flags.store.or(file.store) {
            Some(url) => avocet_transfer::store::StoreUrl::parse(&url)
                .map_err(|e| error(&store_label, e.to_string()))?,
            None => avocet_transfer::store::StoreUrl::Local(data_dir.join("store")),
        };
        let key_label =
            label("--store-key-file", "storeKeyFile", flags.store_key_file.is_some(), path);
        let master_label =
            label("--master-key-file", "masterKeyFile", flags.master_key_file.is_some(), path);
        let master_key = match flags.master_key_file.or(file.master_key_file) {
            Some(key_file) => Some(read_secret(&master_label, &key_file)?),
            None => None,
        };
        let store_key = match flags.store_key_file.or(file.store_key_file) {
            Some(key_file) => Some(read_secret(&key_label, &key_file)?),
            None => None,
        };
        let root_label = label("--volume-root", "volumeRoot", flags.volume_root.is_some(), path);
        let volume_root = flags.volume_root.or(file.volume_root);
        if let Some(root) = &volume_root
            && !root.is_dir()
        {
            return Err(error(&root_label, format!("{} is not a directory", root.display())));
        }
        let workers = flags.workers.or(file.workers).unwrap_or(2);
        if workers > 64 {
            return Err(error(
                &label("--workers", "workers", flags.workers.is_some(), path),
                format!("{workers} is more than 64"),
            ));
        }
        let seat_bootstraps = seat.as_ref().is_some_and(|seat| seat.ordinal == 0);
        Ok(ServeConfig {
            statefulset: seat,
            tls,
            pair_check_interval,
            kubeconfig,
            store,
            store_key,
            volume_root,
            workers,
            master_key,
            worker_token,
            timezone,
            stage_deadline,
            metrics_listen,
            clock_scale,
            clock_epoch,
            clock_skew,
            id,
            listen,
            raft_listen,
            raft_advertise,
            peers,
            data_dir,
            bootstrap: flags.bootstrap || file.bootstrap.unwrap_or(false) || seat_bootstraps,
            admin_token,
            peer_token,
            timing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> ServeFlags {
        ServeFlags {
            id: Some(1),
            peers: Some("1=127.0.0.1:9010, 2=127.0.0.1:9011".into()),
            data_dir: Some("/tmp/x".into()),
            admin_token: Some("admin".into()),
            peer_token: Some("peer".into()),
            ..ServeFlags::default()
        }
    }

    fn pod(hostname: &str, replicas: Option<u64>) -> ServeFlags {
        ServeFlags {
            statefulset: Some("avocet-peers.avocet.svc.cluster.local".into()),
            replicas,
            hostname: Some(hostname.into()),
            data_dir: Some("/tmp/x".into()),
            admin_token: Some("admin".into()),
            peer_token: Some("peer".into()),
            ..ServeFlags::default()
        }
    }

    #[test]
    fn a_statefulset_pod_takes_its_id_peers_and_bootstrap_from_its_ordinal() {
        let config = ServeConfig::resolve(pod("avocet-2", Some(3))).unwrap();
        assert_eq!(config.id, 3);
        assert!(!config.bootstrap);
        assert_eq!(config.raft_advertise, "avocet-2.avocet-peers.avocet.svc.cluster.local:9010");
        let peers: Vec<(NodeId, String)> = config.peers.into_iter().collect();
        assert_eq!(peers[0], (1, "avocet-0.avocet-peers.avocet.svc.cluster.local:9010".to_owned()));
        assert_eq!(peers.len(), 3);
        let seat = config.statefulset.unwrap();
        assert_eq!((seat.name.as_str(), seat.ordinal, seat.replicas), ("avocet", 2, 3));
        assert!(ServeConfig::resolve(pod("my-avocet-0", Some(3))).unwrap().bootstrap);
    }

    #[test]
    fn a_statefulset_pod_with_a_bad_seat_is_refused_by_name() {
        let error = ServeConfig::resolve(pod("avocet", Some(3))).unwrap_err().to_string();
        assert!(error.contains("--statefulset") && error.contains("\"avocet\""), "{error}");
        let error = ServeConfig::resolve(pod("avocet-3", Some(3))).unwrap_err().to_string();
        assert!(error.contains("--replicas") && error.contains("ordinal 3"), "{error}");
        let error = ServeConfig::resolve(pod("avocet-0", None)).unwrap_err().to_string();
        assert!(error.contains("--replicas"), "{error}");
        let with_peers = ServeFlags { peers: Some("1=a:1".into()), ..pod("avocet-0", Some(1)) };
        let error = ServeConfig::resolve(with_peers).unwrap_err().to_string();
        assert!(error.contains("--peers"), "{error}");
        let with_id = ServeFlags { id: Some(7), ..pod("avocet-0", Some(1)) };
        assert!(ServeConfig::resolve(with_id).unwrap_err().to_string().contains("ordinal 0"));
    }

    #[test]
    fn resolves_defaults_and_advertises_the_listed_address() {
        let config = ServeConfig::resolve(flags()).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9001");
        assert_eq!(config.raft_listen.to_string(), "0.0.0.0:9010");
        assert_eq!(config.raft_advertise, "127.0.0.1:9010");
        assert_eq!(config.peers.len(), 2);
    }

    #[test]
    fn each_bad_setting_is_named() {
        type Change = Box<dyn Fn(&mut ServeFlags)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|f| f.id = Some(0)), "--id: 0 is not a node id (use 1 or more)"),
            (Box::new(|f| f.peers = Some("1=a:1,1=b:2".into())), "--peers: node 1 is listed twice"),
            (
                Box::new(|f| f.peers = Some("x=a:1".into())),
                "--peers: \"x\" in \"x=a:1\" is not a node id (1 or more)",
            ),
            (
                Box::new(|f| f.peers = Some("1=nohost".into())),
                "--peers: \"nohost\" is not host:port",
            ),
            (
                Box::new(|f| f.peers = Some("2=a:1".into())),
                "--peers: does not list node 1 (this node); list every node of the group",
            ),
            (
                Box::new(|f| f.listen = Some("nine".into())),
                "--listen: \"nine\" is not an address like 0.0.0.0:9001",
            ),
            (
                Box::new(|f| f.admin_token = None),
                "--admin-token: is required (or AVOCET_ADMIN_TOKEN): every client call needs a token",
            ),
            (
                Box::new(|f| f.peer_token = Some("admin".into())),
                "--peer-token: must differ from --admin-token, so a client token never opens Raft",
            ),
            (
                Box::new(|f| f.election_timeout_ms = Some("500-100".into())),
                "--election-timeout-ms: \"500-100\" needs 0 < MIN < MAX",
            ),
            (
                Box::new(|f| f.election_timeout_ms = Some("40-80".into())),
                "--heartbeat-ms: 50 ms must be shorter than the shortest election timeout (40 ms)",
            ),
            (
                Box::new(|f| f.raft_advertise = Some("::1:9010".into())),
                "--raft-advertise: \"::1:9010\" is not host:port (write IPv6 addresses as [::1]:9010)",
            ),
        ];
        for (change, expected) in cases {
            let mut flags = flags();
            change(&mut flags);
            assert_eq!(ServeConfig::resolve(flags).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("avocet.yaml");
        std::fs::write(&path, "id: 2\nlisten: 127.0.0.1:7001\npeers: [\"2=127.0.0.1:7010\"]\ndataDir: /tmp/y\nadminToken: a\npeerToken: p\n").unwrap();
        let config = ServeConfig::resolve(ServeFlags {
            config: Some(path.clone()),
            ..ServeFlags::default()
        })
        .unwrap();
        assert_eq!(
            (config.id, config.listen.to_string(), config.raft_advertise.as_str()),
            (2, "127.0.0.1:7001".to_owned(), "127.0.0.1:7010")
        );
        let config = ServeConfig::resolve(ServeFlags {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:7002".into()),
            ..ServeFlags::default()
        })
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7002");
        std::fs::write(&path, "id: 0\nlisten: x\n").unwrap();
        let flags = ServeFlags { config: Some(path.clone()), ..ServeFlags::default() };
        let error = ServeConfig::resolve(flags).unwrap_err();
        let expected = format!("id (in {}): 0 is not a node id (use 1 or more)", path.display());
        assert_eq!(error.to_string(), expected);
        std::fs::write(&path, "id: 2\nlistn: x\n").unwrap();
        let error =
            ServeConfig::resolve(ServeFlags { config: Some(path), ..ServeFlags::default() })
                .unwrap_err();
        assert!(error.to_string().contains("listn"), "{error}");
    }
}
