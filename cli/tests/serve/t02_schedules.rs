//! The scheduler group's promise, end to end: three `avocet serve` processes on a scaled clock
//! (one hour a second), an interval and a daily schedule, a worker completing every migration
//! through the `Workers` API, and the leader killed twice. Judged through `avocetctl` only: no
//! slot fired twice, every slot up to the last one fired or coalesced, none before it was due.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use avocet_server::dispatch::{
    self, Finished, Job, MigrationExecutor, Pass, StageReport, WorkerSettings,
};
use avocet_types::migration::MigrationStatusType;

use avocet_chaos_tests::harness::BUSY_SCHEDULE;
use avocet_chaos_tests::oracle;

use crate::group::{ADMIN_TOKEN, Group};

/// Runs the group's clock 3,600 times as fast: an hour a second, a day in 24 seconds.
const SCALE: f64 = 3600.0;

/// Copies nothing and says so at once: what a worker whose copies succeed instantly reports.
struct Instant;

impl MigrationExecutor for Instant {
    async fn execute(&self, _: Job, _: tokio::sync::mpsc::Sender<StageReport>) -> Finished {
        Finished { status: MigrationStatusType::Successful, ..Finished::default() }
    }
}

/// Runs the worker side of the hand-off against any node that answers until `stop` is set.
fn worker(apis: Vec<String>, stop: Arc<AtomicBool>, completed: Arc<AtomicU64>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let settings = WorkerSettings {
            name: "test-worker".into(),
            // Two hours of the group's clock: two real seconds.
            lease_ms: 7_200_000,
            renew_every: Duration::from_millis(500),
            idle_poll: Duration::from_millis(20),
        };
        let mut next = 0;
        while !stop.load(Ordering::Relaxed) {
            let api = &apis[next % apis.len()];
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("http://{api}")).unwrap();
            let Ok(channel) = endpoint.connect_timeout(Duration::from_millis(300)).connect().await
            else {
                next += 1;
                continue;
            };
            let mut client = dispatch::client(channel, ADMIN_TOKEN).unwrap();
            while !stop.load(Ordering::Relaxed) {
                match dispatch::run_once(&mut client, &settings, &Instant).await {
                    Ok(Pass::Idle) => tokio::time::sleep(settings.idle_poll).await,
                    Ok(Pass::Completed(..)) => {
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Pass::Abandoned(..)) => {}
                    Err(_) => {
                        next += 1;
                        break;
                    }
                }
            }
        }
    });
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[test]
fn slots_fire_exactly_once_on_time_while_the_leader_is_killed_twice() {
    #[allow(clippy::disallowed_methods)] // The scaled clock starts from the real time of the test.
    let epoch = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let scale = SCALE.to_string();
    let mut group = Group::start_with(
        3,
        &["--clock-scale", &scale, "--clock-epoch", &epoch, "--stage-deadline", "48h"],
    );
    let leader = group.leader(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, BUSY_SCHEDULE).unwrap();
    let (ok, out, err) = group.ctl(leader, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("migrationschedule.stork.libopenstorage.org/app created"), "{out}");

    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));
    let apis: Vec<String> = group.nodes.values().map(|node| node.api.clone()).collect();
    let worker = {
        let (stop, completed) = (Arc::clone(&stop), Arc::clone(&completed));
        std::thread::spawn(move || worker(apis, stop, completed))
    };

    // --- two leader kills, each restarted after a while; the schedule keeps firing
    let mut leader = leader;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(8));
        group.kill(leader);
        let next = group.leader(Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(2));
        group.spawn(leader);
        leader = next;
    }
    std::thread::sleep(Duration::from_secs(8));
    // Stop new fires, let the worker finish what fired, then judge.
    let (ok, out, err) = group.ctl(leader, &["suspend", "migrationschedule", "app", "-n", "apps"]);
    assert!(ok && out.contains("MigrationSchedule app suspended successfully"), "{out}{err}");
    group.eventually(Duration::from_secs(20), "every fired migration completed", || {
        let (ok, out, _) = group.ctl(leader, &["get", "migration", "-n", "apps", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).ok()?;
        let items = list["items"].as_array()?;
        (ok && !items.is_empty()
            && items
                .iter()
                .all(|m| m.pointer("/status/status") == Some(&Value::from("Successful"))))
        .then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();

    let (ok, out, err) = group.ctl(leader, &["get", "migration", "-n", "apps", "-o", "json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let migrations = list["items"].as_array().unwrap();
    let (ok, schedule, _) =
        group.ctl(leader, &["get", "migrationschedule", "app", "-n", "apps", "-o", "json"]);
    assert!(ok);
    let schedule: Value = serde_json::from_str(&schedule).unwrap();
    let anchor = instant(schedule["metadata"]["creationTimestamp"].as_str().unwrap());

    // The oracle, on the events and the migrations kept (Stork's retention keeps the last
    // success and newer): T-1, none fired before its slot was due; EO-1, no slot fired twice;
    // EO-2, each slot from the first to the last fired or coalesced, exactly once in all.
    for migration in migrations {
        let annotations = &migration["metadata"]["annotations"];
        for key in ["avocet.dev/due-slot", "avocet.dev/fired-at"] {
            assert!(annotations[key].is_string(), "{key} on {migration}");
        }
    }
    let (ok, out, err) = group.ctl(leader, &["get", "events", "-n", "apps", "-o", "json"]);
    assert!(ok, "{err}");
    let events: Value = serde_json::from_str(&out).unwrap();
    let events = events["items"].as_array().unwrap();
    for (policy_type, step) in [("Interval", TimeDelta::hours(2)), ("Daily", TimeDelta::days(1))] {
        let accounting = oracle::judge(events, migrations, policy_type, step)
            .unwrap_or_else(|violations| panic!("{policy_type}: {violations:#?}"))
            .unwrap_or_else(|| panic!("no {policy_type} slot fired"));
        if policy_type == "Interval" {
            let first = accounting.first;
            let first_second =
                first - TimeDelta::nanoseconds(i64::from(first.timestamp_subsec_nanos()));
            assert_eq!(first_second, anchor, "the first interval slot is the schedule's creation");
            let expected = accounting.expected;
            assert!(expected >= 10, "about 30 s at an hour a second: {expected} two-hour slots");
        }
    }

    // --- the events tell the same story, with Stork's reasons
    let (ok, events, err) = group.ctl(leader, &["get", "events", "-n", "apps"]);
    assert!(ok, "{err}");
    assert!(events.contains("Successful") && events.contains("completed successfully"), "{events}");
    assert!(events.contains("Suspended"), "{events}");
    assert!(completed.load(Ordering::Relaxed) >= migrations.len() as u64);

    let clean = group.terminate_all();
    assert!(clean.iter().all(|exited| *exited), "{clean:?}");
}
