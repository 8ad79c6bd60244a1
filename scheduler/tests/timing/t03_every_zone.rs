//! Every chrono-tz zone in 2026 at the hours where DST transitions happen, day by day, against
//! the reference.

use avocet_scheduler::Cadence;
use avocet_types::policy::{PolicyRule, TimeOfDay};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::TZ_VARIANTS;

use crate::reference;

#[test]
fn every_zone_every_day_of_2026_at_transition_hours() {
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let last = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
    let days: Vec<NaiveDate> = first.iter_days().take_while(|day| *day <= last).collect();
    let mut checked_with_reference = 0usize;
    for zone in TZ_VARIANTS {
        for (hour, minute) in [(0, 0), (0, 30), (1, 0), (1, 30), (2, 0), (2, 30), (3, 0)] {
            let at = TimeOfDay::new(hour, minute).unwrap();
            let cadence = Cadence::new(PolicyRule::Daily { at }, zone, DateTime::UNIX_EPOCH);
            let start = zone
                .from_local_datetime(&first.and_hms_opt(0, 0, 0).unwrap())
                .earliest()
                .unwrap()
                .to_utc();
            let mut slots = cadence.due_slots(start);
            let mut previous: Option<DateTime<Utc>> = None;
            for day in &days {
                let naive = day.and_time(at.naive());
                // Unambiguous days are plain; days with a gap or an overlap go to the reference.
                let expected = match zone.from_local_datetime(&naive).single() {
                    Some(instant) => instant.to_utc(),
                    None => {
                        checked_with_reference += 1;
                        reference::slot(zone, naive)
                    }
                };
                if previous == Some(expected) {
                    continue; // Two days resolving to one instant fire once.
                }
                assert_eq!(slots.next(), Some(expected), "{zone} on {day} at {at}");
                previous = Some(expected);
            }
        }
    }
    // 2026 has DST in dozens of zones; make sure the interesting path really ran.
    assert!(checked_with_reference > 100, "only {checked_with_reference} transition days checked");
}
