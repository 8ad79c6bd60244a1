//! Partitions between real `avocet serve` processes, each in a network namespace of its own
//! (see `avocet_chaos_tests::netns`), on a clock running an hour a second: the leader isolated,
//! one-way loss from the leader, and a minority/majority split of five nodes. The side with a
//! majority elects a leader and keeps firing; the other side cannot commit a fire; once healed
//! there is one leader, and the oracle finds no slot fired twice, lost or early.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use avocet_chaos_tests::harness::Cluster;
use avocet_chaos_tests::scenario;

/// Starts `nodes` nodes in namespaces on an hour-a-second clock with the schedule applied;
/// returns the cluster and its leader.
fn partitionable(nodes: u64) -> (Cluster, u64) {
    let epoch = scenario::epoch_now();
    let flags = scenario::fast_flags(epoch);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cluster = Cluster::start_in_namespaces(nodes, &flags).unwrap();
    let leader = cluster.leader(Duration::from_secs(30)).unwrap();
    scenario::schedule(&cluster, leader, epoch).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    (cluster, leader)
}

/// Heals, waits for one leader all nodes agree on, lets slots fire, and judges.
fn heal_and_judge(cluster: &Cluster) {
    cluster.net().unwrap().heal().unwrap();
    cluster.leader(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // At least four interval slots fell due, and none was missed, doubled or early.
    if let Err(violations) = scenario::judge_at_least(cluster, 4) {
        panic!("{violations:#?}");
    }
}

#[test]
fn an_isolated_leader_is_replaced_and_the_majority_keeps_firing() {
    let (cluster, leader) = partitionable(3);
    cluster.net().unwrap().isolate(leader).unwrap();
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let next = cluster.leader_among(&others, Duration::from_secs(20)).unwrap();
    assert_ne!(next, leader);
    // Three group hours pass on the majority's side while the old leader is cut off.
    std::thread::sleep(Duration::from_secs(3));
    heal_and_judge(&cluster);
}

#[test]
fn one_way_loss_from_the_leader_moves_leadership_and_doubles_no_slot() {
    let (cluster, leader) = partitionable(3);
    let net = cluster.net().unwrap();
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    // The leader still hears the others but nothing it sends arrives.
    for other in &others {
        net.cut(leader, *other).unwrap();
    }
    let next = cluster.leader_among(&others, Duration::from_secs(20)).unwrap();
    assert_ne!(next, leader);
    std::thread::sleep(Duration::from_secs(3));
    heal_and_judge(&cluster);
}

#[test]
fn a_minority_with_the_leader_is_split_off_from_a_majority_of_five() {
    let (cluster, leader) = partitionable(5);
    let companion = (1..=5).find(|id| *id != leader).unwrap();
    cluster.net().unwrap().split(&[leader, companion]).unwrap();
    let majority: Vec<u64> = (1..=5).filter(|id| *id != leader && *id != companion).collect();
    let next = cluster.leader_among(&majority, Duration::from_secs(20)).unwrap();
    assert!(majority.contains(&next));
    std::thread::sleep(Duration::from_secs(3));
    heal_and_judge(&cluster);
}
