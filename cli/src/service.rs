//! The `avocet` binary: `serve`, `worker`, `sandbox` and `demo`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use avocet_server::{ServeConfig, ServeFlags};
use clap::{Args, Parser, Subcommand};

/// Gives the tokio worker threads: our machines have two cores.
const WORKER_THREADS: usize = 2;

/// avocet: asynchronous disaster recovery for Kubernetes, the service.
#[derive(Debug, Parser)]
#[command(name = "avocet", version, disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one node of the replicated scheduler group.
    Serve(Box<ServeArgs>),
    /// Runs a Kubernetes-API-compatible sandbox server (tests and demos only, never production).
    Sandbox(SandboxArgs),
    /// Runs a worker pool as its own process: leases migrations from the scheduler group and
    /// runs them (volumes through the store, objects to the destination).
    Worker(WorkerArgs),
    /// Runs the whole story on this machine in about a minute: a 3-node scheduler group, two
    /// sandbox clusters with a sample app, scheduled migrations with the leader killed
    /// mid-way, the slots checked, then failover to the destination.
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Leases migrations from the scheduler group at URL.
    #[arg(
        long,
        env = "AVOCET_SERVER",
        default_value = "http://127.0.0.1:9001",
        value_name = "URL"
    )]
    server: String,
    /// Presents TOKEN (the worker or admin token).
    #[arg(long, env = "AVOCET_WORKER_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: String,
    /// Names this worker in leases and events [default: worker-<host>].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Reads the source cluster's credentials from FILE (`in-cluster`: the pod's service
    /// account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// Moves volume data through URL: file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
    #[arg(long, value_name = "URL")]
    store: String,
    /// Derives the store's encryption key from FILE (at least 32 bytes of secret).
    #[arg(long, value_name = "FILE")]
    store_key_file: PathBuf,
    /// Runs this many migrations at once.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Holds each lease this long in the group's clock, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, hide = true)]
    lease_ms: u64,
}

