//! Real `avocet serve` processes for these tests: the chaos harness's [`Cluster`] with this
//! package's binaries and the suite's timing flags, whose waits panic rather than return
//! errors; every process is killed when the test ends.

use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::time::Duration;

use avocet_chaos_tests::harness::{Binaries, Cluster};

pub(crate) use avocet_chaos_tests::harness::ADMIN_TOKEN;

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

/// A group of real processes: a [`Cluster`] whose waits panic.
pub(crate) struct Group(Cluster);

impl Deref for Group {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.0
    }
}

impl DerefMut for Group {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.0
    }
}

impl Group {
    /// Starts `count` nodes; node 1 bootstraps the group.
    pub(crate) fn start(count: u64) -> Group {
        Group::start_with(count, &[])
    }

    /// Starts `count` nodes with `extra` flags on every command line.
    pub(crate) fn start_with(count: u64, extra: &[&str]) -> Group {
        let binaries = Binaries {
            avocet: env!("CARGO_BIN_EXE_avocet").into(),
            avocetctl: env!("CARGO_BIN_EXE_avocetctl").into(),
        };
        let timing = ["--heartbeat-ms", "50", "--election-timeout-ms", "300-600"];
        let flags: Vec<&str> = timing.iter().chain(extra).copied().collect();
        Group(Cluster::start_with(binaries, count, &flags).unwrap())
    }

    /// Starts (or restarts) node `id` with the same command line every time.
    pub(crate) fn spawn(&mut self, id: u64) {
        self.0.spawn(id).unwrap();
    }

    /// Returns node `id`'s `cluster status -o json`, if it answers.
    pub(crate) fn status(&self, id: u64) -> Option<serde_json::Value> {
        self.ctl_json(id, &["cluster", "status"])
    }

    /// Polls `check` every 100 ms until it returns a value; panics with the nodes' logs after
    /// `timeout`.
    pub(crate) fn eventually<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: impl FnMut() -> Option<T>,
    ) -> T {
        self.0.eventually(timeout, what, check).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Waits until the running nodes agree on a leader among them and returns it.
    pub(crate) fn leader(&self, timeout: Duration) -> u64 {
        self.0.leader(timeout).unwrap_or_else(|error| panic!("{error}"))
    }
}
