//! A node refuses to start, without touching its data, on the wrong directory or a
//! contradictory peer list; peers of another group or with another token are refused.

use std::time::Duration;

use avocet_consensus::kv::KvStore;
use avocet_consensus::{RaftNode, RequestError, StartError};

use crate::harness::{Group, TOKEN, bind_any};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_wrong_directories_and_contradictory_peers() {
    let mut group = Group::start(3).await;
    let leader = group.leader(Duration::from_secs(10)).await;
    group.put(leader, "k", "v").await;
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    group.stop_all().await;
    let identity_file = group.dir.path().join(format!("node-{victim}/identity"));
    let identity_before = std::fs::read(&identity_file).unwrap();

    // --- the directory of node `victim` started as another node id
    let mut config = group.config(victim, false);
    config.id = 9;
    config.peers.insert(9, config.advertise.clone());
    config.peers.remove(&victim);
    let error = RaftNode::<KvStore>::start(config, bind_any().0).await.unwrap_err();
    assert!(
        matches!(error, StartError::WrongNode { stored, given: 9, .. } if stored == victim),
        "{error}"
    );

    // --- a peer list that moves a stored member to another address
    let mut config = group.config(victim, false);
    let other = (1..=3).find(|id| *id != victim).unwrap();
    config.peers.insert(other, "127.0.0.1:1".to_owned());
    let error = RaftNode::<KvStore>::start(config, bind_any().0).await.unwrap_err();
    assert!(matches!(error, StartError::Membership { .. }), "{error}");
    assert!(error.to_string().contains(&format!("node {other} is at")), "{error}");

    // --- a peer list that lacks a stored voter
    let mut config = group.config(victim, false);
    config.peers.remove(&other);
    let error = RaftNode::<KvStore>::start(config, bind_any().0).await.unwrap_err();
    assert!(error.to_string().contains("missing from --peers"), "{error}");

    // --- this node's own entry in --peers does not match its address
    let mut config = group.config(victim, false);
    config.advertise = "127.0.0.1:2".to_owned();
    let error = RaftNode::<KvStore>::start(config, bind_any().0).await.unwrap_err();
    assert!(matches!(error, StartError::Config(_)), "{error}");

    // --- none of these refusals changed the node's identity or state: it restarts as before
    assert_eq!(std::fs::read(&identity_file).unwrap(), identity_before);
    for id in 1..=3 {
        group.restart(id).await.unwrap();
    }
    let leader = group.leader(Duration::from_secs(10)).await;
    let copies = group.converge(Duration::from_secs(10)).await;
    assert_eq!(copies[&victim].entries.get("k").map(String::as_str), Some("v"));
    group.put(leader, "k2", "v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_another_group_or_token_are_refused() {
    let mut a = Group::start(1).await;
    let b = Group::start(2).await;
    assert_ne!(a.node(1).group(), b.node(1).group());

    // --- group A's node, restarted with group B's node 2 listed as a peer, refuses to start
    a.stop_all().await;
    let mut config = a.config(1, false);
    config.peers.insert(2, b.addresses[&2].clone());
    let listener = std::net::TcpListener::bind(&a.addresses[&1]).unwrap();
    let error = RaftNode::<KvStore>::start(config, listener).await.unwrap_err();
    assert!(error.to_string().contains("belongs to group"), "{error}");

    // --- a peer list that names the wrong node at an address is refused
    let mut config = a.config(1, false);
    config.peers.insert(2, b.addresses[&1].clone());
    let listener = std::net::TcpListener::bind(&a.addresses[&1]).unwrap();
    let error = RaftNode::<KvStore>::start(config, listener).await.unwrap_err();
    assert!(error.to_string().contains("but node 1 answers there"), "{error}");

    // --- bootstrapping next to a node that already belongs to a group is refused
    let dir = tempfile::tempdir().unwrap();
    let (listener, address) = bind_any();
    let mut config = avocet_consensus::NodeConfig::new(3, &address, dir.path(), TOKEN);
    config.bootstrap = true;
    config.peers.insert(3, address.clone());
    config.peers.insert(1, b.addresses[&1].clone());
    let error = RaftNode::<KvStore>::start(config, listener).await.unwrap_err();
    assert!(error.to_string().contains("already belongs to group"), "{error}");

    // --- a wrong peer token is refused by the peer
    let dir = tempfile::tempdir().unwrap();
    let (listener, address) = bind_any();
    let mut config = avocet_consensus::NodeConfig::new(3, &address, dir.path(), "wrong-token");
    config.peers.insert(3, address);
    config.peers.insert(1, b.addresses[&1].clone());
    let error = RaftNode::<KvStore>::start(config, listener).await.unwrap_err();
    assert!(error.to_string().contains("wrong peer token"), "{error}");

    // --- a membership change naming an unknown node is a clear refusal
    match b.node(1).promote(7).await {
        Err(RequestError::Rejected(reason)) => assert!(reason.contains("not a member"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
