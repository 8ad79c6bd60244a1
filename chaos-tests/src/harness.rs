//! The real-process harness: `avocet serve` processes on loopback, each with its own data
//! directory and ports, that a test kills (SIGKILL), pauses (SIGSTOP/SIGCONT) and restarts,
//! talking to them only through `avocetctl`. Every process and directory it made is removed
//! when the [`Cluster`] is dropped, also when the test panics.
//!
//! The binaries are the workspace's own: `AVOCET_BIN_DIR` if set, else the target directory
//! the running test was built into (`cargo build -p avocet-cli --bins` makes them; a workspace
//! test run builds them for the cli's tests anyway). The cli's own tests hand in theirs
//! ([`Cluster::start_with`]), so the same harness serves both suites.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::netns::Net;

/// The admin token every harness node accepts.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
const PEER_TOKEN: &str = "peer-token-for-tests";

/// A schedule both failover suites apply: a policy with two-hour intervals and a 06:30 daily
/// slot, and the MigrationSchedule `apps/app` on it.
pub const BUSY_SCHEDULE: &str = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: busy}
policy:
  interval: {intervalMinutes: 120, retain: 1000}
  daily: {time: \"06:30AM\", retain: 1000}
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: MigrationSchedule
metadata: {name: app, namespace: apps}
spec:
  schedulePolicyName: busy
  template: {spec: {clusterPair: remote, namespaces: [apps]}}
";

/// Where the `avocet` and `avocetctl` binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The service.
    pub avocet: PathBuf,
    /// The command-line client.
    pub avocetctl: PathBuf,
}

impl Binaries {
    /// Finds the binaries: `AVOCET_BIN_DIR`, else the target directory of this executable.
    pub fn locate() -> Result<Binaries, String> {
        let dir = match std::env::var_os("AVOCET_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
                // target/<profile>/deps/<test> or target/<profile>/<bin>
                let parent = exe.parent().ok_or("the executable has no folder")?;
                if parent.ends_with("deps") {
                    parent.parent().ok_or("deps has no parent")?.to_owned()
                } else {
                    parent.to_owned()
                }
            }
        };
        let binaries = Binaries { avocet: dir.join("avocet"), avocetctl: dir.join("avocetctl") };
        for path in [&binaries.avocet, &binaries.avocetctl] {
            if !path.is_file() {
                return Err(format!(
                    "{} is missing: build it with `cargo build -p avocet-cli --bins`, or set AVOCET_BIN_DIR",
                    path.display()
                ));
            }
        }
        Ok(binaries)
    }
}

/// Measures real time (how long a fault lasts, how long a failover took): the data plane's
/// stopwatch, the one sanctioned elapsed-time read.
pub use avocet_transfer::stopwatch::Stopwatch;

/// How a node starts when the test gives its whole command line (a StatefulSet pod's, for
/// instance) instead of the harness's own: the `avocet` arguments and the environment.
#[derive(Debug, Clone, Default)]
pub struct Pod {
    /// The arguments after the program name.
    pub args: Vec<String>,
    /// The environment.
    pub env: Vec<(String, String)>,
}

/// One node's addresses and, while it runs, its process.
#[derive(Debug)]
pub struct Node {
    /// The public gRPC address.
    pub api: String,
    /// The peer (Raft) address.
    pub raft: String,
    /// The metrics address.
    pub metrics: String,
    process: Option<Child>,
    paused: bool,
}

impl Node {
    /// Says whether the node's process runs (paused or not).
    pub fn running(&self) -> bool {
        self.process.is_some()
    }
}

/// How [`Cluster::assemble`] starts the nodes.
struct Setup<'a> {
    binaries: Binaries,
    extra: &'a [&'a str],
    net: Option<Net>,
    env: Vec<(String, String)>,
    pods: BTreeMap<u64, Pod>,
}

