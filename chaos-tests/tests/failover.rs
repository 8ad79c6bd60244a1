//! Real-process failover faults judged by the oracle: three `avocet serve` processes on a
//! clock running an hour a second, an interval and a daily schedule, and the leader paused
//! (SIGSTOP) for longer than an election takes, then resumed, or killed (SIGKILL) and
//! restarted, or killed at the moment slots fall due; a rolling restart (SIGTERM) and a full
//! group restart; on five nodes, the leader paused and a follower killed at once. Only `avocetctl` is used to look: no slot fired twice, every slot fired or
//! coalesced, none early; the old leader rejoins as a follower.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use avocet_chaos_tests::harness::Cluster;
use avocet_chaos_tests::scenario::{self, real_now};

/// Starts three nodes on an hour-a-second clock and applies the schedule; returns the
/// cluster and its leader.
fn scheduled_cluster() -> (Cluster, u64) {
    let (cluster, leader, _) = scheduled_cluster_at(3);
    (cluster, leader)
}

/// As [`scheduled_cluster`], and returns the real instant of the schedule's first interval
/// slot (its creation), from which its slots come every 2 real seconds.
fn scheduled_cluster_at(nodes: u64) -> (Cluster, u64, DateTime<Utc>) {
    let epoch = scenario::epoch_now();
    let flags = scenario::fast_flags(epoch);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cluster = Cluster::start(nodes, &flags).unwrap();
    let leader = cluster.leader(Duration::from_secs(30)).unwrap();
    let anchor = scenario::schedule(&cluster, leader, epoch).unwrap();
    (cluster, leader, anchor)
}

/// Suspends the schedule, then judges every policy type through the public API: about 12 s
/// at an hour a second gives several interval slots, and a daily one or none.
fn judge(cluster: &Cluster) {
    // At least four interval slots fell due, and none was missed, doubled or early.
    if let Err(violations) = scenario::judge_at_least(cluster, 4) {
        panic!("{violations:#?}");
    }
}

#[test]
fn a_leader_paused_past_the_election_timeout_loses_and_doubles_no_slot() {
    let (mut cluster, leader) = scheduled_cluster();
    std::thread::sleep(Duration::from_secs(4));
    cluster.pause(leader);
    // Two seconds of silence (election timeouts are 0.3–0.6 s): the others elect a new leader.
    let next = cluster.leader(Duration::from_secs(20)).unwrap();
    assert_ne!(next, leader, "a paused node cannot stay leader");
    std::thread::sleep(Duration::from_secs(2));
    cluster.resume(leader);
    // The old leader wakes believing it leads; it must step down, not fire on its own.
    cluster
        .eventually(Duration::from_secs(20), "the old leader following", || {
            let status = cluster.ctl_json(leader, &["cluster", "status"])?;
            (status["leaderId"].as_u64()? != leader).then_some(())
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    judge(&cluster);
}

#[test]
fn a_leader_killed_and_restarted_loses_and_doubles_no_slot() {
    let (mut cluster, leader) = scheduled_cluster();
    std::thread::sleep(Duration::from_secs(4));
    cluster.kill(leader);
    let next = cluster.leader(Duration::from_secs(20)).unwrap();
    assert_ne!(next, leader);
    std::thread::sleep(Duration::from_secs(2));
    cluster.spawn(leader).unwrap();
    cluster
        .eventually(Duration::from_secs(20), "the restarted node following", || {
            let status = cluster.ctl_json(leader, &["cluster", "status"])?;
            (status["leaderId"].as_u64()? == next).then_some(())
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    judge(&cluster);
}

#[test]
fn leaders_killed_as_slots_fall_due_lose_and_double_no_slot() {
    let (mut cluster, _, anchor) = scheduled_cluster_at(3);
    // Interval slots come every 2 real seconds from the anchor; kill the leader at the very
    // moment of three of them (mid-fire: the planner is proposing, or the entry committing).
    for k in [2, 5, 8] {
        let leader = cluster.leader(Duration::from_secs(20)).unwrap();
        let due = anchor + TimeDelta::seconds(2 * k);
        if let Ok(wait) = (due - real_now()).to_std() {
            std::thread::sleep(wait);
        }
        cluster.kill(leader);
        let next = cluster.leader(Duration::from_secs(20)).unwrap();
        assert_ne!(next, leader);
        cluster.spawn(leader).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    judge(&cluster);
}

#[test]
fn a_rolling_restart_and_a_full_group_restart_lose_and_double_no_slot() {
    let (mut cluster, _) = scheduled_cluster();
    std::thread::sleep(Duration::from_secs(3));
    // Rolling: each node in turn stops with SIGTERM (a leader hands over) and comes back.
    for id in [1, 2, 3] {
        assert!(cluster.terminate(id), "node {id} exits cleanly on SIGTERM");
        cluster.leader(Duration::from_secs(20)).unwrap();
        cluster.spawn(id).unwrap();
        cluster
            .eventually(Duration::from_secs(20), "the restarted node following", || {
                cluster.ctl_json(id, &["cluster", "status"])?["leaderId"].as_u64()
            })
            .unwrap();
    }
    // Full group: every node killed at once; three real seconds (three group hours, a slot
    // and a half) pass with no leader at all; the owed slots fire late or coalesce.
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    std::thread::sleep(Duration::from_secs(3));
    for id in [1, 2, 3] {
        cluster.spawn(id).unwrap();
    }
    cluster.leader(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    judge(&cluster);
}

#[test]
fn five_nodes_keep_firing_with_the_leader_paused_and_a_follower_killed() {
    let (mut cluster, leader, _) = scheduled_cluster_at(5);
    std::thread::sleep(Duration::from_secs(3));
    // Two of five down at once (a minority): the paused leader and one follower.
    let follower = (1..=5).find(|id| *id != leader).unwrap();
    cluster.pause(leader);
    cluster.kill(follower);
    let next = cluster.leader(Duration::from_secs(20)).unwrap();
    assert!(next != leader && next != follower, "a live node leads: {next}");
    std::thread::sleep(Duration::from_secs(3));
    cluster.resume(leader);
    cluster.spawn(follower).unwrap();
    for id in [leader, follower] {
        cluster
            .eventually(Duration::from_secs(20), "the node following the new leader", || {
                let status = cluster.ctl_json(id, &["cluster", "status"])?;
                (status["leaderId"].as_u64()? != leader).then_some(())
            })
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    judge(&cluster);
}
