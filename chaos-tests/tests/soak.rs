//! The CI subset of the soak: a fixed seed's plan of kills, pauses, partitions and restarts
//! against three nodes in network namespaces, then migrations through worker, S3 and
//! destination faults, judged by the oracle with no violation (no slot doubled, missed or
//! early, no stale commit, no corrupt volume, no acknowledged write lost); and a
//! test build with a planted bug (`apply` without its duplicate check, and a new leader that
//! re-fires the last slot of every lane) that the same soak must catch.

use std::time::Duration;

use avocet_chaos_tests::nemesis::{Options, soak};

#[test]
fn a_fixed_seed_soak_ends_with_no_violation() {
    let options = Options {
        seed: 20_261_206,
        duration: Duration::from_secs(40),
        nodes: 3,
        network: true,
        planted: None,
        data_duration: Duration::from_secs(30),
    };
    let report = soak(&options, |_| {}).unwrap();
    assert!(
        report.problems.is_empty(),
        "{}\n{:#?}\n{:#?}",
        report.summary(),
        report.problems,
        report.log
    );
    assert!(report.faults >= 5 && report.fires >= 5, "{}", report.summary());
    assert!(report.acknowledged >= 20, "{} writes acknowledged", report.acknowledged);
    assert!(!report.failovers.is_empty(), "{:#?}", report.log);
    assert!(report.migrations.is_some_and(|n| n >= 2), "{:#?}", report.log);
    assert_eq!((report.stale_commits, report.corrupt_volumes), (0, 0), "{}", report.summary());
}

#[test]
fn the_soak_catches_a_build_that_fires_a_slot_twice() {
    let options = Options {
        seed: 7,
        duration: Duration::from_secs(15),
        nodes: 3,
        network: true,
        planted: Some("double-fire".to_owned()),
        data_duration: Duration::ZERO,
    };
    let report = soak(&options, |_| {}).unwrap();
    assert!(
        report.planted,
        "the avocet binary was built without the planted-bugs feature (the workspace's test build enables it: cargo nextest run --workspace)"
    );
    assert!(!report.failovers.is_empty(), "a leader change re-fires: {:#?}", report.log);
    assert!(report.duplicated > 0, "{}\n{:#?}", report.summary(), report.problems);
    assert!(
        report.problems.iter().any(|p| p.starts_with("EO-1") || p.starts_with("EO-2")),
        "{:#?}",
        report.problems
    );
}