/// A group of real `avocet serve` processes and their directories.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes by id.
    pub nodes: BTreeMap<u64, Node>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    binaries: Binaries,
    /// The network namespaces the nodes run in, if they do (dropped after the processes).
    net: Option<Net>,
    /// Environment variables every node gets from its next start.
    env: Vec<(String, String)>,
    /// Nodes started from a command line the test gave, by id.
    pods: BTreeMap<u64, Pod>,
    /// Flags one node gets after the shared ones, by id.
    flags: BTreeMap<u64, Vec<String>>,
}

/// Runs `avocetctl` with the admin token against a cluster's nodes, from any thread: what
/// [`Cluster::ctl`] does, detached from the cluster (a watcher polling while the test kills
/// and restarts nodes).
#[derive(Debug, Clone)]
pub struct CtlRunner {
    avocetctl: PathBuf,
    /// The command that enters the hub namespace, when the nodes run in namespaces.
    prefix: Vec<String>,
    apis: BTreeMap<u64, String>,
}

impl CtlRunner {
    /// Runs `avocetctl args` against node `id`: (success, stdout, stderr).
    pub fn run(&self, id: u64, args: &[&str]) -> (bool, String, String) {
        self.run_with_input(id, args, None)
    }

    /// As [`CtlRunner::run`], with `input` on its standard input (for `apply -f -`).
    pub fn run_with_input(
        &self,
        id: u64,
        args: &[&str],
        input: Option<&str>,
    ) -> (bool, String, String) {
        let mut command = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(&self.avocetctl);
                command
            }
            None => Command::new(&self.avocetctl),
        };
        let server = self.apis.get(&id).map(|api| format!("http://{api}"));
        command
            .args(["--server", server.as_deref().unwrap_or("http://127.0.0.1:1")])
            .args(args)
            .env("AVOCET_TOKEN", ADMIN_TOKEN)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = command.spawn().and_then(|mut child| {
            if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
                use std::io::Write;
                stdin.write_all(text.as_bytes())?;
            }
            child.wait_with_output()
        });
        match output {
            Ok(out) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(error) => (false, String::new(), error.to_string()),
        }
    }

    /// Runs `avocetctl args -o json` against node `id` and parses what it prints.
    pub fn json(&self, id: u64, args: &[&str]) -> Option<Value> {
        let args: Vec<&str> = args.iter().copied().chain(["-o", "json"]).collect();
        let (ok, out, _) = self.run(id, &args);
        if ok { serde_json::from_str(&out).ok() } else { None }
    }

    /// Returns the node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.apis.keys().copied().collect()
    }
}

/// Sends `signal` (a name such as `STOP`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

impl Cluster {
    /// Starts `count` nodes, node 1 bootstrapping, each with `extra` flags.
    pub fn start(count: u64, extra: &[&str]) -> Result<Cluster, String> {
        Cluster::start_with(Binaries::locate()?, count, extra)
    }

    /// Starts `count` nodes of the given binaries, node 1 bootstrapping, with `extra` flags.
    ///
    /// Ports are picked free and released just before the nodes bind them, so another test
    /// may take one in between; a group whose node could not bind is stopped and started
    /// again on new ports (three tries).
    pub fn start_with(binaries: Binaries, count: u64, extra: &[&str]) -> Result<Cluster, String> {
        Cluster::start_with_env(binaries, count, extra, &[])
    }

