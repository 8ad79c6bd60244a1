//! One node's clock skewed by five minutes, and that node leading: three `avocet serve`
//! processes on a clock running an hour a second, one restarted with `--clock-skew-ms ±300000`
//! (five real minutes: 12.5 days of the group's clock) and made leader by pausing whichever
//! node leads until it does. A watcher outside the group notes when the test's own clock first
//! saw each event, so the judgement does not rest on the leader's readings: no slot fired
//! before it was due (a fast leader), none left unfired long after (a slow one), none doubled
//! or missed. A planted bug that makes the leader trust its own clock proves both checks fail.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use avocet_chaos_tests::harness::{Binaries, Cluster};
use avocet_chaos_tests::nemesis::SKEW_MS;
use avocet_chaos_tests::oracle;
use avocet_chaos_tests::scenario::{self, SCALE, group_time, real_now};
use avocet_chaos_tests::watch::EventWatch;

/// What a run with one skewed leader saw.
struct Run {
    cluster: Cluster,
    epoch: DateTime<Utc>,
    seen: Vec<(Value, DateTime<Utc>)>,
    finished: DateTime<Utc>,
}

/// Starts three nodes (with `env`), applies the schedule, restarts a follower with its clock
/// moved by `skew_ms`, makes it lead for eight real seconds (four interval slots) and returns
/// what the watcher saw.
fn skewed_leader(skew_ms: i64, env: &[(&str, &str)]) -> Run {
    let epoch = scenario::epoch_now();
    let flags = scenario::fast_flags(epoch);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut cluster = Cluster::start_with_env(Binaries::locate().unwrap(), 3, &flags, env).unwrap();
    let timeout = Duration::from_secs(20);
    let leader = cluster.leader(timeout).unwrap();
    scenario::schedule(&cluster, leader, epoch).unwrap();
    let watch = EventWatch::start(cluster.ctl_runner(), "apps", Duration::from_millis(200));
    std::thread::sleep(Duration::from_secs(2));

    let skewed = (1..=3).find(|id| *id != leader).unwrap();
    cluster.restart_with_flags(skewed, &["--clock-skew-ms", &skew_ms.to_string()]).unwrap();
    cluster
        .eventually(timeout, "the skewed node following", || {
            cluster.ctl_json(skewed, &["cluster", "status"])?["leaderId"].as_u64()
        })
        .unwrap();
    // Pause whichever node leads until the skewed one is elected (each try, one chance in two).
    for _ in 0..12 {
        let current = cluster.leader(timeout).unwrap();
        if current == skewed {
            break;
        }
        cluster.pause(current);
        let others: Vec<u64> = (1..=3).filter(|id| *id != current).collect();
        cluster.leader_among(&others, timeout).unwrap();
        cluster.resume(current);
    }
    assert_eq!(cluster.leader(timeout).unwrap(), skewed, "the skewed node never led");

    // The leader sees the others' clocks off by the skew (12.5 days of the group's clock).
    let expected = -skew_ms * i64::from(SCALE);
    cluster
        .eventually(timeout, "the skew in the leader's cluster status", || {
            let status = cluster.ctl_json(skewed, &["cluster", "status"])?;
            let members = status["members"].as_array()?.clone();
            members
                .iter()
                .filter(|member| member["id"].as_u64() != Some(skewed))
                .all(|member| {
                    member["clockOffsetMs"]
                        .as_i64()
                        .is_some_and(|offset| (offset - expected).abs() < expected.abs() / 100)
                })
                .then_some(())
        })
        .unwrap();

    std::thread::sleep(Duration::from_secs(8));
    let finished = real_now();
    let seen = watch.finish();
    Run { cluster, epoch, seen, finished }
}

impl Run {
    /// The T-1 violations the watcher's clock shows.
    fn early(&self) -> Vec<String> {
        avocet_chaos_tests::watch::early(&self.seen, self.epoch)
    }

    /// How far the latest slot fired or coalesced by the end lagged the group's true time then.
    fn behind(&self) -> TimeDelta {
        let latest = self.seen.iter().filter_map(|(event, _)| oracle::accounted_slot(event)).max();
        group_time(self.epoch, self.finished) - latest.unwrap_or(self.epoch)
    }

    /// Judges every slot (EO-1, EO-2, T-1 by the leader's readings) and T-1 by the watcher's.
    fn judge(&self) {
        let early = self.early();
        assert!(early.is_empty(), "{early:#?}");
        if let Err(violations) = scenario::judge_at_least(&self.cluster, 4) {
            panic!("{violations:#?}");
        }
    }
}

#[test]
fn a_leader_whose_clock_runs_five_minutes_fast_fires_no_slot_early() {
    let run = skewed_leader(SKEW_MS, &[]);
    run.judge();
}

#[test]
fn a_leader_whose_clock_runs_five_minutes_slow_fires_every_slot_on_time() {
    let run = skewed_leader(-SKEW_MS, &[]);
    // Slots come every two group hours; the latest due must have fired (or been coalesced
    // behind the migration in flight) within three real seconds of falling due (a slow
    // leader without the group clock is 12.5 group days behind).
    let bound = TimeDelta::hours(2) + TimeDelta::seconds(3) * SCALE;
    let behind = run.behind();
    assert!(
        behind < bound,
        "the latest slot fired is {behind} behind the group's time; seen: {:#?}\n{}",
        run.seen,
        run.cluster.log_tails(60)
    );
    run.judge();
}

#[test]
fn the_watchers_clock_catches_a_fast_leader_that_trusts_its_own() {
    let run = skewed_leader(SKEW_MS, &[("AVOCET_PLANTED_BUG", "trust-own-clock")]);
    assert!(
        run.cluster.logs_contain("PLANTED BUG trust-own-clock"),
        "this build lacks the planted-bugs feature (the cli's dev-dependencies enable it)"
    );
    let early = run.early();
    assert!(!early.is_empty(), "a leader five minutes fast fired nothing early: {:#?}", run.seen);
    assert!(early.iter().all(|violation| violation.starts_with("T-1")), "{early:#?}");
}

#[test]
fn the_watchers_clock_catches_a_slow_leader_that_trusts_its_own() {
    let run = skewed_leader(-SKEW_MS, &[("AVOCET_PLANTED_BUG", "trust-own-clock")]);
    assert!(run.cluster.logs_contain("PLANTED BUG trust-own-clock"), "no planted-bugs feature");
    // Twelve and a half group days behind: nothing fires while it leads.
    let behind = run.behind();
    assert!(behind > TimeDelta::hours(8), "a leader five minutes slow kept up: {behind}");
}
