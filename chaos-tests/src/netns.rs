//! Partitions between real processes: each node runs in a network namespace of its own, wired
//! to a hub namespace's bridge by a veth pair, as pods are wired to a node's bridge. The test
//! itself reaches the nodes from the hub (`ip netns exec HUB avocetctl …`), so nothing is
//! added to the machine's own network. Faults are routes and links in the namespaces:
//!
//! - [`Net::isolate`]: the node's link goes down; it neither sends nor receives.
//! - [`Net::cut`]: a blackhole route in one node's namespace drops every packet it sends to
//!   another (a one-way loss: the other still reaches it, but no reply gets back).
//! - [`Net::heal`]: every link up, every blackhole gone.
//!
//! Node `i` has address `10.77.0.i` and every node uses the same ports, as pods do. Needs
//! `ip` (iproute2) and the right to make namespaces (root, or CAP_NET_ADMIN and CAP_SYS_ADMIN);
//! [`Net::create`] says which is missing. Namespaces are removed on drop, and ones left by a
//! test that was killed are swept by the next [`Net::create`].

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The prefix of every namespace this module makes: `avc-<pid>-<n>-hub`, `avc-<pid>-<n>-<i>`.
const PREFIX: &str = "avc-";

/// A hub and one namespace per node.
#[derive(Debug)]
pub struct Net {
    tag: String,
    nodes: Vec<u64>,
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` (iproute2) cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Removes namespaces whose creating process is gone (a test killed before its drop ran).
fn sweep() {
    let Ok(list) = ip(&["netns", "list"]) else { return };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            kill_inside(name);
            let _ = ip(&["netns", "del", name]);
            let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(name));
        }
    }
}

/// Kills every process left in namespace `name`.
fn kill_inside(name: &str) {
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

impl Net {
    /// Makes the hub and a namespace for each of `nodes`, wired and up.
    pub fn create(nodes: &[u64]) -> Result<Net, String> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        sweep();
        let tag =
            format!("{PREFIX}{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
        let net = Net { tag, nodes: nodes.to_vec() };
        net.wire().map_err(|e| {
            format!("cannot make network namespaces for the partition tests (they need root or CAP_NET_ADMIN and CAP_SYS_ADMIN, and iproute2): {e}")
        })?;
        Ok(net)
    }

    fn wire(&self) -> Result<(), String> {
        let hub = self.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "addr", "add", "10.77.0.254/24", "dev", "br0"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for id in &self.nodes {
            let ns = self.namespace(*id);
            let port = format!("h{id}");
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.address(*id)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The nodes' ids.
    pub fn nodes(&self) -> &[u64] {
        &self.nodes
    }

    /// Gives every namespace (nodes and hub) an `/etc/hosts` of `entries` (address, names) and
    /// localhost: `ip netns exec` shows `/etc/netns/<namespace>/hosts` as `/etc/hosts`, so names
    /// such as a StatefulSet's pod DNS names resolve inside, and nothing of the machine's
    /// changes. Removed on drop.
    pub fn write_hosts(&self, entries: &[(String, String)]) -> Result<(), String> {
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (address, names) in entries {
            text.push_str(&format!("{address} {names}\n"));
        }
        let namespaces = self.nodes.iter().map(|id| self.namespace(*id)).chain([self.hub()]);
        for ns in namespaces {
            let dir = std::path::Path::new("/etc/netns").join(&ns);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("hosts"), &text)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// The hub's namespace, where the test's own commands run.
    pub fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    /// Node `id`'s namespace.
    pub fn namespace(&self, id: u64) -> String {
        format!("{}-{id}", self.tag)
    }

    /// Node `id`'s address.
    pub fn address(&self, id: u64) -> String {
        format!("10.77.0.{id}")
    }

    /// The command prefix that runs a program in node `id`'s namespace.
    pub fn exec_in(&self, id: u64) -> Vec<String> {
        ["ip", "netns", "exec"].map(str::to_owned).into_iter().chain([self.namespace(id)]).collect()
    }

    /// The command prefix that runs a program in the hub.
    pub fn exec_in_hub(&self) -> Vec<String> {
        ["ip", "netns", "exec"].map(str::to_owned).into_iter().chain([self.hub()]).collect()
    }

    /// Takes node `id`'s link down: it neither sends nor receives.
    pub fn isolate(&self, id: u64) -> Result<(), String> {
        ip(&["-n", &self.hub(), "link", "set", &format!("h{id}"), "down"]).map(drop)
    }

    /// Drops every packet node `from` sends to node `to`.
    pub fn cut(&self, from: u64, to: u64) -> Result<(), String> {
        let route = format!("{}/32", self.address(to));
        ip(&["-n", &self.namespace(from), "route", "replace", "blackhole", &route]).map(drop)
    }

    /// Splits the nodes into `side` and the rest: no packet crosses either way.
    pub fn split(&self, side: &[u64]) -> Result<(), String> {
        for a in &self.nodes {
            for b in &self.nodes {
                if side.contains(a) != side.contains(b) {
                    self.cut(*a, *b)?;
                }
            }
        }
        Ok(())
    }

    /// Brings every link up and removes every blackhole route.
    pub fn heal(&self) -> Result<(), String> {
        for id in &self.nodes {
            ip(&["-n", &self.hub(), "link", "set", &format!("h{id}"), "up"])?;
            let routes = ip(&["-n", &self.namespace(*id), "route", "show", "type", "blackhole"])?;
            for route in routes.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                ip(&["-n", &self.namespace(*id), "route", "del", "blackhole", route])?;
            }
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for id in &self.nodes {
            let ns = self.namespace(*id);
            kill_inside(&ns);
            let _ = ip(&["netns", "del", &ns]);
            let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&ns));
        }
        kill_inside(&self.hub());
        let _ = ip(&["netns", "del", &self.hub()]);
        let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(self.hub()));
    }
}
