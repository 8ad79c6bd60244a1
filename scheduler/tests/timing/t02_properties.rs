//! Property tests: slots strictly increase, never precede the scan start, do not depend on where
//! a scan starts, and match the reference on every day of a random year in a random zone.

use avocet_scheduler::Cadence;
use avocet_types::policy::{PolicyRule, TimeOfDay};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Utc, Weekday};
use chrono_tz::{TZ_VARIANTS, Tz};
use proptest::prelude::*;

use crate::reference;

fn zone() -> impl Strategy<Value = Tz> {
    (0..TZ_VARIANTS.len()).prop_map(|i| TZ_VARIANTS[i])
}

/// Picks times near typical transition hours more often than uniform sampling would.
fn time_of_day() -> impl Strategy<Value = TimeOfDay> {
    prop_oneof![
        (0u8..24, 0u8..60),
        (0u8..4, prop_oneof![Just(0u8), Just(15), Just(30), Just(45)]),
        Just((23, 30)),
    ]
    .prop_map(|(hour, minute)| TimeOfDay::new(hour, minute).unwrap())
}

fn weekday() -> impl Strategy<Value = Weekday> {
    (0u8..7).prop_map(|n| Weekday::try_from(n).unwrap())
}

fn rule() -> impl Strategy<Value = PolicyRule> {
    prop_oneof![
        prop_oneof![1u32..=120, Just(1440), Just(10_080), 1u32..=100_000]
            .prop_map(|minutes| PolicyRule::Interval { minutes }),
        time_of_day().prop_map(|at| PolicyRule::Daily { at }),
        (weekday(), time_of_day()).prop_map(|(day, at)| PolicyRule::Weekly { day, at }),
        (1u8..=31, time_of_day()).prop_map(|(date, at)| PolicyRule::Monthly { date, at }),
    ]
}

/// Picks an instant between 1900 and 2100 with sub-second precision.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-2_208_988_800i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn slots_strictly_increase_from_the_scan_start(
        rule in rule(), zone in zone(), anchor in instant(), from in instant()
    ) {
        let cadence = Cadence::new(rule, zone, anchor);
        let slots: Vec<_> = cadence.due_slots(from).take(24).collect();
        prop_assert_eq!(slots.len(), 24);
        prop_assert!(slots[0] >= from);
        prop_assert_eq!(Some(slots[0]), cadence.first_at_or_after(from));
        for pair in slots.windows(2) {
            prop_assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
            prop_assert_eq!(cadence.first_after(pair[0]), Some(pair[1]));
        }
        if let PolicyRule::Interval { minutes } = rule {
            let step = TimeDelta::minutes(i64::from(minutes));
            prop_assert!(slots.windows(2).all(|pair| pair[1] - pair[0] == step));
            prop_assert_eq!((slots[0] - anchor).num_nanoseconds().map(|n| n.rem_euclid(step.num_nanoseconds().unwrap())), Some(0));
        }
    }

    #[test]
    fn results_do_not_depend_on_where_a_scan_starts(
        rule in rule(), zone in zone(), anchor in instant(), from in instant(),
        later_secs in 0i64..(400 * 86_400)
    ) {
        let cadence = Cadence::new(rule, zone, anchor);
        let later = from + TimeDelta::seconds(later_secs);
        let from_later: Vec<_> = cadence.due_slots(later).take(5).collect();
        // Scanning from the earlier instant and skipping what precedes `later` gives the same slots.
        let skipped: Vec<_> = cadence.due_slots(from).skip_while(|slot| *slot < later).take(5).collect();
        prop_assert_eq!(from_later, skipped);
    }
}

proptest! {
    // Each case checks a whole year of three rules against the reference, so fewer cases.
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_local_day_fires_once_as_the_reference_says(
        zone in zone(), year in prop_oneof![1900i32..2100, 1970i32..2040], at in time_of_day(),
        weekday in weekday(), date in 1u8..=31
    ) {
        let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(year, 12, 31).unwrap();
        let days: Vec<NaiveDate> = first.iter_days().take_while(|day| *day <= last).collect();
        let expected_for = |keep: &dyn Fn(NaiveDate) -> bool| -> Vec<DateTime<Utc>> {
            let mut slots: Vec<_> = days.iter().filter(|day| keep(**day))
                .map(|day| reference::slot(zone, day.and_time(at.naive()))).collect();
            slots.dedup();
            slots
        };
        let cases: [(PolicyRule, Vec<DateTime<Utc>>); 3] = [
            (PolicyRule::Daily { at }, expected_for(&|_| true)),
            (PolicyRule::Weekly { day: weekday, at }, expected_for(&|day| day.weekday() == weekday)),
            (PolicyRule::Monthly { date, at }, expected_for(&|day| {
                let month_days = day.with_day(1).unwrap().checked_add_months(chrono::Months::new(1)).unwrap()
                    .checked_sub_days(Days::new(1)).unwrap().day();
                day.day() == u32::from(date).min(month_days)
            })),
        ];
        for (rule, expected) in cases {
            let cadence = Cadence::new(rule, zone, DateTime::UNIX_EPOCH);
            let actual: Vec<_> = cadence.due_slots(expected[0]).take(expected.len()).collect();
            prop_assert_eq!(&actual, &expected, "{:?} in {} during {}", rule, zone, year);
        }
    }
}
