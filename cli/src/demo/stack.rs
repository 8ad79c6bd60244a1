//! Everything the demo runs, on loopback: two sandbox clusters in this process, a source group
//! of three `avocet serve` processes (this same executable) and a one-node destination Avocet,
//! sharing a local-directory store. Dropping the [`Stack`] stops every process and sandbox and
//! removes the folder it made, also when the demo fails half-way.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use avocet_transfer::stopwatch::Stopwatch;

use avocet_sandbox::{Sandbox, SandboxConfig};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The destination Avocet's node id (its own group of one).
pub(super) const DESTINATION: u64 = 0;

/// One `avocet serve` process and its addresses.
#[derive(Debug)]
pub(super) struct Node {
    /// The public gRPC address.
    pub api: String,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Says whether the process runs.
    pub(super) fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// The scaled clock every node runs: group time `epoch + (real − epoch) × scale`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ScaledTime {
    /// The real instant the scaled clock equals the real one.
    pub epoch: DateTime<Utc>,
    /// How many times as fast the group's clock runs.
    pub scale: f64,
}

impl ScaledTime {
    /// A clock running `scale` times as fast that reads `start` now.
    pub(super) fn reading(start: DateTime<Utc>, scale: f64) -> ScaledTime {
        let now = crate::demo::wall();
        // start = epoch + (now − epoch) × scale, so epoch = now − (start − now) / (scale − 1).
        let ahead = (start - now).as_seconds_f64() / (scale - 1.0);
        let epoch = now - seconds(ahead);
        ScaledTime { epoch, scale }
    }

    /// The group's reading at real instant `real`.
    pub(super) fn group(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        self.epoch + seconds((real - self.epoch).as_seconds_f64() * self.scale)
    }

    /// The real instant the group reads `group`.
    pub(super) fn real(&self, group: DateTime<Utc>) -> DateTime<Utc> {
        self.epoch + seconds((group - self.epoch).as_seconds_f64() / self.scale)
    }
}

/// `seconds` as a span, to the microsecond (0 for what no span holds).
fn seconds(seconds: f64) -> chrono::TimeDelta {
    let span = std::time::Duration::try_from_secs_f64(seconds.abs()).unwrap_or_default();
    let span = chrono::TimeDelta::from_std(span).unwrap_or_default();
    if seconds < 0.0 { -span } else { span }
}

/// The demo's world.
pub(super) struct Stack {
    /// The folder holding everything (logs, data, store, kubeconfigs).
    pub dir: PathBuf,
    temporary: Option<tempfile::TempDir>,
    /// Runs the sandboxes and the kube calls.
    pub runtime: tokio::runtime::Runtime,
    sandboxes: Vec<Sandbox>,
    /// The source cluster's API server URL and kubeconfig.
    pub source: (String, PathBuf),
    /// The destination cluster's API server URL and kubeconfig.
    pub destination: (String, PathBuf),
    /// The source group by id, and the destination Avocet as [`DESTINATION`].
    pub nodes: BTreeMap<u64, Node>,
    /// The admin token of every Avocet.
    pub token: String,
    /// The source group's clock.
    pub clock: ScaledTime,
    exe: PathBuf,
}

