//! Starts and stops real `avocet serve` processes; every process is killed when the test ends.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

pub(crate) const ADMIN_TOKEN: &str = "admin-token-for-tests";
const PEER_TOKEN: &str = "peer-token-for-tests";

/// Holds one node's addresses and, while it runs, its process.
pub(crate) struct Node {
    pub(crate) api: String,
    pub(crate) raft: String,
    pub(crate) metrics: String,
    pub(crate) process: Option<Child>,
}

/// Holds a group of real processes and their directories.
pub(crate) struct Group {
    pub(crate) nodes: BTreeMap<u64, Node>,
    dir: TempDir,
    extra: Vec<String>,
}

/// Runs the real `kubectl` against the cluster of `kubeconfig` (its cache beside the file) and
/// returns (success, stdout, stderr).
pub(crate) fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let dir = kubeconfig.parent().unwrap();
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", dir.join("kube-cache"))
        .env("HOME", dir)
        .output()
        .expect("kubectl is on the PATH (scripts/test.sh installs it)");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs `avocetctl` with the admin token and returns (success, stdout, stderr).
pub(crate) fn avocetctl(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_avocetctl"))
        .args(args)
        .env("AVOCET_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

impl Group {
    /// Starts `count` nodes; node 1 bootstraps the group.
    pub(crate) fn start(count: u64) -> Group {
        Group::start_with(count, &[])
    }

    /// Starts `count` nodes with `extra` flags on every command line.
    pub(crate) fn start_with(count: u64, extra: &[&str]) -> Group {
        // Every port is held until all are picked, so no two of the group's are the same.
        let held: Vec<TcpListener> =
            (0..count * 3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let mut ports = held.iter().map(|l| l.local_addr().unwrap().port());
        let mut next = || format!("127.0.0.1:{}", ports.next().unwrap());
        let nodes = (1..=count)
            .map(|id| {
                let node = Node { api: next(), raft: next(), metrics: next(), process: None };
                (id, node)
            })
            .collect();
        drop(held);
        let extra = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let mut group = Group { nodes, dir: tempfile::tempdir().unwrap(), extra };
        for id in 1..=count {
            group.spawn(id);
        }
        group
    }

    fn peers(&self) -> String {
        self.nodes
            .iter()
            .map(|(id, node)| format!("{id}={}", node.raft))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Returns node `id`'s data directory.
    pub(crate) fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// Starts (or restarts) node `id` with the same command line every time.
    pub(crate) fn spawn(&mut self, id: u64) {
        let data_dir: PathBuf = self.dir.path().join(format!("node-{id}"));
        let log = std::fs::File::create(self.dir.path().join(format!("node-{id}.log"))).unwrap();
        let peers = self.peers();
        let extra = self.extra.clone();
        let node = self.nodes.get_mut(&id).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_avocet"));
        command
            .args([
                "serve",
                "--id",
                &id.to_string(),
                "--listen",
                &node.api,
                "--raft-listen",
                &node.raft,
            ])
            .args(["--peers", &peers, "--data-dir"])
            .arg(&data_dir)
            .args(["--metrics-listen", &node.metrics])
            .args(["--heartbeat-ms", "50", "--election-timeout-ms", "300-600"])
            .args(&extra)
            .env("AVOCET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("AVOCET_PEER_TOKEN", PEER_TOKEN)
            .env("RUST_LOG", std::env::var("AVOCET_TEST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .stdout(Stdio::null())
            .stderr(log);
        if id == 1 {
            // The same command line on every restart: --bootstrap is a no-op once initialized.
            command.arg("--bootstrap");
        }
        node.process = Some(command.spawn().unwrap());
    }

    /// Runs `avocetctl` against node `id` and returns (success, stdout, stderr).
    pub(crate) fn ctl(&self, id: u64, args: &[&str]) -> (bool, String, String) {
        let server = format!("http://{}", self.nodes[&id].api);
        avocetctl(&[&["--server", server.as_str()], args].concat())
    }

    /// Returns node `id`'s `cluster status -o json`, if it answers.
    pub(crate) fn status(&self, id: u64) -> Option<serde_json::Value> {
        let (ok, out, _) = self.ctl(id, &["cluster", "status", "-o", "json"]);
        ok.then(|| serde_json::from_str(&out).unwrap())
    }

    /// Polls `check` every 100 ms until it returns a value or `timeout` passes.
    pub(crate) fn eventually<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let step = Duration::from_millis(100);
        let attempts = timeout.as_millis() / step.as_millis();
        for _ in 0..attempts {
            if let Some(value) = check() {
                return value;
            }
            std::thread::sleep(step);
        }
        let logs: Vec<String> = self
            .nodes
            .keys()
            .map(|id| {
                std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log")))
                    .unwrap_or_default()
            })
            .collect();
        panic!("no {what} within {timeout:?}; logs:\n{}", logs.join("\n----\n"));
    }

    /// Waits until the running nodes agree on a leader among them and returns it.
    pub(crate) fn leader(&self, timeout: Duration) -> u64 {
        self.eventually(timeout, "agreed leader", || {
            let running: Vec<u64> = self
                .nodes
                .iter()
                .filter(|(_, node)| node.process.is_some())
                .map(|(id, _)| *id)
                .collect();
            let views: Vec<Option<u64>> = running
                .iter()
                .map(|id| self.status(*id).and_then(|status| status["leaderId"].as_u64()))
                .collect();
            let leader = (*views.first()?)?;
            (running.contains(&leader) && views.iter().all(|view| *view == Some(leader)))
                .then_some(leader)
        })
    }

    /// Kills node `id` with SIGKILL.
    pub(crate) fn kill(&mut self, id: u64) {
        if let Some(mut process) = self.nodes.get_mut(&id).unwrap().process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    /// Sends SIGTERM to every node and waits (bounded) for each to exit on its own.
    pub(crate) fn terminate_all(&mut self) -> Vec<bool> {
        let mut clean = Vec::new();
        for node in self.nodes.values_mut() {
            let Some(mut process) = node.process.take() else { continue };
            let _ = Command::new("kill").args(["-TERM", &process.id().to_string()]).status();
            let mut exited = false;
            for _ in 0..100 {
                if let Ok(Some(status)) = process.try_wait() {
                    exited = status.success();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !exited {
                let _ = process.kill();
                let _ = process.wait();
            }
            clean.push(exited);
        }
        clean
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut process) = node.process.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}
