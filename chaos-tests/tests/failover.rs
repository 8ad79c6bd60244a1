//! Real-process failover faults judged by the oracle: three `avocet serve` processes on a
//! clock running an hour a second, an interval and a daily schedule, and the leader paused
//! (SIGSTOP) for longer than an election takes, then resumed, or killed (SIGKILL) and
//! restarted. Only `avocetctl` is used to look: no slot fired twice, every slot fired or
//! coalesced, none early; the old leader rejoins as a follower.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::Value;

use avocet_chaos_tests::harness::Cluster;
use avocet_chaos_tests::oracle;

const OBJECTS: &str = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: busy}
policy:
  interval: {intervalMinutes: 120, retain: 1000}
  daily: {time: \"06:30AM\", retain: 1000}
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: MigrationSchedule
metadata: {name: app, namespace: apps}
spec:
  schedulePolicyName: busy
  template: {spec: {clusterPair: remote, namespaces: [apps]}}
";

/// Starts three nodes on an hour-a-second clock and applies the schedule; returns the
/// cluster and its leader.
fn scheduled_cluster() -> (Cluster, u64) {
    #[allow(clippy::disallowed_methods)] // The scaled clock starts from the test's real time.
    let epoch = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cluster = Cluster::start(
        3,
        &[
            "--clock-scale",
            "3600",
            "--clock-epoch",
            &epoch,
            "--stage-deadline",
            "48h",
            "--heartbeat-ms",
            "50",
            "--election-timeout-ms",
            "300-600",
        ],
    )
    .unwrap();
    let leader = cluster.leader(Duration::from_secs(30)).unwrap();
    let file = cluster.dir().join("objects.yaml");
    std::fs::write(&file, OBJECTS).unwrap();
    let (ok, out, err) = cluster.ctl(leader, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    (cluster, leader)
}

/// Suspends the schedule, then judges every policy type through the public API.
fn judge(cluster: &Cluster) {
    let leader = cluster.leader(Duration::from_secs(30)).unwrap();
    let (ok, out, err) =
        cluster.ctl(leader, &["suspend", "migrationschedule", "app", "-n", "apps"]);
    assert!(ok, "{out}{err}");
    let events = cluster.ctl_json(leader, &["get", "events", "-n", "apps"]).unwrap();
    let migrations = cluster.ctl_json(leader, &["get", "migration", "-n", "apps"]).unwrap();
    let items = |list: &Value| list["items"].as_array().cloned().unwrap_or_default();
    let (events, migrations) = (items(&events), items(&migrations));
    for (policy_type, step) in [("Interval", TimeDelta::hours(2)), ("Daily", TimeDelta::days(1))] {
        match oracle::judge(&events, &migrations, policy_type, step) {
            // About 12 s at an hour a second: several interval slots, a daily one or none.
            Ok(Some(accounting)) if policy_type == "Interval" => {
                assert!(accounting.expected >= 4, "{accounting:?}")
            }
            Ok(None) if policy_type == "Interval" => panic!("no Interval slot fired"),
            Ok(_) => {}
            Err(violations) => panic!("{policy_type}: {violations:#?}"),
        }
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