/// Sixteen random bytes as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Unique enough for loopback-only processes that live a minute.
        let nanos = crate::demo::wall().timestamp_nanos_opt().unwrap_or_default();
        bytes = (i128::from(nanos) ^ i128::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Stack {
    /// Makes the folder (`dir`, or a temporary one) and starts both sandboxes.
    pub(super) fn start(dir: Option<PathBuf>, clock: ScaledTime) -> anyhow::Result<Stack> {
        let (dir, temporary) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("--dir {}: {e}", dir.display()))?;
                if std::fs::read_dir(&dir)?.next().is_some() {
                    anyhow::bail!("--dir {}: the folder is not empty", dir.display());
                }
                (dir, None)
            }
            None => {
                let temporary = tempfile::Builder::new().prefix("avocet-demo-").tempdir()?;
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (source, destination) = runtime.block_on(async {
            let source = Sandbox::start(SandboxConfig::local()).await?;
            let destination = Sandbox::start(SandboxConfig::local()).await?;
            anyhow::Ok((source, destination))
        })?;
        let (source_config, dest_config) =
            (dir.join("source.kubeconfig"), dir.join("destination.kubeconfig"));
        source.write_kubeconfig(&source_config)?;
        destination.write_kubeconfig(&dest_config)?;
        Ok(Stack {
            source: (source.url(), source_config),
            destination: (destination.url(), dest_config),
            sandboxes: vec![source, destination],
            dir,
            temporary,
            runtime,
            nodes: BTreeMap::new(),
            token: random_token(),
            clock,
            exe: std::env::current_exe()?,
        })
    }

    /// Says whether the folder goes when the stack does.
    pub(super) fn temporary(&self) -> bool {
        self.temporary.is_some()
    }

    /// A kube client for the source (`true`) or destination cluster.
    pub(super) fn client(&self, source: bool) -> anyhow::Result<kube::Client> {
        let sandbox = &self.sandboxes[usize::from(!source)];
        self.runtime.block_on(sandbox.client())
    }

    /// Starts the destination Avocet and the source group of `count` nodes, all sharing the
    /// store at `store` with the key in `key`.
    pub(super) fn start_avocets(
        &mut self,
        count: u64,
        store: &str,
        key: &Path,
    ) -> anyhow::Result<()> {
        // Every port is held until all are picked, so no two are the same.
        let held: Vec<TcpListener> = (0..(count + 1) * 3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let mut ports = held.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port());
        let mut next = || format!("127.0.0.1:{}", ports.next().unwrap_or_default());
        let mut addresses: BTreeMap<u64, [String; 3]> = BTreeMap::new();
        for id in std::iter::once(DESTINATION).chain(1..=count) {
            addresses.insert(id, [next(), next(), next()]);
        }
        drop(held);
        let peers = |ids: &mut dyn Iterator<Item = u64>| -> String {
            let list: Vec<String> = ids.map(|id| format!("{id}={}", addresses[&id][1])).collect();
            list.join(",")
        };
        let source_peers = peers(&mut (1..=count));
        let epoch = self.clock.epoch.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let volumes = self.dir.join("destination-volumes");
        std::fs::create_dir_all(&volumes)?;
        for (id, [api, raft, metrics]) in &addresses {
            let data = self.dir.join(format!("node-{id}"));
            let mut args: Vec<OsString> = ["serve", "--id"].map(OsString::from).to_vec();
            // The destination is a group of its own: node 1 of it.
            let own_id = if *id == DESTINATION { 1 } else { *id };
            let common = [
                own_id.to_string(),
                "--listen".into(),
                api.clone(),
                "--raft-listen".into(),
                raft.clone(),
                "--metrics-listen".into(),
                metrics.clone(),
                "--store".into(),
                store.to_owned(),
            ];
            args.extend(common.map(OsString::from));
            args.extend([OsString::from("--store-key-file"), key.into()]);
            args.extend([OsString::from("--data-dir"), data.into(), "--bootstrap".into()]);
            if *id == DESTINATION {
                args.extend([OsString::from("--peers"), format!("1={raft}").into()]);
                args.extend([OsString::from("--volume-root"), volumes.clone().into()]);
            } else {
                args.extend([OsString::from("--peers"), source_peers.clone().into()]);
                args.extend([OsString::from("--kubeconfig"), self.source.1.clone().into()]);
                let flags = [
                    "--workers",
                    "1",
                    "--pair-check-interval",
                    "1s",
                    "--clock-epoch",
                    &epoch,
                    "--clock-scale",
                    &self.clock.scale.to_string(),
                ];
                args.extend(flags.map(OsString::from));
            }
            let log = self.dir.join(format!("node-{id}.log"));
            let node = Node { api: api.clone(), args, log, child: None };
            self.nodes.insert(*id, node);
        }
        // --bootstrap on node 1 only: the others join it.
        for (id, node) in &mut self.nodes {
            if *id > 1 {
                node.args.retain(|arg| arg != "--bootstrap");
            }
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// Starts (or restarts) node `id` with its command line.
    pub(super) fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).ok_or_else(|| anyhow::anyhow!("no node {id}"))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = Command::new(&self.exe)
            .args(&node.args)
            .env("AVOCET_ADMIN_TOKEN", &self.token)
            .env("AVOCET_PEER_TOKEN", format!("peer-{}", self.token))
            .env(
                "RUST_LOG",
                std::env::var("AVOCET_DEMO_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.exe.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Kills node `id` with SIGKILL, as a crash would.
    pub(super) fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|node| node.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops every process with SIGTERM (a leader hands over first), killing what has not
    /// exited after 10 s.
    pub(super) fn stop_all(&mut self) {
        let mut children: Vec<Child> =
            self.nodes.values_mut().filter_map(|node| node.child.take()).collect();
        for child in &children {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        let waiting = Stopwatch::start();
        for child in &mut children {
            while waiting.elapsed() < Duration::from_secs(10)
                && matches!(child.try_wait(), Ok(None))
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `avocetctl ARGS` against node `id` in this process: (success, stdout, stderr).
    pub(super) fn ctl(&self, id: u64, args: &[&str]) -> (bool, String, String) {
        let server =
            self.nodes.get(&id).map_or_else(String::new, |node| format!("http://{}", node.api));
        let mut argv: Vec<OsString> =
            ["avocetctl", "--server", &server, "--token", &self.token].map(OsString::from).to_vec();
        argv.extend(args.iter().map(OsString::from));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = crate::ctl::run(argv, &mut out, &mut err);
        (
            code == ExitCode::SUCCESS,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// Runs `avocetctl ARGS -o json` against node `id` and parses what it prints.
    pub(super) fn ctl_json(&self, id: u64, args: &[&str]) -> Option<Value> {
        let args: Vec<&str> = args.iter().copied().chain(["-o", "json"]).collect();
        let (ok, out, _) = self.ctl(id, &args);
        if ok { serde_json::from_str(&out).ok() } else { None }
    }

    /// The leader the running source nodes agree on, if they do.
    pub(super) fn leader(&self) -> Option<u64> {
        let live: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(id, node)| **id != DESTINATION && node.running())
            .map(|(id, _)| *id)
            .collect();
        let mut agreed = None;
        for id in &live {
            let leader = self.ctl_json(*id, &["cluster", "status"])?["leaderId"].as_u64()?;
            if agreed.is_some_and(|agreed| agreed != leader) || !live.contains(&leader) {
                return None;
            }
            agreed = Some(leader);
        }
        agreed
    }

    /// The last `lines` lines of node `id`'s log.
    pub(super) fn log_tail(&self, id: u64, lines: usize) -> String {
        let Some(node) = self.nodes.get(&id) else { return String::new() };
        let text = std::fs::read_to_string(&node.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops everything; the folder goes too unless it was given with `--dir`.
    pub(super) fn shut_down(mut self) {
        self.stop_all();
        for sandbox in std::mem::take(&mut self.sandboxes) {
            self.runtime.block_on(sandbox.shutdown());
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Polls `check` every 100 ms until it returns a value or `timeout` passes.
pub(super) fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let waiting = Stopwatch::start();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if waiting.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaled_clock_reads_what_it_was_set_to_and_maps_back() {
        let start = crate::demo::wall() + chrono::TimeDelta::hours(5);
        let clock = ScaledTime::reading(start, 360.0);
        let now = crate::demo::wall();
        let reading = clock.group(now);
        assert!((reading - start).num_seconds().abs() < 5, "{reading} vs {start}");
        let later = reading + chrono::TimeDelta::hours(1);
        let real = clock.real(later);
        assert!(((real - now).as_seconds_f64() - 10.0).abs() < 0.01, "an hour is 10 s");
    }
}
