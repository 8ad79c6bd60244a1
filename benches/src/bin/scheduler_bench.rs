//! The scheduler core on one core: planner ticks over 100,000 schedules (target < 10 ms),
//! `apply` throughput per command kind, and snapshot size and encode time.
//!
//! Run: `cargo run --release -p avocet-benches --bin scheduler_bench` (`--schedules N` to size
//! the catalog). Prints one table; every figure comes from this run.

// A bench binary prints its table; setup failures are bugs in the bench.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta};

use avocet_scheduler::catalog::Progress;
use avocet_scheduler::command::Outcome;
use avocet_scheduler::planner::{FIRES_PER_TICK, plan};
use avocet_scheduler::{Catalog, CatalogObject, Command, ObjectKey, Response};
use avocet_types::migration::MigrationStatusType;

const POLICIES: &str = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: hourly}
policy: {interval: {intervalMinutes: 60}}
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: nightly}
policy: {timezone: America/New_York, daily: {time: 10:14PM}}
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: weekly}
policy: {timezone: Europe/Berlin, weekly: {day: Sun, time: 02:30am}}
---
apiVersion: stork.libopenstorage.org/v1alpha1
kind: SchedulePolicy
metadata: {name: monthly}
policy: {timezone: Australia/Lord_Howe, monthly: {date: 31, time: 01:15am}}
";

const SCHEDULE: &str = "
apiVersion: stork.libopenstorage.org/v1alpha1
kind: MigrationSchedule
metadata: {name: template, namespace: app}
spec:
  schedulePolicyName: hourly
  template: {spec: {clusterPair: remote, namespaces: [app]}}
";

fn objects(text: &str) -> Vec<CatalogObject> {
    avocet_types::parse_documents(text)
        .unwrap()
        .into_iter()
        .map(|document| CatalogObject::from_stork(document.unwrap().object, "app").unwrap())
        .collect()
}

