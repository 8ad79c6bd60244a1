//! Partitions: an isolated leader is replaced, then rejoins and converges; five nodes keep
//! working with two of them cut off; a leaving leader hands over.

use std::time::Duration;

use crate::harness::Group;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced_and_rejoins() {
    let group = Group::start(3).await;
    let old = group.leader(Duration::from_secs(10)).await;
    group.put(old, "before", "1").await;

    // --- cut the leader off from both followers; the other two elect a new leader
    let rest: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    group.links.isolate(old, rest.clone());
    let new = group.leader_among(&rest, Duration::from_secs(10)).await;
    assert_ne!(new, old);

    // --- the majority keeps accepting writes
    group.put(rest[0], "during", "2").await;

    // --- heal: the old leader steps down, catches up and converges with the others
    group.links.heal();
    let leader = group.leader(Duration::from_secs(10)).await;
    assert_ne!(leader, old, "the partitioned leader's stale term cannot win back");
    group.put(old, "after", "3").await;
    let copies = group.converge(Duration::from_secs(10)).await;
    assert_eq!(copies[&old].entries.len(), 3, "{copies:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_survive_the_loss_of_two() {
    let group = Group::start(5).await;
    let leader = group.leader(Duration::from_secs(10)).await;

    // --- cut off two followers completely: three nodes are still a quorum
    let cut: Vec<u64> = (1..=5).filter(|id| *id != leader).take(2).collect();
    for id in &cut {
        group.links.isolate(*id, (1..=5).filter(|other| other != id));
    }
    for i in 0..20 {
        group.put(leader, &format!("k{i}"), "v").await;
    }

    // --- cut one more: no quorum, so a write cannot commit
    let third = (1..=5).find(|id| *id != leader && !cut.contains(id)).unwrap();
    group.links.isolate(third, (1..=5).filter(|other| *other != third));
    let blocked = tokio::time::timeout(
        Duration::from_millis(1500),
        group
            .node(leader)
            .write(avocet_consensus::kv::KvCommand::Put { key: "x".into(), value: "y".into() }),
    )
    .await;
    assert!(blocked.is_err() || blocked.unwrap().is_err(), "a minority must not commit");

    // --- heal: everyone converges, including the lost write if it was kept
    group.links.heal();
    group.leader(Duration::from_secs(10)).await;
    group.put(cut[0], "healed", "yes").await;
    let copies = group.converge(Duration::from_secs(15)).await;
    assert!(
        copies
            .values()
            .all(|copy| copy.entries.contains_key("k19") && copy.entries.contains_key("healed"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_leader_hands_over_to_a_caught_up_voter() {
    let mut group = Group::start(3).await;
    let old = group.leader(Duration::from_secs(10)).await;
    for i in 0..10 {
        group.put(old, &format!("k{i}"), "v").await;
    }

    // --- a graceful shutdown of the leader leaves a new leader behind, with every write
    let node = group.nodes.insert(old, None).flatten().unwrap();
    node.shutdown().await;
    let rest: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    let new = group.leader_among(&rest, Duration::from_secs(5)).await;
    assert_ne!(new, old);
    let count = group.node(new).read(|kv| kv.entries.len()).await.unwrap();
    assert_eq!(count, 10);
}
