//! The data plane under faults, real processes on loopback (see
//! `avocet_chaos_tests::dataplane`): workers killed with SIGKILL mid-transfer, S3 answering
//! 503, stalling and resetting connections, and the destination's API down while a migration
//! restores. Every Successful migration must leave the destination's volume equal, byte for
//! byte, to the run of the store it names, and the standby objects whole; a migration that
//! fails may leave the last good copy, never a half-written one. A worker frozen past its
//! lease and woken commits nothing (W-1, judged from the outcome and from the events).

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;

use avocet_chaos_tests::dataplane::DataWorld;
use avocet_chaos_tests::proxy::Mode;

fn status(migration: &Value) -> &str {
    migration["status"]["status"].as_str().unwrap_or_default()
}

/// Runs migration `name` to its end; panics with every log when it does not end.
fn run(world: &DataWorld, name: &str) -> Value {
    world.create_migration(name).unwrap();
    world
        .wait_ended(name, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}\n{}", world.logs()))
}

fn successful(world: &DataWorld, migration: &Value) {
    assert_eq!(status(migration), "Successful", "{migration:#}\n{}", world.logs());
    world.check_successful(migration).unwrap_or_else(|e| panic!("{e}\n{migration:#}"));
}

#[test]
fn workers_killed_mid_transfer_and_s3_faults_leave_every_volume_whole() {
    let mut world = DataWorld::start(16).unwrap();
    let first = run(&world, "first");
    successful(&world, &first);

    // Both workers killed while the migration is leased; they come back, the lease lapses
    // (3 s), and the migration runs again from the start of its volume stage. S3 answers 503
    // until then (the SDK backs off and retries), so the kill lands mid-transfer however fast
    // the machine (a small change could otherwise be copied before the kill).
    world.change_data(2, 4).unwrap();
    world.s3_proxy.set(Mode::Unavailable);
    world.create_migration("killed").unwrap();
    world.wait_leased("killed").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    world.kill_worker(0);
    world.kill_worker(1);
    world.s3_proxy.set(Mode::Pass);
    std::thread::sleep(Duration::from_secs(1));
    world.start_worker(0).unwrap();
    world.start_worker(1).unwrap();
    let killed = world.wait_ended("killed", Duration::from_secs(90)).unwrap();
    successful(&world, &killed);
    let reasons = world.event_reasons("migration/killed");
    assert!(
        reasons.iter().any(|r| r == "LeaseExpired"),
        "the killed workers' lease lapsed: {reasons:?}"
    );

    // S3 throttles, stalls and resets one connection in three while the next one runs.
    world.change_data(3, 8).unwrap();
    let before = world.s3_proxy.faults.load(std::sync::atomic::Ordering::Relaxed);
    world.s3_proxy.set(Mode::Flaky { every: 3 });
    let flaky = run(&world, "flaky");
    world.s3_proxy.set(Mode::Pass);
    let faults = world.s3_proxy.faults.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(faults >= 2, "the proxy injected {faults} faults");
    successful(&world, &flaky);
}

#[test]
fn the_destination_down_mid_migration_leaves_the_last_good_copy_then_catches_up() {
    let world = DataWorld::start(8).unwrap();
    let first = run(&world, "first");
    successful(&world, &first);

    // The destination's API refuses every connection while the next migration restores.
    world.change_data(2, 8).unwrap();
    world.destination_proxy.set(Mode::Reset);
    let down = run(&world, "down");
    world.destination_proxy.set(Mode::Pass);
    let refused = world.destination_proxy.faults.load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 1, "the restore reached for the destination while it was down");
    eprintln!(
        "with the destination down the migration ended {} ({refused} connections refused)",
        status(&down)
    );
    if status(&down) == "Successful" {
        successful(&world, &down);
    } else {
        // Failed: the destination still holds the first run, whole.
        successful(&world, &first);
    }

    // Healed: the next migration brings the destination up to date.
    world.change_data(3, 2).unwrap();
    let after = run(&world, "after");
    successful(&world, &after);
}

#[test]
fn a_worker_that_wakes_after_its_lease_lapsed_changes_nothing() {
    let mut world = DataWorld::start(48).unwrap();
    let first = run(&world, "first");
    successful(&world, &first);

    // Both workers freeze while they hold the next migration: the lease lapses, a third worker
    // takes the migration over and completes it; then the frozen ones wake up mid-transfer.
    // Every file rewritten: the push takes long enough to be caught in the middle.
    world.rewrite_all(2).unwrap();
    world.create_migration("stale").unwrap();
    world.wait_leased("stale").unwrap();
    world.signal_worker(0, "STOP");
    world.signal_worker(1, "STOP");
    // The app writes on: what the frozen worker read is now older than the source.
    world.change_data(3, 8).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    world.add_worker().unwrap();
    let stale = world.wait_ended("stale", Duration::from_secs(90)).unwrap();
    successful(&world, &stale);
    world.signal_worker(0, "CONT");
    world.signal_worker(1, "CONT");
    // Whatever the woken workers do with their lapsed lease must not change the outcome.
    std::thread::sleep(Duration::from_secs(8));
    let after = world.migration("stale").unwrap();
    assert_eq!(after["status"], stale["status"], "a stale lease changed the migration's status");
    successful(&world, &after);
    // The events tell the same: two grants, the first lapsed, the completion by the second.
    let events = world.events().unwrap();
    let stale_leases = avocet_chaos_tests::oracle::stale_leases(&events);
    assert!(stale_leases.is_empty(), "{stale_leases:#?}");
    let reasons = world.event_reasons("migration/stale");
    let count = |reason: &str| reasons.iter().filter(|r| *r == reason).count();
    assert!(
        count("Leased") >= 2 && count("LeaseExpired") >= 1 && count("Completed") == 1,
        "{reasons:?}"
    );
}