fn percentile(samples: &mut [Duration], percent: usize) -> Duration {
    samples.sort();
    let rank = ((samples.len() - 1) * percent + 50) / 100;
    samples[rank.min(samples.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

struct Bench {
    catalog: Catalog,
    index: u64,
}

impl Bench {
    fn apply(&mut self, command: Command) -> Response {
        self.index += 1;
        self.catalog.apply(self.index, command)
    }
}

#[allow(clippy::disallowed_methods)] // A bench measures wall time.
fn now() -> Instant {
    Instant::now()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--schedules")
        .and_then(|i| args.get(i + 1))
        .map_or(100_000, |n| n.parse().unwrap());
    let start = DateTime::parse_from_rfc3339("2026-03-01T00:00:30Z").unwrap().to_utc();
    let mut bench = Bench { catalog: Catalog::default(), index: 0 };
    for policy in objects(POLICIES) {
        bench.apply(Command::Put { object: Box::new(policy), at: start });
    }
    let template = objects(SCHEDULE).remove(0);
    let policies = ["hourly", "nightly", "weekly", "monthly"];
    println!(
        "Scheduler core, one core, {count} schedules (hourly, nightly, weekly, monthly in 4 zones)"
    );
    println!("{:<44} {:>12} {:>12} {:>12}", "measure", "count", "per second", "p50 / p99 ms");

    // apply Put: building the catalog.
    let begun = now();
    for i in 0..count {
        let CatalogObject::MigrationSchedule(mut schedule) = template.clone() else {
            unreachable!()
        };
        schedule.metadata.name = Some(format!("s{i:06}"));
        schedule.spec.schedule_policy_name = policies[i % policies.len()].to_owned();
        // Spread creation over the first hour, so interval slots spread too.
        let at = start + TimeDelta::milliseconds(i64::try_from(i).unwrap() * 36);
        bench.apply(Command::Put {
            object: Box::new(CatalogObject::MigrationSchedule(schedule)),
            at,
        });
    }
    let elapsed = begun.elapsed();
    row("apply Put MigrationSchedule", count, elapsed, None);

    // Planner: idle ticks (nothing due) at many instants.
    let quiet = start + TimeDelta::minutes(61);
    // First fire everything once so lanes have marks; not measured here.
    let first = plan(&bench.catalog, quiet, usize::MAX);
    let fires = first.len();
    let begun = now();
    for command in first {
        bench.apply(command);
    }
    let fire_elapsed = begun.elapsed();
    row("apply Fire (start a migration)", fires, fire_elapsed, None);

    let mut samples = Vec::new();
    let mut planned = 0;
    for i in 0..200 {
        let at = quiet + TimeDelta::milliseconds(i * 10);
        let begun = now();
        planned += plan(&bench.catalog, at, usize::MAX).len();
        samples.push(begun.elapsed());
    }
    let p50 = percentile(&mut samples, 50);
    let p99 = percentile(&mut samples, 99);
    println!(
        "{:<44} {:>12} {:>12} {:>12}",
        "planner tick, nothing due (200 ticks)",
        planned,
        "",
        format!("{:.3} / {:.3}", ms(p50), ms(p99))
    );

    // Planner: a minute at a time for half an hour, as the leader ticks (at most
    // FIRES_PER_TICK fires a tick, ticking again at once while more are due). At 01:30 UTC the
    // weekly policy's 25,000 lanes share one slot.
    let mut samples = Vec::new();
    let mut due = 0;
    let mut burst = Duration::ZERO;
    for minute in 0..30 {
        let at = quiet + TimeDelta::minutes(minute) + TimeDelta::seconds(30);
        let begun = now();
        let unbounded = plan(&bench.catalog, at, usize::MAX).len();
        burst = burst.max(begun.elapsed());
        let _ = unbounded;
        loop {
            let begun = now();
            let commands = plan(&bench.catalog, at, FIRES_PER_TICK);
            samples.push(begun.elapsed());
            if commands.is_empty() {
                break;
            }
            due += commands.len();
            // Apply them (not measured) so the next tick sees them fired (buffered behind the
            // migration each schedule already runs).
            for command in commands {
                bench.apply(command);
            }
        }
    }
    let ticks = samples.len();
    let p50 = percentile(&mut samples, 50);
    let p99 = percentile(&mut samples, 99);
    let max = samples.iter().max().copied().unwrap_or_default();
    println!(
        "{:<44} {:>12} {:>12} {:>12}",
        format!("planner tick, 30 min of slots ({ticks} ticks)"),
        due,
        "",
        format!("{:.3} / {:.3}", ms(p50), ms(p99))
    );
    println!(
        "{:<44} {:>12} {:>12} {:>12}",
        format!("  slowest tick ({FIRES_PER_TICK} fires max) / unbounded"),
        "",
        "",
        format!("{:.1} / {:.1}", ms(max), ms(burst))
    );

    // Work hand-off: lease + complete cycles.
    let mut cycles = 0;
    let at = quiet + TimeDelta::hours(1);
    let begun = now();
    loop {
        let Response::Leased { migration, token, .. } =
            bench.apply(Command::Lease { worker: "w".to_owned(), duration_ms: 60_000, at })
        else {
            break;
        };
        let key =
            ObjectKey::new(migration.metadata.namespace.unwrap(), migration.metadata.name.unwrap());
        bench.apply(Command::Complete {
            migration: key,
            token,
            outcome: Box::new(Outcome {
                status: MigrationStatusType::Successful,
                reason: String::new(),
                progress: Progress::default(),
                volumes: vec![],
                resources: vec![],
            }),
            at,
        });
        cycles += 1;
    }
    row("apply Lease + Complete (pairs)", cycles, begun.elapsed(), None);

    // Planner after a 3-day outage: every lane is due at once.
    let outage = quiet + TimeDelta::days(3);
    let begun = now();
    let commands = plan(&bench.catalog, outage, usize::MAX);
    let tick = begun.elapsed();
    let lanes = commands.len();
    println!(
        "{:<44} {:>12} {:>12} {:>12}",
        "planner tick after a 3-day outage (all due)",
        lanes,
        "",
        format!("{:.1}", ms(tick))
    );
    let begun = now();
    for command in commands {
        bench.apply(command);
    }
    row("apply Fire coalescing 3 days of slots", lanes, begun.elapsed(), None);

    // Snapshot: encode and decode the whole catalog.
    let begun = now();
    let bytes = serde_json::to_vec(&bench.catalog).unwrap();
    let encode = begun.elapsed();
    let begun = now();
    let restored: Catalog = serde_json::from_slice(&bytes).unwrap();
    let decode = begun.elapsed();
    assert!(restored == bench.catalog);
    println!(
        "{:<44} {:>12} {:>12} {:>12}",
        "snapshot encode / decode+reindex (ms)",
        format!("{} MB", bytes.len() / 1_000_000),
        "",
        format!("{:.0} / {:.0}", ms(encode), ms(decode))
    );
}

fn row(name: &str, count: usize, elapsed: Duration, latency: Option<(Duration, Duration)>) {
    let rate = count as f64 / elapsed.as_secs_f64().max(1e-9);
    let latency =
        latency.map_or(String::new(), |(p50, p99)| format!("{:.3} / {:.3}", ms(p50), ms(p99)));
    println!("{name:<44} {count:>12} {rate:>12.0} {latency:>12}");
}