    /// As [`Cluster::start_with`], every node also given `env`.
    pub fn start_with_env(
        binaries: Binaries,
        count: u64,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Cluster, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let mut cluster = Cluster::spawn_all(binaries.clone(), count, extra, env)?;
            match cluster.lost_a_port() {
                None => return Ok(cluster),
                Some(problem) => last = problem,
            }
        }
        Err(format!("the group did not start in three tries: {last}"))
    }

    fn spawn_all(
        binaries: Binaries,
        count: u64,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Cluster, String> {
        // Every port is held until all are picked, so no two are the same.
        let held: Vec<TcpListener> = (0..count * 3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("no free loopback port: {e}"))?;
        let mut ports = held.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port());
        let mut next = || format!("127.0.0.1:{}", ports.next().unwrap_or_default());
        let nodes = (1..=count)
            .map(|id| {
                let node = Node {
                    api: next(),
                    raft: next(),
                    metrics: next(),
                    process: None,
                    paused: false,
                };
                (id, node)
            })
            .collect();
        drop(held);
        let env = env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned()));
        let setup = Setup { binaries, extra, net: None, env: env.collect(), pods: BTreeMap::new() };
        Cluster::assemble(nodes, setup)
    }

    /// Makes the cluster's folder and starts every node of `nodes` (those with a [`Pod`] from
    /// its command line, the others from the harness's).
    fn assemble(nodes: BTreeMap<u64, Node>, setup: Setup<'_>) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let ids: Vec<u64> = if setup.pods.is_empty() {
            nodes.keys().copied().collect()
        } else {
            setup.pods.keys().copied().collect()
        };
        let mut cluster = Cluster {
            nodes,
            dir,
            extra: setup.extra.iter().map(|arg| (*arg).to_owned()).collect(),
            binaries: setup.binaries,
            net: setup.net,
            env: setup.env,
            pods: setup.pods,
            flags: BTreeMap::new(),
        };
        for id in ids {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// Starts `count` nodes as [`Cluster::start`] does, each in a network namespace of its own
    /// (see [`crate::netns`]) at `10.77.0.<id>` on the default ports 9001, 9010 and 9002, so
    /// that a test can partition them with [`Cluster::net`].
    pub fn start_in_namespaces(count: u64, extra: &[&str]) -> Result<Cluster, String> {
        let binaries = Binaries::locate()?;
        let ids: Vec<u64> = (1..=count).collect();
        let net = Net::create(&ids)?;
        let nodes = ids
            .iter()
            .map(|id| {
                let host = net.address(*id);
                let node = Node {
                    api: format!("{host}:9001"),
                    raft: format!("{host}:9010"),
                    metrics: format!("{host}:9002"),
                    process: None,
                    paused: false,
                };
                (*id, node)
            })
            .collect();
        let setup =
            Setup { binaries, extra, net: Some(net), env: Vec::new(), pods: BTreeMap::new() };
        Cluster::assemble(nodes, setup)
    }

    /// Starts `pods` (by node id) in `net`'s namespaces, each from its own command line, with
    /// the public API on port `api_port` of its address; pods not listed are left for
    /// [`Cluster::set_pod`] and [`Cluster::spawn`].
    pub fn start_pods(
        net: Net,
        pods: BTreeMap<u64, Pod>,
        api_port: u16,
    ) -> Result<Cluster, String> {
        let binaries = Binaries::locate()?;
        let nodes = net
            .nodes()
            .iter()
            .map(|id| {
                let host = net.address(*id);
                let node = Node {
                    api: format!("{host}:{api_port}"),
                    raft: String::new(),
                    metrics: String::new(),
                    process: None,
                    paused: false,
                };
                (*id, node)
            })
            .collect();
        let setup = Setup { binaries, extra: &[], net: Some(net), env: Vec::new(), pods };
        Cluster::assemble(nodes, setup)
    }

    /// Gives node `id` a new command line (a pod whose template changed) from its next start.
    pub fn set_pod(&mut self, id: u64, pod: Pod) {
        self.pods.insert(id, pod);
    }

    /// Returns the `avocet` binary the nodes run.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Runs `program args` where the nodes are reached (the hub namespace when they run in
    /// namespaces): (success, stdout, stderr).
    pub fn run_beside(&self, program: &Path, args: &[&str]) -> (bool, String, String) {
        match self.command_for(program, None).args(args).output() {
            Ok(out) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(error) => (false, String::new(), error.to_string()),
        }
    }

    /// The namespaces the nodes run in, when started by [`Cluster::start_in_namespaces`].
    pub fn net(&self) -> Option<&Net> {
        self.net.as_ref()
    }

    /// A command that runs `program` where the nodes are reached: in the hub namespace when
    /// they run in namespaces, else here.
    fn command_for(&self, program: &Path, node: Option<u64>) -> Command {
        let Some(net) = &self.net else { return Command::new(program) };
        let prefix = match node {
            Some(id) => net.exec_in(id),
            None => net.exec_in_hub(),
        };
        let mut command = Command::new(&prefix[0]);
        command.args(&prefix[1..]).arg(program);
        command
    }

    /// Waits (at most 10 s) until every node listens (its metrics port, bound last, accepts)
    /// or has exited; returns the log line of a node that exited for a port in use.
    fn lost_a_port(&mut self) -> Option<String> {
        let mut waiting: Vec<u64> = self.nodes.keys().copied().collect();
        for _ in 0..200 {
            waiting.retain(|id| {
                let node = &self.nodes[id];
                std::net::TcpStream::connect(&node.metrics).is_err()
            });
            let mut exited = None;
            for id in &waiting {
                let node = self.nodes.get_mut(id)?;
                if let Some(process) = node.process.as_mut()
                    && let Ok(Some(_)) = process.try_wait()
                {
                    exited = Some(*id);
                }
            }
            if let Some(id) = exited {
                let log = std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log")))
                    .unwrap_or_default();
                let line = log.lines().find(|l| l.contains("Address already in use"))?;
                return Some(format!("node {id}: {line}"));
            }
            if waiting.is_empty() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Returns the folder the cluster keeps its data and logs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    fn peers(&self) -> String {
        let peers: Vec<String> =
            self.nodes.iter().map(|(id, node)| format!("{id}={}", node.raft)).collect();
        peers.join(",")
    }

    /// Starts (or restarts) node `id` with the same command line every time.
    pub fn spawn(&mut self, id: u64) -> Result<(), String> {
        let data_dir = self.data_dir(id);
        let log_path = self.dir.path().join(format!("node-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let peers = self.peers();
        let mut command = self.command_for(&self.binaries.avocet, Some(id));
        if let Some(pod) = self.pods.get(&id) {
            command
                .args(&pod.args)
                .envs(pod.env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
                .stdout(Stdio::null())
                .stderr(log);
            let node = self.nodes.get_mut(&id).ok_or_else(|| format!("no node {id}"))?;
            node.process = Some(command.spawn().map_err(|e| format!("starting pod {id}: {e}"))?);
            node.paused = false;
            return Ok(());
        }
        let node = self.nodes.get_mut(&id).ok_or_else(|| format!("no node {id}"))?;
        command
            .args(["serve", "--id", &id.to_string(), "--listen", &node.api])
            .args(["--raft-listen", &node.raft, "--peers", &peers, "--data-dir"])
            .arg(&data_dir)
            .args(["--metrics-listen", &node.metrics])
            .args(&self.extra)
            .args(self.flags.get(&id).into_iter().flatten())
            .envs(self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .env("AVOCET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("AVOCET_PEER_TOKEN", PEER_TOKEN)
            .env("RUST_LOG", std::env::var("AVOCET_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log);
        if id == 1 {
            // The same command line on every restart: --bootstrap is a no-op once initialized.
            command.arg("--bootstrap");
        }
        node.process = Some(command.spawn().map_err(|e| format!("starting node {id}: {e}"))?);
        node.paused = false;
        Ok(())
    }

    /// Kills node `id` (SIGKILL) and starts it again with `flags` after the shared ones, from
    /// now on (replacing any it had; none to clear them).
    pub fn restart_with_flags(&mut self, id: u64, flags: &[&str]) -> Result<(), String> {
        self.kill(id);
        self.flags.insert(id, flags.iter().map(|flag| (*flag).to_owned()).collect());
        self.spawn(id)
    }

    /// Gives every node `name=value` in its environment from its next start.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Says whether any node's log holds `text`.
    pub fn logs_contain(&self, text: &str) -> bool {
        self.nodes.keys().any(|id| {
            let path = self.dir.path().join(format!("node-{id}.log"));
            std::fs::read_to_string(path).is_ok_and(|log| log.contains(text))
        })
    }

    /// Kills node `id` with SIGKILL (a paused one too).
    pub fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(mut process) = node.process.take()
        {
            let _ = process.kill();
            let _ = process.wait();
            node.paused = false;
        }
    }

    /// Stops node `id` with SIGTERM (a leader hands over first) and waits, at most 15 s, for
    /// it to exit; returns whether it exited cleanly (else it is killed).
    pub fn terminate(&mut self, id: u64) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else { return false };
        let Some(mut process) = node.process.take() else { return false };
        signal(process.id(), "TERM");
        for _ in 0..150 {
            if let Ok(Some(status)) = process.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = process.kill();
        let _ = process.wait();
        false
    }

    /// Stops every running node with SIGTERM, as [`Cluster::terminate`] does; returns, node by
    /// node, whether each exited cleanly.
    pub fn terminate_all(&mut self) -> Vec<bool> {
        let running: Vec<u64> =
            self.nodes.iter().filter(|(_, node)| node.running()).map(|(id, _)| *id).collect();
        running.into_iter().map(|id| self.terminate(id)).collect()
    }

    /// Pauses node `id` with SIGSTOP: it neither answers nor sends until [`Cluster::resume`].
    pub fn pause(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(process) = &node.process
        {
            signal(process.id(), "STOP");
            node.paused = true;
        }
    }

    /// Resumes a paused node with SIGCONT.
    pub fn resume(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(process) = &node.process
        {
            signal(process.id(), "CONT");
            node.paused = false;
        }
    }

    /// Runs `avocetctl` with the admin token against node `id`: (success, stdout, stderr).
    pub fn ctl(&self, id: u64, args: &[&str]) -> (bool, String, String) {
        self.ctl_runner().run(id, args)
    }

    /// Runs `avocetctl ... -o json` against node `id` and parses what it prints.
    pub fn ctl_json(&self, id: u64, args: &[&str]) -> Option<Value> {
        self.ctl_runner().json(id, args)
    }

    /// Returns what runs `avocetctl` against the nodes from another thread.
    pub fn ctl_runner(&self) -> CtlRunner {
        CtlRunner {
            avocetctl: self.binaries.avocetctl.clone(),
            prefix: self.net.as_ref().map(Net::exec_in_hub).unwrap_or_default(),
            apis: self.nodes.iter().map(|(id, node)| (*id, node.api.clone())).collect(),
        }
    }

    /// Returns the leader the running, unpaused nodes agree on, waiting at most `timeout`.
    pub fn leader(&self, timeout: Duration) -> Result<u64, String> {
        let all: Vec<u64> = self.nodes.keys().copied().collect();
        self.leader_among(&all, timeout)
    }

    /// Returns the leader the running, unpaused nodes of `ids` agree on (one of them), waiting
    /// at most `timeout`: the side of a partition that can elect one.
    pub fn leader_among(&self, ids: &[u64], timeout: Duration) -> Result<u64, String> {
        self.eventually(timeout, "an agreed leader", || {
            let live: Vec<u64> = self
                .nodes
                .iter()
                .filter(|(id, node)| ids.contains(id) && node.running() && !node.paused)
                .map(|(id, _)| *id)
                .collect();
            let views: Vec<Option<u64>> = live
                .iter()
                .map(|id| {
                    self.ctl_json(*id, &["cluster", "status"])
                        .and_then(|status| status["leaderId"].as_u64())
                })
                .collect();
            let leader = (*views.first()?)?;
            (live.contains(&leader) && views.iter().all(|view| *view == Some(leader)))
                .then_some(leader)
        })
    }

    /// Polls `check` every 100 ms until it returns a value; after `timeout`, an error naming
    /// `what` with the tail of every node's log.
    pub fn eventually<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<T, String> {
        let step = Duration::from_millis(100);
        for _ in 0..(timeout.as_millis() / step.as_millis()).max(1) {
            if let Some(value) = check() {
                return Ok(value);
            }
            std::thread::sleep(step);
        }
        Err(format!("no {what} within {timeout:?}; logs:\n{}", self.log_tails(200)))
    }

    /// Returns the last `lines` lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let tails: Vec<String> = self
            .nodes
            .keys()
            .map(|id| {
                let path = self.dir.path().join(format!("node-{id}.log"));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                format!("node {id}:\n{tail}")
            })
            .collect();
        tails.join("\n----\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.kill(id);
        }
    }
}
