//! Starts, stops and inspects a group of in-process nodes sharing one fault switchboard.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use avocet_consensus::kv::{KvCommand, KvStore};
use avocet_consensus::{LinkControl, NodeConfig, NodeId, RaftNode, StartError, Timing};
use tempfile::TempDir;

/// Gives the peer token every node of a test group uses.
pub(crate) const TOKEN: &str = "peer-token-for-tests";

/// Uses fast clocks so elections take a fraction of a second.
pub(crate) fn fast_timing() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(200),
        election_max: Duration::from_millis(400),
    }
}

/// Holds a group under test: its nodes (None while stopped), directories and addresses.
pub(crate) struct Group {
    pub(crate) nodes: BTreeMap<NodeId, Option<RaftNode<KvStore>>>,
    pub(crate) addresses: BTreeMap<NodeId, String>,
    pub(crate) links: LinkControl,
    pub(crate) dir: TempDir,
    pub(crate) snapshot_entries: u64,
}

/// Binds a loopback port for a node.
pub(crate) fn bind_any() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

/// Polls `check` every 20 ms until it returns a value, failing the test after `timeout`.
pub(crate) async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let poll = async {
        loop {
            if let Some(value) = check() {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    match tokio::time::timeout(timeout, poll).await {
        Ok(value) => value,
        Err(_) => panic!("no {what} within {timeout:?}"),
    }
}

impl Group {
    /// Returns the configuration of node `id` of this group.
    pub(crate) fn config(&self, id: NodeId, bootstrap: bool) -> NodeConfig {
        let mut config = NodeConfig::new(
            id,
            &self.addresses[&id],
            &self.dir.path().join(format!("node-{id}")),
            TOKEN,
        );
        config.peers = self
            .addresses
            .iter()
            .filter(|(peer, _)| self.nodes.contains_key(peer))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        config.bootstrap = bootstrap;
        config.timing = fast_timing();
        config.links = self.links.clone();
        config.snapshot_entries = self.snapshot_entries;
        config.entries_kept = self.snapshot_entries / 4;
        config
    }

    /// Starts a new group of `count` voters, bootstrapped by node 1, and waits for a leader.
    pub(crate) async fn start(count: u64) -> Group {
        Group::start_with_snapshots(count, 5_000).await
    }

    /// Starts a new group whose nodes snapshot every `snapshot_entries` entries.
    pub(crate) async fn start_with_snapshots(count: u64, snapshot_entries: u64) -> Group {
        let mut listeners = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for id in 1..=count {
            let (listener, address) = bind_any();
            listeners.insert(id, listener);
            addresses.insert(id, address);
        }
        let mut group = Group {
            nodes: addresses.keys().map(|id| (*id, None)).collect(),
            addresses,
            links: LinkControl::default(),
            dir: tempfile::tempdir().unwrap(),
            snapshot_entries,
        };
        for (id, listener) in listeners {
            let node = RaftNode::start(group.config(id, id == 1), listener).await.unwrap();
            group.nodes.insert(id, Some(node));
        }
        group.leader(Duration::from_secs(10)).await;
        group
    }

    /// Returns a running node.
    pub(crate) fn node(&self, id: NodeId) -> &RaftNode<KvStore> {
        self.nodes[&id].as_ref().unwrap()
    }

    /// Waits until the running nodes agree on one leader and returns it.
    pub(crate) async fn leader(&self, timeout: Duration) -> NodeId {
        eventually(timeout, "an agreed leader", || {
            let views: Vec<Option<NodeId>> =
                self.nodes.values().flatten().map(|node| node.status().leader_id).collect();
            let leader = (*views.first()?)?;
            let running = self.nodes.get(&leader).is_some_and(Option::is_some);
            (running && views.iter().all(|view| *view == Some(leader))).then_some(leader)
        })
        .await
    }

    /// Waits until a leader is elected among `among` (ignoring the other nodes' views).
    pub(crate) async fn leader_among(&self, among: &[NodeId], timeout: Duration) -> NodeId {
        eventually(timeout, "a leader among the majority", || {
            let views: Vec<Option<NodeId>> =
                among.iter().map(|id| self.node(*id).status().leader_id).collect();
            let leader = (*views.first()?)?;
            (among.contains(&leader) && views.iter().all(|view| *view == Some(leader)))
                .then_some(leader)
        })
        .await
    }

    /// Writes `key = value` through node `via`.
    pub(crate) async fn put(&self, via: NodeId, key: &str, value: &str) -> u64 {
        let command = KvCommand::Put { key: key.to_owned(), value: value.to_owned() };
        self.node(via)
            .write(command)
            .await
            .unwrap_or_else(|error| panic!("put {key} via {via}: {error}"))
            .index
    }

    /// Waits until every running node holds the same data, then returns each node's copy.
    pub(crate) async fn converge(&self, timeout: Duration) -> BTreeMap<NodeId, KvStore> {
        eventually(timeout, "converged copies", || {
            let copies: BTreeMap<NodeId, KvStore> = self
                .nodes
                .iter()
                .filter_map(|(id, node)| Some((*id, node.as_ref()?.read_local(Clone::clone))))
                .collect();
            let first = copies.values().next()?;
            copies.values().all(|copy| copy == first).then_some(copies.clone())
        })
        .await
    }

    /// Stops node `id` abruptly (a crash, seen from the rest of the group).
    pub(crate) async fn crash(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.insert(id, None).flatten() {
            node.abort().await;
        }
    }

    /// Starts node `id` again on its data directory and address.
    pub(crate) async fn restart(&mut self, id: NodeId) -> Result<(), StartError> {
        let listener = TcpListener::bind(&self.addresses[&id]).unwrap();
        let node = RaftNode::start(self.config(id, id == 1), listener).await?;
        self.nodes.insert(id, Some(node));
        Ok(())
    }

    /// Stops every node (gracefully) and keeps the directories.
    pub(crate) async fn stop_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(node) = self.nodes.insert(id, None).flatten() {
                node.shutdown().await;
            }
        }
    }
}
