//! Crash recovery, sled-style: a child process writes through a 1- and a 3-node group and is
//! killed with SIGKILL at varied points, many times; after each restart every acknowledged write
//! is still there and every node holds the same data.
//!
//! The test binary plays both parts: run normally it is the parent; with `AVOCET_CRASH_CHILD`
//! set it is the child, which starts the group on the given directories and ports, then either
//! writes `k<n> = <n>` forever, printing `ack <n>` after each commit, or prints its state once.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use avocet_consensus::kv::{KvCommand, KvStore};
use avocet_consensus::{NodeConfig, RaftNode, Timing};

const CHILD_ENV: &str = "AVOCET_CRASH_CHILD";
const TOKEN: &str = "crash-test-token";

/// Bounds how long one child run may take to start its group and acknowledge writes.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Describes what the child should do, passed as JSON in the environment.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildPlan {
    dir: PathBuf,
    ports: Vec<u16>,
    first_key: u64,
    verify: bool,
}

fn timing() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(150),
        election_max: Duration::from_millis(300),
    }
}

async fn start_group(plan: &ChildPlan) -> Vec<RaftNode<KvStore>> {
    let addresses: BTreeMap<u64, String> = plan
        .ports
        .iter()
        .enumerate()
        .map(|(i, port)| (i as u64 + 1, format!("127.0.0.1:{port}")))
        .collect();
    let mut nodes = Vec::new();
    for (id, address) in &addresses {
        let mut config = NodeConfig::new(*id, address, &plan.dir.join(format!("node-{id}")), TOKEN);
        config.peers = addresses.clone();
        config.bootstrap = *id == 1;
        config.timing = timing();
        // Snapshot often, so kills also land in snapshot building and log purging.
        config.snapshot_entries = 50;
        config.entries_kept = 10;
        let listener = TcpListener::bind(address).unwrap();
        nodes.push(RaftNode::start(config, listener).await.unwrap());
    }
    nodes[0].wait_for_leader(CHILD_START_TIMEOUT).await.expect("a leader is elected");
    nodes
}

fn run_child(plan: ChildPlan) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let nodes = start_group(&plan).await;
        let mut out = std::io::stdout().lock();
        if plan.verify {
            // Entries appended but not committed before the last kill may still commit now, so
            // re-read the leader's state until every node holds exactly it.
            let mut state = KvStore::default();
            let mut same = false;
            for _ in 0..500 {
                let leader = nodes[0].wait_for_leader(CHILD_START_TIMEOUT).await.unwrap();
                let leading = nodes.iter().find(|node| node.id() == leader).unwrap();
                if let Ok(read) = leading.read(Clone::clone).await {
                    state = read;
                    same = nodes.iter().all(|node| node.read_local(Clone::clone) == state);
                    if same {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let diagnosis: Vec<String> = nodes
                .iter()
                .map(|node| {
                    let copy = node.read_local(Clone::clone);
                    let metrics = node.raft().metrics().borrow().clone();
                    format!(
                        "node {}: {} keys, last index {}, applied {:?}, leader {:?}",
                        node.id(),
                        copy.entries.len(),
                        copy.last_index,
                        metrics.last_applied,
                        metrics.current_leader
                    )
                })
                .collect();
            let report =
                serde_json::json!({"same": same, "entries": state.entries, "nodes": diagnosis});
            writeln!(out, "\nstate {report}").unwrap();
            out.flush().unwrap();
            return;
        }
        // Ready once the group commits writes again: a restarted group elects a leader only
        // after its quiet start, and a kill before that would test nothing.
        let writer = &nodes[nodes.len() - 1];
        while writer.write(KvCommand::Delete { key: "warm-up".into() }).await.is_err() {}
        // A leading newline ends the harness's "test … " line that is still open.
        writeln!(out, "\nready").unwrap();
        out.flush().unwrap();
        for n in plan.first_key.. {
            let command = KvCommand::Put { key: format!("k{n}"), value: n.to_string() };
            if writer.write(command).await.is_ok() {
                writeln!(out, "ack {n}").unwrap();
                out.flush().unwrap();
            }
        }
    });
}

fn spawn_child(plan: &ChildPlan) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_writes_survive_sigkill",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, serde_json::to_string(plan).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads the child's protocol lines on a thread, so the parent can wait with a deadline; the
/// test harness's own lines ("running 1 test", …) are skipped.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let protocol =
                line == "ready" || line.starts_with("ack ") || line.starts_with("state ");
            if protocol && send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|listener| listener.local_addr().unwrap().port()).collect()
}

/// A small deterministic generator for kill delays (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn crash_cycles(dir: &Path, nodes: usize, cycles: u32, seed: u64) {
    let ports = free_ports(nodes);
    let mut rng = Rng(seed);
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut next_key = 0;
    for cycle in 0..cycles {
        // --- start the child, wait until it writes, let it run a varied time, kill it
        let plan = ChildPlan {
            dir: dir.to_path_buf(),
            ports: ports.clone(),
            first_key: next_key,
            verify: false,
        };
        let mut child = spawn_child(&plan);
        let received = lines(&mut child);
        let ready = received.recv_timeout(CHILD_START_TIMEOUT).unwrap_or_default();
        assert_eq!(ready, "ready", "cycle {cycle}: the child did not start its group");
        let run_for = Duration::from_millis(50 + rng.next() % 400);
        std::thread::sleep(run_for);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        while let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                acknowledged.insert(n, n.to_string());
                next_key = next_key.max(n + 1);
            }
        }
        // Keys of unacknowledged writes may or may not exist; never reuse them.
        next_key += 1_000;
    }
    assert!(
        acknowledged.len() > usize::try_from(cycles).unwrap(),
        "too few writes were acknowledged: {}",
        acknowledged.len()
    );

    // --- restart once more and read everything back
    let plan = ChildPlan { dir: dir.to_path_buf(), ports, first_key: 0, verify: true };
    let mut child = spawn_child(&plan);
    let received = lines(&mut child);
    let line = received.recv_timeout(CHILD_START_TIMEOUT).unwrap_or_default();
    child.wait().unwrap();
    let rest =
        line.strip_prefix("state ").unwrap_or_else(|| panic!("the verifying child said {line:?}"));
    let report: serde_json::Value = serde_json::from_str(rest).unwrap();
    assert_eq!(
        report["same"], true,
        "nodes hold different data after restart: {:#}",
        report["nodes"]
    );
    let entries: BTreeMap<String, String> =
        serde_json::from_value(report["entries"].clone()).unwrap();
    let missing: Vec<u64> = acknowledged
        .keys()
        .filter(|n| entries.get(&format!("k{n}")) != Some(&n.to_string()))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Ok(plan) = std::env::var(CHILD_ENV) {
        run_child(serde_json::from_str(&plan).unwrap());
        return;
    }
    // --- a single-node group, killed eight times
    let dir = tempfile::tempdir().unwrap();
    crash_cycles(&dir.path().join("one"), 1, 8, 0x5eed_0001);
    // --- a three-node group in one process, killed eight times
    crash_cycles(&dir.path().join("three"), 3, 8, 0x5eed_0003);
}
