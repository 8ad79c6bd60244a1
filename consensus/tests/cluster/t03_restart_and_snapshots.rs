//! The whole group restarts from disk intact; a new node joins through a snapshot.

use std::time::Duration;

use crate::harness::{Group, bind_any};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_group_restarts_from_disk_with_state_intact() {
    let mut group = Group::start(3).await;
    let leader = group.leader(Duration::from_secs(10)).await;
    for i in 0..30 {
        group.put(leader, &format!("k{i}"), &i.to_string()).await;
    }
    let before = group.converge(Duration::from_secs(10)).await;

    // --- stop every node, then start them all again on the same directories
    group.stop_all().await;
    for id in 1..=3 {
        group.restart(id).await.unwrap();
    }
    group.leader(Duration::from_secs(10)).await;
    let after = group.converge(Duration::from_secs(10)).await;
    assert_eq!(before[&1].entries, after[&1].entries);

    // --- and keeps working
    let any = group.leader(Duration::from_secs(10)).await;
    group.put(any, "after-restart", "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_by_snapshot_and_is_promoted() {
    // Snapshot every 20 entries and keep only 5 before it, so the log a newcomer needs is gone.
    let mut group = Group::start_with_snapshots(3, 20).await;
    let leader = group.leader(Duration::from_secs(10)).await;
    for i in 0..100 {
        group.put(leader, &format!("k{i}"), "v").await;
    }
    let status = group.node(leader).status();
    assert!(status.commit_index >= 100);
    let purged = group.node(leader).raft().metrics().borrow().purged;
    assert!(purged.is_some(), "the leader purged its log after snapshots");

    // --- start node 4 empty (no --peers: it joins later), add it as a learner
    let (listener, address) = bind_any();
    group.addresses.insert(4, address.clone());
    let mut config = group.config(4, false);
    config.peers.clear();
    let node = avocet_consensus::RaftNode::start(config, listener).await.unwrap();
    group.nodes.insert(4, Some(node));
    group.node(2).add_learner(4, &address).await.unwrap();

    // --- it receives a snapshot plus the tail, then is promoted to a voter
    let copies = group.converge(Duration::from_secs(15)).await;
    assert_eq!(copies[&4].entries.len(), 100);
    group.node(3).promote(4).await.unwrap();
    let status = group.node(leader).status();
    let roles: Vec<_> = status.members.iter().map(|m| (m.id, m.role)).collect();
    assert!(roles.iter().all(|(_, role)| *role != avocet_consensus::Role::Learner), "{roles:?}");
    assert_eq!(group.node(4).group(), group.node(1).group());

    // --- removing a node shrinks the group
    group.node(leader).remove(4).await.unwrap();
    let status = group.node(leader).status();
    assert_eq!(status.members.len(), 3);
    group.crash(4).await;
}
