//! Due slots of a policy rule: pure functions of the rule, a time zone, an anchor and an instant.
//!
//! The contract (DESIGN.md §3):
//! - Daily, weekly and monthly slots are wall-clock times in the zone. A local time inside a DST
//!   gap fires at the offset in effect before the gap (02:30 on a spring-forward day fires at
//!   03:30 local); a local time that occurs twice fires once, at its first occurrence.
//! - Monthly dates past a month's end fire on that month's last day, so every month fires once.
//! - Interval slots are `anchor + k·interval` for k ≥ 0, absolute durations that ignore DST.
//!
//! Each calendar day (week, month) contributes exactly one instant, and the slots of a rule are
//! the *set* of those instants. "The due slots at or after t" are that set's members ≥ t in
//! increasing order, so results never depend on where a scan starts, and two days that resolve
//! to the same instant (only when a zone skips a whole day, as Samoa did in 2011) fire once.

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::{GapInfo, Tz};

use avocet_types::policy::{PolicyRule, TimeOfDay};

/// Bounds the days (weeks, months) a search looks ahead; offsets change by at most a day, so a
/// slot is always found within a few steps unless the calendar ends.
const SEARCH_STEPS_MAX: u32 = 8;

/// Returns the instant of local wall time `naive` in `zone`, resolving DST by Avocet's rule:
/// a time in a gap takes the offset from before the gap, a repeated time its first occurrence.
///
/// Returns `None` only at the ends of the representable calendar.
pub fn resolve_local(zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(instant) => Some(instant.to_utc()),
        LocalResult::Ambiguous(first, second) => Some(first.to_utc().min(second.to_utc())),
        LocalResult::None => {
            let gap = GapInfo::new(&naive, &zone)?;
            let (_, offset_before) = gap.begin?;
            let offset = chrono::Offset::fix(&offset_before);
            let instant = naive
                .checked_sub_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))?;
            Some(instant.and_utc())
        }
    }
}

/// Holds what a rule's slots depend on: the rule, the zone of its wall-clock times and the
/// anchor of its interval (the schedule's creation instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    rule: PolicyRule,
    zone: Tz,
    anchor: DateTime<Utc>,
}

impl Cadence {
    /// Returns the cadence of `rule` in `zone`; `anchor` matters only to interval rules.
    pub fn new(rule: PolicyRule, zone: Tz, anchor: DateTime<Utc>) -> Self {
        Cadence { rule, zone, anchor }
    }

    /// Returns the rule.
    pub fn rule(&self) -> PolicyRule {
        self.rule
    }

    /// Returns the zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Returns the first due slot at or after `instant`, or `None` past the calendar's end.
    pub fn first_at_or_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let slot = match self.rule {
            PolicyRule::Interval { minutes } => interval_at_or_after(self.anchor, minutes, instant),
            PolicyRule::Daily { at } => self.scan_days(instant, at, |_| true),
            PolicyRule::Weekly { day, at } => {
                self.scan_days(instant, at, |date| date.weekday() == day)
            }
            PolicyRule::Monthly { date, at } => self.scan_months(instant, date, at),
        };
        debug_assert!(
            slot.is_none_or(|slot| slot >= instant),
            "T-1: a slot precedes the instant it was asked for"
        );
        slot
    }

    /// Returns the first due slot strictly after `instant`.
    pub fn first_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.first_at_or_after(instant.checked_add_signed(TimeDelta::nanoseconds(1))?)
    }

    /// Returns the due slots at or after `from`, in increasing order.
    pub fn due_slots(&self, from: DateTime<Utc>) -> DueSlots {
        DueSlots { cadence: *self, next_from: Some(from) }
    }

    /// Returns the slot as migration names write it, `YYYY-MM-DD-HHMMSS` (Go layout
    /// `2006-01-02-150405`), in the rule's zone.
    ///
    /// A wall-clock rule has one slot per local date, so its labels never repeat. Interval
    /// slots are absolute, so in a zone with DST two of them can fall in the hour that repeats
    /// in autumn and share a label; `apply` then names the second migration with a `-2` suffix.
    pub fn slot_label(&self, slot: DateTime<Utc>) -> String {
        slot.with_timezone(&self.zone).format("%Y-%m-%d-%H%M%S").to_string()
    }

    /// Returns the slot of local `date`, applying the DST rule.
    fn slot_on(&self, date: NaiveDate, at: TimeOfDay) -> Option<DateTime<Utc>> {
        resolve_local(self.zone, date.and_time(at.naive()))
    }

    /// Returns the local date of `instant`, or `None` where the zone's offset would take it past
    /// the calendar's ends (chrono's own conversion panics there).
    fn local_date(&self, instant: DateTime<Utc>) -> Option<NaiveDate> {
        let utc = instant.naive_utc();
        let offset = chrono::Offset::fix(&self.zone.offset_from_utc_datetime(&utc));
        Some(utc.checked_add_offset(offset)?.date())
    }

    /// Scans days from the day before `instant`'s local date for the first matching slot.
    fn scan_days(
        &self,
        instant: DateTime<Utc>,
        at: TimeOfDay,
        matches: impl Fn(NaiveDate) -> bool,
    ) -> Option<DateTime<Utc>> {
        // Slots are non-decreasing in the date (offsets never jump by more than a day), so the
        // first matching date whose slot is ≥ instant gives the smallest such slot.
        let start = self.local_date(instant)?.checked_sub_days(Days::new(1))?;
        let mut date = start;
        let mut weeks_scanned = 0;
        while weeks_scanned < SEARCH_STEPS_MAX {
            for _ in 0..7 {
                if matches(date) {
                    let slot = self.slot_on(date, at)?;
                    if slot >= instant {
                        return Some(slot);
                    }
                }
                date = date.succ_opt()?;
            }
            weeks_scanned += 1;
        }
        None
    }

    /// Scans months from the month of the day before `instant`'s local date.
    fn scan_months(
        &self,
        instant: DateTime<Utc>,
        date: u8,
        at: TimeOfDay,
    ) -> Option<DateTime<Utc>> {
        let start = self.local_date(instant)?.checked_sub_days(Days::new(1))?;
        let mut month = start.with_day(1)?;
        for _ in 0..SEARCH_STEPS_MAX {
            let day = u32::from(date).min(days_in_month(month)?);
            let slot = self.slot_on(month.with_day(day)?, at)?;
            if slot >= instant {
                return Some(slot);
            }
            month = month.checked_add_months(Months::new(1))?;
        }
        None
    }
}

