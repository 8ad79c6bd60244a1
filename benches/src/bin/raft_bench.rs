//! Measures the replicated log and prints a table: committed writes per second and commit
//! latency on 1- and 3-node loopback groups, without batching (one writer, one command per
//! request), with pipelining (64 concurrent writers, whose entries share appends and fsyncs),
//! and with client batching (64 commands per request, committed as one entry); then leader
//! failover time (SIGKILL of the leader's process → the next write committed) over 20 kills (`--kills N` for more).
//!
//! Last, fire lag: 1,000 one-minute interval schedules on three processes, due slot → fire
//! committed, p50/p90/p99 from the leader's metrics.
//!
//! Run: `cargo run --release -p avocet-benches --bin raft_bench [-- --quick] [--only writes|failover|firelag] [--kills N]`.

// A bench reads the clock to measure; setup failures are bugs in the bench itself.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avocet_consensus::kv::{KvCommand, KvStore};
use avocet_consensus::{NodeConfig, RaftNode};
use avocet_proto::api::cluster_client::ClusterClient;
use avocet_proto::api::{BarrierRequest, ClusterStatusRequest};

const ADMIN_TOKEN: &str = "bench-admin";
const PEER_TOKEN: &str = "bench-peer";

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    sorted[(sorted.len() * percent / 100).min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn start_group(size: u64, dir: &std::path::Path) -> Vec<Arc<RaftNode<KvStore>>> {
    let listeners: Vec<TcpListener> =
        (0..size).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let peers: BTreeMap<u64, String> = listeners
        .iter()
        .enumerate()
        .map(|(i, listener)| (i as u64 + 1, listener.local_addr().unwrap().to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (listener, (id, address)) in listeners.into_iter().zip(&peers) {
        let mut config = NodeConfig::new(*id, address, &dir.join(format!("node-{id}")), PEER_TOKEN);
        config.peers = peers.clone();
        config.bootstrap = *id == 1;
        nodes.push(Arc::new(RaftNode::start(config, listener).await.unwrap()));
    }
    let leader = nodes[0].wait_for_leader(Duration::from_secs(10)).await.unwrap();
    let leading = nodes.iter().position(|node| node.id() == leader).unwrap();
    nodes.swap(0, leading);
    nodes
}

/// Writes `total` puts through the leader with `writers` concurrent writers, each sending
/// batches of `batch` commands; returns the elapsed time and every request's latency.
async fn write_load(
    node: Arc<RaftNode<KvStore>>,
    writers: usize,
    batch: usize,
    total: usize,
) -> (Duration, Vec<Duration>) {
    let requests_per_writer = total / writers / batch;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let node = Arc::clone(&node);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(requests_per_writer);
                for request in 0..requests_per_writer {
                    let commands = (0..batch)
                        .map(|i| KvCommand::Put {
                            key: format!("w{writer}-{request}-{i}"),
                            value: "x".repeat(64),
                        })
                        .collect();
                    let begun = Instant::now();
                    node.write_batch(commands).await.unwrap();
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (start.elapsed(), latencies)
}

async fn throughput(quick: bool) {
    println!(
        "Replicated writes (openraft 0.9 + sled + tonic on loopback; KvStore puts of 64 B; durable: fsync before ack)"
    );
    println!(
        "  writers = concurrent clients (pipelining); batch = commands per request, committed as one entry"
    );
    println!(
        "{:<8} {:>8} {:>6} {:>8} {:>10} {:>13} {:>13}",
        "group", "writers", "batch", "writes", "writes/s", "p50 ms/req", "p99 ms/req"
    );
    for size in [1u64, 3] {
        for (writers, batch) in [(1usize, 1usize), (64, 1), (1, 64), (16, 64)] {
            let dir = tempfile::tempdir().unwrap();
            let nodes = start_group(size, dir.path()).await;
            // Keep the store small enough that snapshots stay cheap: at most ~100k commands.
            let requests = match (quick, writers, batch) {
                (true, 1, 1) => 300,
                (true, _, _) => 40 * writers,
                (false, 1, 1) => 2_000,
                (false, _, 1) => 400 * writers,
                (false, _, _) => 400 * writers.min(4),
            };
            let total = requests * batch;
            // Warm up connections and the log.
            write_load(Arc::clone(&nodes[0]), 1, 1, 20).await;
            let (elapsed, mut latencies) =
                write_load(Arc::clone(&nodes[0]), writers, batch, total).await;
            latencies.sort();
            println!(
                "{:<8} {:>8} {:>6} {:>8} {:>10.0} {:>13.2} {:>13.2}",
                format!("{size} node{}", if size > 1 { "s" } else { "" }),
                writers,
                batch,
                total,
                total as f64 / elapsed.as_secs_f64(),
                millis(percentile(&latencies, 50)),
                millis(percentile(&latencies, 99)),
            );
            for node in nodes {
                node.abort().await;
            }
        }
    }
}

/// Runs one node as a child process (the `node` mode of this binary), like `avocet serve`.
fn run_node(args: &[String]) {
    let [id, listen, raft, peers, dir, metrics] = args else {
        panic!("node ID LISTEN RAFT PEERS DIR METRICS")
    };
    let config = avocet_server::ServeConfig::resolve(avocet_server::ServeFlags {
        id: Some(id.parse().unwrap()),
        listen: Some(listen.clone()),
        raft_listen: Some(raft.clone()),
        peers: Some(peers.clone()),
        data_dir: Some(dir.into()),
        bootstrap: id == "1",
        admin_token: Some(ADMIN_TOKEN.into()),
        peer_token: Some(PEER_TOKEN.into()),
        metrics_listen: Some(metrics.clone()),
        // Timing experiments: AVOCET_BENCH_ELECTION=150-300, AVOCET_BENCH_HEARTBEAT=50.
        election_timeout_ms: std::env::var("AVOCET_BENCH_ELECTION").ok(),
        heartbeat_ms: std::env::var("AVOCET_BENCH_HEARTBEAT").ok().map(|ms| ms.parse().unwrap()),
        ..Default::default()
    })
    .unwrap();
    if std::env::var_os("AVOCET_BENCH_LOG_DIR").is_some() {
        // Node logs for investigations (RUST_LOG picks what), on stderr: the file the bench made.
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .init();
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(avocet_server::serve(config, std::future::pending())).unwrap();
}

struct Process {
    api: String,
    metrics: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl Process {
    fn spawn(&mut self) {
        let stderr = match std::env::var_os("AVOCET_BENCH_LOG_DIR") {
            Some(dir) => {
                let path = std::path::Path::new(&dir).join(format!("node-{}.log", self.args[0]));
                Stdio::from(
                    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap(),
                )
            }
            None => Stdio::null(),
        };
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("node")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }
}

async fn client(api: &str) -> Option<ClusterClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .ok()?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(200))
        .timeout(Duration::from_millis(300));
    endpoint.connect().await.ok().map(ClusterClient::new)
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().unwrap());
    request
}

/// Returns the leader every running node names, when they all agree on one that runs.
async fn leader_of(processes: &[Process]) -> Option<u64> {
    let mut agreed = None;
    for process in processes.iter().filter(|p| p.child.is_some()) {
        let mut client = client(&process.api).await?;
        let status = client.status(authorized(ClusterStatusRequest {})).await.ok()?.into_inner();
        if status.leader_id == 0 || agreed.is_some_and(|leader| leader != status.leader_id) {
            return None;
        }
        agreed = Some(status.leader_id);
    }
    let leader = agreed?;
    processes[usize::try_from(leader).ok()? - 1].child.as_ref().map(|_| leader)
}

/// Says, for a group that does not settle, how each process stands: exited (with its status)
/// or what it answers about the leader. Node logs: set `AVOCET_BENCH_LOG_DIR`.
async fn describe(processes: &mut [Process]) -> String {
    let mut parts = Vec::new();
    for (i, process) in processes.iter_mut().enumerate() {
        let node = i + 1;
        let Some(child) = process.child.as_mut() else {
            parts.push(format!("node {node} not running"));
            continue;
        };
        if let Ok(Some(status)) = child.try_wait() {
            parts.push(format!("node {node} exited ({status})"));
            continue;
        }
        let answer = match client(&process.api).await {
            None => "does not answer".to_owned(),
            Some(mut client) => match client.status(authorized(ClusterStatusRequest {})).await {
                Ok(status) => {
                    let status = status.into_inner();
                    format!("sees leader {} in term {}", status.leader_id, status.term)
                }
                Err(error) => format!("status fails: {}", error.message()),
            },
        };
        parts.push(format!("node {node} {answer}"));
    }
    parts.join("; ")
}

/// Asks every running node for a barrier at once; true when any of them commits one.
async fn barrier_anywhere(processes: &[Process]) -> bool {
    let attempts: Vec<_> = processes
        .iter()
        .filter(|p| p.child.is_some())
        .map(|process| {
            let api = process.api.clone();
            tokio::spawn(async move {
                match client(&api).await {
                    Some(mut client) => client.barrier(authorized(BarrierRequest {})).await.is_ok(),
                    None => false,
                }
            })
        })
        .collect();
    let mut committed = false;
    for attempt in attempts {
        committed |= attempt.await.unwrap_or(false);
    }
    committed
}

/// Starts three `node` child processes (this binary) in `dir`, node 1 bootstrapping.
fn start_processes(dir: &std::path::Path) -> Vec<Process> {
    let port = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let addresses: Vec<(String, String, String)> =
        (0..3).map(|_| (port(), port(), port())).collect();
    let peers: String = addresses
        .iter()
        .enumerate()
        .map(|(i, (_, raft, _))| format!("{}={raft}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut processes: Vec<Process> = addresses
        .iter()
        .enumerate()
        .map(|(i, (api, raft, metrics))| Process {
            api: api.clone(),
            metrics: metrics.clone(),
            args: vec![
                (i + 1).to_string(),
                api.clone(),
                raft.clone(),
                peers.clone(),
                dir.join(format!("node-{}", i + 1)).display().to_string(),
                metrics.clone(),
            ],
            child: None,
        })
        .collect();
    for process in &mut processes {
        process.spawn();
    }
    processes
}

/// Waits for a leader that commits a write; returns it.
async fn settled(processes: &[Process]) -> u64 {
    for _ in 0..300 {
        if barrier_anywhere(processes).await
            && let Some(leader) = leader_of(processes).await
        {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the group does not settle")
}

/// Returns a node's `/metrics` text.
async fn scrape(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// Fire lag on a 3-node group: `schedules` interval schedules of one minute, created in ten
/// groups a few seconds apart, fire for `minutes`; the leader's recent-lag quantiles are read
/// from its `/metrics` (due slot → fire committed, leader's clock).
async fn fire_lag(schedules: usize, minutes: u64) {
    use avocet_proto::api::ApplyRequest;
    use avocet_proto::api::catalog_client::CatalogClient;
    let dir = tempfile::tempdir().unwrap();
    let mut processes = start_processes(dir.path());
    let leader = settled(&processes).await;
    let api = processes[usize::try_from(leader).unwrap() - 1].api.clone();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut catalog = CatalogClient::new(channel);
    let policy = "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {name: every-minute}\npolicy: {interval: {intervalMinutes: 1}}\n";
    catalog
        .apply(authorized(ApplyRequest { text: policy.into(), ..Default::default() }))
        .await
        .unwrap();
    let groups = 10;
    for group in 0..groups {
        let text: Vec<String> = (0..schedules / groups)
            .map(|i| format!(
                "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: MigrationSchedule\nmetadata: {{name: s{group}-{i}, namespace: bench}}\nspec: {{schedulePolicyName: every-minute, template: {{spec: {{clusterPair: remote, namespaces: [bench]}}}}}}\n"
            ))
            .collect();
        catalog
            .apply(authorized(ApplyRequest { text: text.join("---\n"), ..Default::default() }))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(4_700)).await;
    }
    tokio::time::sleep(Duration::from_secs(minutes * 60)).await;
    let text = scrape(&processes[usize::try_from(leader).unwrap() - 1].metrics).await;
    let fires = metric(&text, "avocet_fires_total").unwrap_or_default();
    let p50 = metric(&text, "avocet_fire_lag_recent_seconds{quantile=\"0.5\"}").unwrap_or(f64::NAN);
    let p90 = metric(&text, "avocet_fire_lag_recent_seconds{quantile=\"0.9\"}").unwrap_or(f64::NAN);
    let p99 =
        metric(&text, "avocet_fire_lag_recent_seconds{quantile=\"0.99\"}").unwrap_or(f64::NAN);
    println!(
        "Fire lag (3 processes, {schedules} one-minute interval schedules in {groups} slot groups, {minutes} min; due slot -> fire committed on the leader): {fires} fires, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
        p50 * 1000.0,
        p90 * 1000.0,
        p99 * 1000.0
    );
    for process in &mut processes {
        if let Some(mut child) = process.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn failover(kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut processes = start_processes(dir.path());
    let mut gaps = Vec::new();
    let mut elections = Vec::new();
    for _ in 0..kills {
        // Wait for a settled group: a leader, and a write that commits.
        let mut settled = None;
        for _ in 0..300 {
            if barrier_anywhere(&processes).await {
                settled = leader_of(&processes).await;
                if settled.is_some() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some(leader) = settled else {
            panic!("the group does not settle: {}", describe(&mut processes).await);
        };
        let victim = &mut processes[usize::try_from(leader).unwrap() - 1];
        let killed = Instant::now();
        let mut child = victim.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let mut elected = None;
        loop {
            if elected.is_none() && leader_of(&processes).await.is_some_and(|new| new != leader) {
                elected = Some(killed.elapsed());
            }
            if elected.is_some() && barrier_anywhere(&processes).await {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "no write committed 30 s after the kill"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        gaps.push(killed.elapsed());
        elections.push(elected.unwrap_or_default());
        if std::env::var_os("AVOCET_BENCH_VERBOSE").is_some() {
            eprintln!(
                "kill of node {leader}: new leader seen after {:.0} ms, write committed after {:.0} ms",
                millis(elected.unwrap_or_default()),
                millis(killed.elapsed())
            );
        }
        processes[usize::try_from(leader).unwrap() - 1].spawn();
    }
    for process in &mut processes {
        if let Some(mut child) = process.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    gaps.sort();
    elections.sort();
    println!(
        "  of which: new leader seen p50 {:.0} ms, p99 {:.0} ms",
        millis(percentile(&elections, 50)),
        millis(percentile(&elections, 99))
    );
    println!(
        "Leader failover (3 processes, default timing: 50 ms heartbeat, 200-400 ms election cut in slots by node id; SIGKILL of the leader -> next committed write), {} kills: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        gaps.len(),
        millis(percentile(&gaps, 50)),
        millis(percentile(&gaps, 99)),
        millis(*gaps.last().unwrap())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("node") {
        run_node(&args[1..]);
        return;
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let only = args.iter().position(|arg| arg == "--only").and_then(|i| args.get(i + 1)).cloned();
    runtime.block_on(async {
        if only.as_deref().is_none_or(|only| only == "writes") {
            throughput(quick).await;
        }
        if only.as_deref().is_none_or(|only| only == "failover") {
            let kills = args
                .iter()
                .position(|arg| arg == "--kills")
                .and_then(|i| args.get(i + 1))
                .map(|n| n.parse().expect("--kills takes a count"));
            failover(kills.unwrap_or(if quick { 5 } else { 20 })).await;
        }
        if only.as_deref().is_none_or(|only| only == "firelag") {
            fire_lag(if quick { 100 } else { 1000 }, if quick { 1 } else { 2 }).await;
        }
    });
}
