//! An independent reference for wall-clock slots, built only from UTC→local offset lookups.
//!
//! It never calls `from_local_datetime` or `GapInfo`, which the code under test uses: it finds a
//! local time's occurrences by trying every offset seen nearby, and for a time that never occurs
//! it walks minute by minute to the transition and takes the offset in effect just before it.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Bounds the search window on each side: tzdb offsets stay within ±16 h and jump by ≤ 24 h.
const WINDOW_HOURS: i64 = 27;

fn offset_seconds(zone: Tz, instant: NaiveDateTime) -> i64 {
    i64::from(zone.offset_from_utc_datetime(&instant).fix().local_minus_utc())
}

/// Returns the slot of local wall time `naive` in `zone` by Avocet's DST rule.
pub(crate) fn slot(zone: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let start = naive - TimeDelta::hours(WINDOW_HOURS);
    let mut offsets: Vec<i64> = (0..WINDOW_HOURS * 4)
        .map(|step| offset_seconds(zone, start + TimeDelta::minutes(30 * step)))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    let first_occurrence = offsets
        .iter()
        .map(|offset| naive - TimeDelta::seconds(*offset))
        .filter(|instant| offset_seconds(zone, *instant) == (naive - *instant).num_seconds())
        .min();
    if let Some(instant) = first_occurrence {
        return instant.and_utc();
    }
    // A gap: find the first minute whose local time is past `naive`; the offset one minute
    // earlier is the offset before the transition.
    let mut instant = start;
    loop {
        let local = instant + TimeDelta::seconds(offset_seconds(zone, instant));
        if local > naive {
            let before = offset_seconds(zone, instant - TimeDelta::minutes(1));
            return (naive - TimeDelta::seconds(before)).and_utc();
        }
        instant += TimeDelta::minutes(1);
        assert!(
            instant < naive + TimeDelta::hours(WINDOW_HOURS),
            "no transition near {naive} in {zone}"
        );
    }
}