#[derive(Debug, Args)]
struct SandboxArgs {
    /// Serves the Kubernetes API on ADDR (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    listen: String,
    /// Keeps objects in DIR so that they survive a restart [default: memory only].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Requires this bearer token; without it any client is accepted.
    #[arg(long, env = "AVOCET_SANDBOX_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Writes a kubeconfig for this server (context `sandbox`) to FILE once it listens.
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
    /// Serves pods/exec (over WebSocket) by running each command as a local process in
    /// DIR/NAMESPACE/POD, as a stand-in for the pod's container [default: exec refused].
    #[arg(long, value_name = "DIR")]
    exec_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Reads settings from a YAML file (keys: id, listen, raftListen, raftAdvertise, peers,
    /// dataDir, bootstrap, adminToken, peerToken, workerToken, timezone, stageDeadline,
    /// metricsListen, tlsCert, tlsKey); flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Names this node (1 or more), unique in the group.
    #[arg(long, value_name = "N")]
    id: Option<u64>,
    /// Serves the public gRPC API on ADDR [default: 0.0.0.0:9001].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Serves Raft peers on ADDR [default: 0.0.0.0:9010].
    #[arg(long, value_name = "ADDR")]
    raft_listen: Option<String>,
    /// Gives the address peers reach this node's Raft service at [default: this node's --peers entry].
    #[arg(long, value_name = "HOST:PORT")]
    raft_advertise: Option<String>,
    /// Lists every node of the group with its Raft address, this one included.
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    peers: Option<String>,
    /// Keeps this node's log, snapshots and identity in DIR.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Creates a new group from --peers if DIR holds none yet (run on one node only).
    #[arg(long)]
    bootstrap: bool,
    /// Runs as a pod of a StatefulSet whose headless Service is DOMAIN (for example
    /// avocet-peers.avocet.svc.cluster.local): the node id is the pod's ordinal + 1 (from its host
    /// name), every pod `<name>-<i>.DOMAIN` is a peer, ordinal 0 bootstraps a fresh group, and
    /// a pod the group does not know yet (a scale-up) joins as a learner, then is promoted.
    #[arg(long, value_name = "DOMAIN")]
    statefulset: Option<String>,
    /// Gives the StatefulSet's replicas (with --statefulset).
    #[arg(long, env = "AVOCET_REPLICAS", value_name = "N")]
    replicas: Option<u64>,
    /// Gives the pod's host name (with --statefulset) [default: the kernel's].
    #[arg(long, env = "HOSTNAME", hide = true, value_name = "NAME")]
    hostname: Option<String>,
    /// Requires this bearer token on admin API calls.
    #[arg(long, env = "AVOCET_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// Requires this bearer token on Raft peer calls (the same on every node).
    #[arg(long, env = "AVOCET_PEER_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    peer_token: Option<String>,
    /// Sets the leader's heartbeat interval (tests use fast clocks).
    #[arg(long, hide = true, value_name = "MS")]
    heartbeat_ms: Option<u64>,
    /// Sets the election timeout range (tests use fast clocks).
    #[arg(long, hide = true, value_name = "MIN-MAX")]
    election_timeout_ms: Option<String>,
    /// Requires this bearer token on worker calls (the admin token works there too).
    #[arg(long, env = "AVOCET_WORKER_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    worker_token: Option<String>,
    /// Uses this IANA zone for policies without policy.timezone [default: UTC].
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Fails a migration that stays in one stage longer than this [default: 6h].
    #[arg(long, value_name = "DURATION")]
    stage_deadline: Option<String>,
    /// Serves Prometheus metrics on ADDR [default: 0.0.0.0:9002].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Runs the scheduler's clock F times as fast from --clock-epoch (tests).
    #[arg(long, hide = true, value_name = "F")]
    clock_scale: Option<f64>,
    /// Gives the instant the scaled clock starts from (tests).
    #[arg(long, hide = true, value_name = "RFC3339")]
    clock_epoch: Option<String>,
    /// Moves this node's clock by MS milliseconds, before scaling (fault injection in tests).
    #[arg(long, hide = true, value_name = "MS", allow_negative_numbers = true)]
    clock_skew_ms: Option<i64>,
    /// Serves the public API over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Gives the PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Re-checks every ClusterPair's destination this often while leading [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pair_check_interval: Option<String>,
    /// Mirrors the Stork resources of the source cluster this kubeconfig reaches (the
    /// controller; `in-cluster` for the pod's service account); without it the catalog is
    /// driven by avocetctl only.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Moves volume data through URL: file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R
    /// [default: file://DATA_DIR/store].
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Derives the store's encryption key from FILE (at least 32 bytes of secret; the same on
    /// source and destination). Without it this node runs no workers and restores nothing.
    #[arg(long, value_name = "FILE")]
    store_key_file: Option<PathBuf>,
    /// As a destination, restores migrated volumes into DIR/<namespace>.<claim>.
    #[arg(long, value_name = "DIR")]
    volume_root: Option<PathBuf>,
    /// Runs this many migrations at once in this node's worker pool (needs --kubeconfig and
    /// --store-key-file; 0 for none) [default: 2].
    #[arg(long, value_name = "N")]
    workers: Option<u32>,
    /// Seals stored credentials with a key derived from FILE (at least 32 bytes of secret;
    /// typically a mounted Kubernetes Secret). Without it, credentials cannot be stored.
    #[arg(long, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    /// Writes logs as text or JSON lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Names a log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs `avocet` with `args` (the program name first) and returns its exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let json = matches!(&cli.command, Command::Serve(args) if args.log_format == LogFormat::Json);
    // The demo talks to its user on stdout; its own logs are for when something goes wrong.
    let default =
        if matches!(cli.command, Command::Demo(_)) { "warn" } else { "info,openraft=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Sandbox(args) => sandbox(args),
        Command::Worker(args) => worker(args),
        Command::Demo(args) => match crate::demo::run(args, &mut std::io::stdout().lock()) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(ServeFlags {
        config: args.config,
        id: args.id,
        listen: args.listen,
        raft_listen: args.raft_listen,
        raft_advertise: args.raft_advertise,
        peers: args.peers,
        data_dir: args.data_dir,
        bootstrap: args.bootstrap,
        statefulset: args.statefulset,
        replicas: args.replicas,
        hostname: args.hostname,
        admin_token: args.admin_token,
        peer_token: args.peer_token,
        heartbeat_ms: args.heartbeat_ms,
        election_timeout_ms: args.election_timeout_ms,
        worker_token: args.worker_token,
        timezone: args.timezone,
        stage_deadline: args.stage_deadline,
        metrics_listen: args.metrics_listen,
        clock_scale: args.clock_scale,
        clock_epoch: args.clock_epoch,
        clock_skew_ms: args.clock_skew_ms,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        pair_check_interval: args.pair_check_interval,
        kubeconfig: args.kubeconfig,
        store: args.store,
        store_key_file: args.store_key_file,
        volume_root: args.volume_root,
        workers: args.workers,
        master_key_file: args.master_key_file,
    })?;
    runtime()?.block_on(avocet_server::serve(config, shutdown_signal()))?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()?)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let store = avocet_transfer::store::StoreUrl::parse(&args.store)
        .map_err(|e| anyhow::anyhow!("--store: {e}"))?;
    let key = std::fs::read(&args.store_key_file)
        .map_err(|e| anyhow::anyhow!("--store-key-file {}: {e}", args.store_key_file.display()))?;
    if key.len() < avocet_transfer::seal::KEY_MATERIAL_MIN {
        anyhow::bail!(
            "--store-key-file {} holds {} bytes; at least {} bytes of secret are needed",
            args.store_key_file.display(),
            key.len(),
            avocet_transfer::seal::KEY_MATERIAL_MIN
        );
    }
    if !args.kubeconfig.is_file()
        && args.kubeconfig.as_path() != std::path::Path::new(avocet_server::serve::IN_CLUSTER)
    {
        anyhow::bail!("--kubeconfig {} is not a readable file", args.kubeconfig.display());
    }
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("worker-{}", host.trim())
    });
    runtime()?.block_on(async {
        let plan = avocet_server::volumes::WorkerPlan {
            server: args.server,
            token: args.token,
            name,
            count: args.workers,
            lease_ms: args.lease_ms,
            kubeconfig: args.kubeconfig,
            store,
            key: Some(key),
        };
        let (pool, loops) =
            avocet_server::volumes::start_workers(plan).await.map_err(anyhow::Error::msg)?;
        tracing::info!(workers = loops.len(), "worker pool up");
        shutdown_signal().await;
        for task in loops {
            task.abort();
        }
        drop(pool);
        anyhow::Ok(())
    })
}

fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = args.listen.parse().map_err(|_| {
        anyhow::anyhow!("--listen {:?} is not an address such as 127.0.0.1:6443", args.listen)
    })?;
    if args.token.as_deref() == Some("") {
        anyhow::bail!("--token is empty; give a token or leave the flag out to accept any client");
    }
    runtime()?.block_on(async {
        let config = avocet_sandbox::SandboxConfig {
            listen,
            data_dir: args.data_dir,
            token: args.token,
            exec_root: args.exec_root,
        };
        let sandbox = avocet_sandbox::Sandbox::start(config).await?;
        if let Some(path) = &args.kubeconfig_out {
            sandbox.write_kubeconfig(path)?;
            tracing::info!(kubeconfig = %path.display(), "wrote a kubeconfig with context sandbox");
        }
        tracing::info!(url = %sandbox.url(), "sandbox ready");
        shutdown_signal().await;
        sandbox.shutdown().await;
        anyhow::Ok(())
    })
}
