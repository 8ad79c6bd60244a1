//! Writes replicate to every node; followers forward writes; reads are linearizable on the leader.

use std::time::Duration;

use avocet_consensus::kv::KvCommand;
use avocet_consensus::{RequestError, Role};

use crate::harness::Group;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_node_reach_every_node() {
    // --- a three-node group elects a leader
    let group = Group::start(3).await;
    let leader = group.leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // --- writes through the leader and through a follower (forwarded) both commit
    let first = group.put(leader, "a", "1").await;
    let second = group.put(follower, "b", "2").await;
    assert!(second > first, "log indexes increase: {first} then {second}");

    // --- every node converges on the same data
    let copies = group.converge(Duration::from_secs(10)).await;
    for copy in copies.values() {
        assert_eq!(copy.entries.get("a").map(String::as_str), Some("1"));
        assert_eq!(copy.entries.get("b").map(String::as_str), Some("2"));
    }

    // --- the leader serves linearizable reads; a follower names the leader instead
    let value = group.node(leader).read(|kv| kv.entries.get("b").cloned()).await.unwrap();
    assert_eq!(value.as_deref(), Some("2"));
    match group.node(follower).read(|kv| kv.entries.len()).await {
        Err(RequestError::NotLeader { me, leader: named }) => {
            assert_eq!(me, follower);
            assert_eq!(named, Some(leader));
        }
        other => panic!("a follower read should say who leads, got {other:?}"),
    }

    // --- status names the leader, the voters and how far each has replicated
    let status = group.node(leader).status();
    assert_eq!(status.leader_id, Some(leader));
    assert_eq!(status.members.len(), 3);
    assert!(status.commit_index >= second);
    let roles: Vec<Role> = status.members.iter().map(|member| member.role).collect();
    assert_eq!(roles.iter().filter(|role| **role == Role::Leader).count(), 1);
    assert!(status.members.iter().all(|member| member.matched_index >= second), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_previous_values_follow_the_log() {
    let group = Group::start(1).await;
    group.put(1, "k", "v1").await;
    let response =
        group.node(1).write(KvCommand::Put { key: "k".into(), value: "v2".into() }).await.unwrap();
    assert_eq!(response.previous.as_deref(), Some("v1"));
    let response = group.node(1).write(KvCommand::Delete { key: "k".into() }).await.unwrap();
    assert_eq!(response.previous.as_deref(), Some("v2"));
    assert_eq!(group.node(1).read(|kv| kv.entries.len()).await.unwrap(), 0);
}
