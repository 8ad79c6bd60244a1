//! Next-due computations per second for each policy type in a DST zone (target ≥ 1 M/s for
//! daily, weekly and monthly on one core). Run: `cargo bench -p avocet-benches --bench policy_next_due`.

// Setup failures are bugs in the bench itself, so unwrapping is the clearest report.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use avocet_scheduler::Cadence;
use avocet_types::policy::{PolicyRule, TimeOfDay};
use chrono::{DateTime, TimeDelta, Utc, Weekday};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Counts the instants each iteration asks about.
const INSTANTS: usize = 4096;

/// Returns instants spread over ten years, so lookups hit every part of the zone's table.
fn instants() -> Vec<DateTime<Utc>> {
    let start = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap().to_utc();
    // A step that is not a whole number of days or hours walks through every time of day.
    let step = TimeDelta::seconds(77_017);
    (0..INSTANTS).map(|i| start + step * i32::try_from(i).unwrap()).collect()
}

fn policy_next_due(c: &mut Criterion) {
    let zone = chrono_tz::America::New_York;
    let at = TimeOfDay::new(2, 30).unwrap();
    let anchor = DateTime::parse_from_rfc3339("2019-06-01T00:00:00Z").unwrap().to_utc();
    let rules = [
        ("interval", PolicyRule::Interval { minutes: 60 }),
        ("daily", PolicyRule::Daily { at }),
        ("weekly", PolicyRule::Weekly { day: Weekday::Sun, at }),
        ("monthly", PolicyRule::Monthly { date: 31, at }),
    ];
    let instants = instants();
    let mut group = c.benchmark_group("policy_next_due/America_New_York");
    group.throughput(Throughput::Elements(INSTANTS as u64));
    for (name, rule) in rules {
        let cadence = Cadence::new(rule, zone, anchor);
        group.bench_function(name, |b| {
            b.iter(|| {
                for instant in &instants {
                    black_box(cadence.first_at_or_after(black_box(*instant)));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, policy_next_due);
criterion_main!(benches);