/// Returns the number of days in the month of `first` (a first of the month).
fn days_in_month(first: NaiveDate) -> Option<u32> {
    let next = first.checked_add_months(Months::new(1))?;
    u32::try_from(next.signed_duration_since(first).num_days()).ok()
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

fn nanos(instant: DateTime<Utc>) -> i128 {
    i128::from(instant.timestamp()) * NANOS_PER_SECOND
        + i128::from(instant.timestamp_subsec_nanos())
}

fn from_nanos(total: i128) -> Option<DateTime<Utc>> {
    let seconds = i64::try_from(total.div_euclid(NANOS_PER_SECOND)).ok()?;
    let subsec = u32::try_from(total.rem_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(seconds, subsec)
}

/// Returns the first `anchor + k·minutes` (k ≥ 0) at or after `instant`.
fn interval_at_or_after(
    anchor: DateTime<Utc>,
    minutes: u32,
    instant: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if minutes == 0 {
        // Validation rejects a zero interval; a rule built by hand that has one never fires.
        return None;
    }
    if instant <= anchor {
        return Some(anchor);
    }
    let step = i128::from(minutes) * 60 * NANOS_PER_SECOND;
    let elapsed = nanos(instant) - nanos(anchor);
    let steps = (elapsed + step - 1) / step;
    from_nanos(nanos(anchor) + steps * step)
}

/// Iterates over due slots in increasing order; see [`Cadence::due_slots`].
#[derive(Debug, Clone)]
pub struct DueSlots {
    cadence: Cadence,
    next_from: Option<DateTime<Utc>>,
}

impl Iterator for DueSlots {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let slot = self.cadence.first_at_or_after(self.next_from?);
        self.next_from = slot.and_then(|slot| slot.checked_add_signed(TimeDelta::nanoseconds(1)));
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn time(hour: u8, minute: u8) -> TimeOfDay {
        TimeOfDay::new(hour, minute).unwrap()
    }

    fn local(slots: impl Iterator<Item = DateTime<Utc>>, zone: Tz) -> Vec<String> {
        slots.map(|slot| slot.with_timezone(&zone).to_rfc3339()).collect()
    }

    #[test]
    fn spring_forward_gap_fires_after_the_gap() {
        let zone = chrono_tz::America::New_York;
        let cadence =
            Cadence::new(PolicyRule::Daily { at: time(2, 30) }, zone, at("2026-01-01T00:00:00Z"));
        let slots = cadence.due_slots(at("2026-03-07T12:00:00Z")).take(3);
        assert_eq!(
            local(slots, zone),
            ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]
        );
    }

    #[test]
    fn fall_back_overlap_fires_once_at_the_first_occurrence() {
        let zone = chrono_tz::America::New_York;
        let cadence =
            Cadence::new(PolicyRule::Daily { at: time(1, 30) }, zone, at("2026-01-01T00:00:00Z"));
        let slots: Vec<_> = cadence.due_slots(at("2026-10-31T12:00:00Z")).take(3).collect();
        assert_eq!(
            local(slots.iter().copied(), zone),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]
        );
        // Asking between the two occurrences does not fire the second one.
        assert_eq!(cadence.first_after(slots[0]), Some(slots[1]));
        assert_eq!(cadence.first_at_or_after(at("2026-11-01T06:15:00Z")), Some(slots[1]));
    }

    #[test]
    fn samoa_skipped_day_is_not_doubled() {
        // Pacific/Apia jumped from UTC-10 to UTC+14 at the end of 2011-12-29: Dec 30 never existed.
        let zone = chrono_tz::Pacific::Apia;
        let cadence =
            Cadence::new(PolicyRule::Daily { at: time(10, 0) }, zone, at("2011-01-01T00:00:00Z"));
        let slots: Vec<_> = cadence.due_slots(at("2011-12-28T00:00:00Z")).take(3).collect();
        assert_eq!(
            local(slots.iter().copied(), zone),
            ["2011-12-28T10:00:00-10:00", "2011-12-29T10:00:00-10:00", "2011-12-31T10:00:00+14:00"]
        );
    }

    #[test]
    fn monthly_31_fires_on_the_last_day_of_short_months() {
        let zone = chrono_tz::UTC;
        let rule = PolicyRule::Monthly { date: 31, at: time(20, 5) };
        let cadence = Cadence::new(rule, zone, at("2020-01-01T00:00:00Z"));
        let labels: Vec<String> = cadence
            .due_slots(at("2024-01-31T20:05:00Z"))
            .take(5)
            .map(|slot| cadence.slot_label(slot))
            .collect();
        assert_eq!(
            labels,
            [
                "2024-01-31-200500",
                "2024-02-29-200500",
                "2024-03-31-200500",
                "2024-04-30-200500",
                "2024-05-31-200500"
            ]
        );
    }

    #[test]
    fn weekly_keeps_its_wall_time_across_dst() {
        let zone = chrono_tz::Europe::Paris;
        let rule = PolicyRule::Weekly { day: Weekday::Sun, at: time(22, 13) };
        let cadence = Cadence::new(rule, zone, at("2026-01-01T00:00:00Z"));
        let slots = cadence.due_slots(at("2026-03-20T00:00:00Z")).take(3);
        assert_eq!(
            local(slots, zone),
            ["2026-03-22T22:13:00+01:00", "2026-03-29T22:13:00+02:00", "2026-04-05T22:13:00+02:00"]
        );
    }

    #[test]
    fn interval_slots_are_absolute_and_anchored() {
        let zone = chrono_tz::America::New_York;
        let anchor = at("2026-03-08T01:10:00-05:00");
        let cadence = Cadence::new(PolicyRule::Interval { minutes: 60 }, zone, anchor);
        assert_eq!(cadence.first_at_or_after(anchor - TimeDelta::days(3)), Some(anchor));
        let slots = cadence.due_slots(anchor + TimeDelta::seconds(1)).take(2);
        assert_eq!(local(slots, zone), ["2026-03-08T03:10:00-04:00", "2026-03-08T04:10:00-04:00"]);
        let precise = anchor + TimeDelta::milliseconds(1500);
        let cadence = Cadence::new(PolicyRule::Interval { minutes: 1 }, zone, precise);
        assert_eq!(cadence.first_after(precise), Some(precise + TimeDelta::minutes(1)));
    }

    #[test]
    fn slot_labels_use_the_zones_wall_clock() {
        let anchor = at("2026-01-01T00:00:00Z");
        let daily =
            Cadence::new(PolicyRule::Daily { at: time(3, 46) }, chrono_tz::Asia::Kolkata, anchor);
        assert_eq!(daily.slot_label(at("2019-02-14T22:16:51Z")), "2019-02-15-034651");
        // Two interval slots in New York's repeated autumn hour share a local label (apply
        // suffixes the second migration's name).
        let zone = chrono_tz::America::New_York;
        let interval =
            Cadence::new(PolicyRule::Interval { minutes: 60 }, zone, at("2026-11-01T04:10:00Z"));
        let labels: Vec<String> =
            interval.due_slots(anchor).take(3).map(|slot| interval.slot_label(slot)).collect();
        assert_eq!(labels, ["2026-11-01-001000", "2026-11-01-011000", "2026-11-01-011000"]);
    }

    #[test]
    fn extreme_instants_and_zero_intervals_give_none_not_a_panic() {
        let zone = chrono_tz::Asia::Tokyo;
        let daily = Cadence::new(PolicyRule::Daily { at: time(1, 0) }, zone, DateTime::UNIX_EPOCH);
        assert_eq!(daily.first_at_or_after(DateTime::<Utc>::MAX_UTC), None);
        let zone = chrono_tz::America::New_York;
        let monthly = Cadence::new(
            PolicyRule::Monthly { date: 1, at: time(1, 0) },
            zone,
            DateTime::UNIX_EPOCH,
        );
        // MIN_UTC has no local date in New York (offset −4:56), so the calendar has ended.
        assert_eq!(monthly.first_at_or_after(DateTime::<Utc>::MIN_UTC), None);
        let zero = Cadence::new(PolicyRule::Interval { minutes: 0 }, zone, DateTime::UNIX_EPOCH);
        assert_eq!(zero.first_at_or_after(DateTime::UNIX_EPOCH), None);
    }
}
