//! SchedulePolicy and NamespacedSchedulePolicy, and their parsed form, [`ParsedPolicy`].
//!
//! The YAML shapes are Stork's (`policy.interval.intervalMinutes`, `policy.daily.time`, …) plus
//! one extension, `policy.timezone`. Times are Go `time.Kitchen` as Stork parses them (`10:14PM`,
//! `10:14pm`, `01:15am`, `12:00am`; not `10:14 PM` or `10:14Pm`), and also 24-hour `22:14`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::Weekday;
use chrono_tz::Tz;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, default_api_version, stork_resource};
use crate::validate::{FieldPath, ValidationErrors};

/// Names the four kinds of policy section; status maps and migration names use these strings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum PolicyType {
    /// Every `intervalMinutes`.
    Interval,
    /// Every day at a time.
    Daily,
    /// Every week on a day at a time.
    Weekly,
    /// Every month on a date at a time.
    Monthly,
}

impl PolicyType {
    /// Lists the types in Stork's evaluation order.
    pub const ALL: [PolicyType; 4] =
        [PolicyType::Interval, PolicyType::Daily, PolicyType::Weekly, PolicyType::Monthly];

    /// Returns the name as status maps spell it (`Daily`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Interval => "Interval",
            PolicyType::Daily => "Daily",
            PolicyType::Weekly => "Weekly",
            PolicyType::Monthly => "Monthly",
        }
    }

    /// Returns the lowercase name that migration names use (`daily`).
    pub fn lowercase(self) -> &'static str {
        match self {
            PolicyType::Interval => "interval",
            PolicyType::Daily => "daily",
            PolicyType::Weekly => "weekly",
            PolicyType::Monthly => "monthly",
        }
    }

    /// Returns Stork's default `retain` for the type, used when `retain` is 0 or unset.
    pub fn default_retain(self) -> u32 {
        match self {
            PolicyType::Interval => 10,
            PolicyType::Daily => 30,
            PolicyType::Weekly => 7,
            PolicyType::Monthly => 12,
        }
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Holds a cluster-scoped schedule policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePolicy {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `SchedulePolicy`.
    #[serde(default = "schedule_policy_kind")]
    pub kind: String,
    /// Holds the object's name and labels.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Holds the policy sections.
    #[serde(default)]
    pub policy: SchedulePolicyItem,
}

fn schedule_policy_kind() -> String {
    Kind::SchedulePolicy.as_str().to_owned()
}

stork_resource!(SchedulePolicy, Kind::SchedulePolicy, k8s_openapi::ClusterResourceScope);

/// Holds a namespaced schedule policy; it wins over a SchedulePolicy of the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedSchedulePolicy {
    /// Names the API version, `stork.libopenstorage.org/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Names the kind, `NamespacedSchedulePolicy`.
    #[serde(default = "namespaced_schedule_policy_kind")]
    pub kind: String,
    /// Holds the object's name, namespace and labels.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::object_meta")]
    pub metadata: ObjectMeta,
    /// Holds the policy sections.
    #[serde(default)]
    pub policy: SchedulePolicyItem,
}

fn namespaced_schedule_policy_kind() -> String {
    Kind::NamespacedSchedulePolicy.as_str().to_owned()
}

stork_resource!(
    NamespacedSchedulePolicy,
    Kind::NamespacedSchedulePolicy,
    k8s_openapi::NamespaceResourceScope
);

/// Holds the policy sections; every section that is set fires independently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulePolicyItem {
    /// Fires every `intervalMinutes`, measured from the schedule's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalPolicy>,
    /// Fires every day at `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailyPolicy>,
    /// Fires every week on `day` at `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklyPolicy>,
    /// Fires every month on `date` at `time`; dates past a month's end fire on its last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<MonthlyPolicy>,
    /// Names the IANA time zone of daily, weekly and monthly times (Avocet extension; default
    /// is the service's `--timezone`, itself UTC by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Holds an interval section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalPolicy {
    /// Gives the interval in minutes, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_minutes: Option<i64>,
    /// Caps how many migrations of this type are kept (0 means Stork's default, 10).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retain: i64,
    /// Carries driver options (kept for compatibility; migrations do not use them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// Holds a daily section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyPolicy {
    /// Gives the time of day, e.g. `10:14PM` or `22:14`.
    #[serde(default)]
    pub time: String,
    /// Caps how many migrations of this type are kept (0 means Stork's default, 30).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retain: i64,
    /// Carries driver options (kept for compatibility; migrations do not use them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// Names a weekday for full snapshots (kept for compatibility; migrations do not use it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub force_full_snapshot_day: String,
}

/// Holds a weekly section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeeklyPolicy {
    /// Names the day, e.g. `Thursday`, `Thu` or `thurs`.
    #[serde(default)]
    pub day: String,
    /// Gives the time of day, e.g. `10:13PM` or `22:13`.
    #[serde(default)]
    pub time: String,
    /// Caps how many migrations of this type are kept (0 means Stork's default, 7).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retain: i64,
    /// Carries driver options (kept for compatibility; migrations do not use them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// Holds a monthly section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyPolicy {
    /// Gives the date, 1 to 31; months without that date fire on their last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<i64>,
    /// Gives the time of day, e.g. `8:05PM` or `20:05`.
    #[serde(default)]
    pub time: String,
    /// Caps how many migrations of this type are kept (0 means Stork's default, 12).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retain: i64,
    /// Carries driver options (kept for compatibility; migrations do not use them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// Holds a wall-clock time of day, minute precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    /// Returns the time `hour:minute`, or `None` when either is out of range.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }

    /// Returns the hour, 0 to 23.
    pub fn hour(self) -> u8 {
        self.hour
    }

    /// Returns the minute, 0 to 59.
    pub fn minute(self) -> u8 {
        self.minute
    }

    /// Returns the time as a `chrono::NaiveTime`.
    pub fn naive(self) -> chrono::NaiveTime {
        chrono::NaiveTime::from_hms_opt(u32::from(self.hour), u32::from(self.minute), 0)
            .expect("hour < 24 and minute < 60 by construction")
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl FromStr for TimeOfDay {
    type Err = ();

    /// Parses Go `time.Kitchen` (`3:04PM`, then `3:04pm`) as Stork does, or 24-hour `15:04`.
    fn from_str(text: &str) -> Result<TimeOfDay, ()> {
        let (hour_text, rest) = text.split_once(':').ok_or(())?;
        let hour_digits = hour_text.len();
        if !(1..=2).contains(&hour_digits) || !hour_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let minute_text = rest.get(..2).ok_or(())?;
        if !minute_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let hour: u8 = hour_text.parse().map_err(|_| ())?;
        let minute: u8 = minute_text.parse().map_err(|_| ())?;
        if minute >= 60 {
            return Err(());
        }
        let hour = match &rest[2..] {
            // Go's Kitchen layout accepts hours 0..=12; PM adds 12 below noon, 12AM is midnight.
            "PM" | "pm" if hour <= 12 => {
                if hour < 12 {
                    hour + 12
                } else {
                    hour
                }
            }
            "AM" | "am" if hour <= 12 => {
                if hour == 12 {
                    0
                } else {
                    hour
                }
            }
            "" if hour < 24 => hour,
            _ => return Err(()),
        };
        TimeOfDay::new(hour, minute).ok_or(())
    }
}

/// Parses a weekday the way Stork's `Days` table does (`Thursday`, `Thu`, `Thur`, `thurs`, …).
pub fn parse_weekday(text: &str) -> Option<Weekday> {
    let day = match text {
        "Sunday" | "Sun" | "sunday" | "sun" => Weekday::Sun,
        "Monday" | "Mon" | "monday" | "mon" => Weekday::Mon,
        "Tuesday" | "Tue" | "tuesday" | "tue" => Weekday::Tue,
        "Wednesday" | "Wed" | "wednesday" | "wed" => Weekday::Wed,
        "Thursday" | "Thu" | "Thur" | "Thurs" | "thursday" | "thu" | "thur" | "thurs" => {
            Weekday::Thu
        }
        "Friday" | "Fri" | "friday" | "fri" => Weekday::Fri,
        "Saturday" | "Sat" | "saturday" | "sat" => Weekday::Sat,
        _ => return None,
    };
    Some(day)
}

/// Caps `intervalMinutes` at 100 years so that slot arithmetic can never overflow.
pub const INTERVAL_MINUTES_MAX: i64 = 100 * 366 * 24 * 60;

/// Caps `retain` so that history stays bounded.
pub const RETAIN_MAX: i64 = 10_000;

/// Holds one validated policy section: what the scheduler computes due slots from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyRule {
    /// Fires at `anchor + k·minutes`, k ≥ 0.
    Interval {
        /// Gives the interval in minutes, at least 1.
        minutes: u32,
    },
    /// Fires every day at `at` in the policy's zone.
    Daily {
        /// Gives the wall-clock time.
        at: TimeOfDay,
    },
    /// Fires every `day` at `at` in the policy's zone.
    Weekly {
        /// Gives the weekday.
        day: Weekday,
        /// Gives the wall-clock time.
        at: TimeOfDay,
    },
    /// Fires on `date` (or the month's last day when shorter) at `at` in the policy's zone.
    Monthly {
        /// Gives the date, 1 to 31.
        date: u8,
        /// Gives the wall-clock time.
        at: TimeOfDay,
    },
}

impl PolicyRule {
    /// Returns the section's type.
    pub fn policy_type(&self) -> PolicyType {
        match self {
            PolicyRule::Interval { .. } => PolicyType::Interval,
            PolicyRule::Daily { .. } => PolicyType::Daily,
            PolicyRule::Weekly { .. } => PolicyType::Weekly,
            PolicyRule::Monthly { .. } => PolicyType::Monthly,
        }
    }
}

impl fmt::Display for PolicyRule {
    /// Writes the rule as storkctl's `get schedulepolicy` columns do (`Thursday@22:13`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyRule::Interval { minutes } => write!(f, "every {minutes} min"),
            PolicyRule::Daily { at } => write!(f, "{at}"),
            PolicyRule::Weekly { day, at } => write!(f, "{day}@{at}"),
            PolicyRule::Monthly { date, at } => write!(f, "{date}@{at}"),
        }
    }
}

/// Holds a validated policy: its rules in evaluation order, retain caps and zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPolicy {
    /// Lists the sections that are set, in the order Interval, Daily, Weekly, Monthly.
    pub rules: Vec<PolicyRule>,
    /// Gives the effective `retain` of each rule's type, defaults applied.
    pub retain: BTreeMap<PolicyType, u32>,
    /// Gives the policy's own zone (`policy.timezone`), if it names one.
    pub timezone: Option<Tz>,
}

impl ParsedPolicy {
    /// Returns the rule of `policy_type`, if the policy sets that section.
    pub fn rule(&self, policy_type: PolicyType) -> Option<&PolicyRule> {
        self.rules.iter().find(|rule| rule.policy_type() == policy_type)
    }
}

fn check_time(errors: &mut ValidationErrors, path: &FieldPath, text: &str) -> Option<TimeOfDay> {
    if text.is_empty() {
        errors.push(path, "is required: give a time like 10:14PM or 22:14");
        return None;
    }
    match text.parse::<TimeOfDay>() {
        Ok(time) => Some(time),
        Err(()) => {
            errors.push(path, format!("{text:?} is not a time like 10:14PM"));
            None
        }
    }
}

fn check_weekday(errors: &mut ValidationErrors, path: &FieldPath, text: &str) -> Option<Weekday> {
    if text.is_empty() {
        errors.push(path, "is required: give a day of the week like Thursday or Thu");
        return None;
    }
    let day = parse_weekday(text);
    if day.is_none() {
        errors.push(path, format!("{text:?} is not a day of the week like Thursday or Thu"));
    }
    day
}

fn check_retain(
    errors: &mut ValidationErrors,
    path: &FieldPath,
    retain: i64,
    policy_type: PolicyType,
) -> u32 {
    match u32::try_from(retain) {
        Ok(0) => policy_type.default_retain(),
        Ok(value) if i64::from(value) <= RETAIN_MAX => value,
        _ => {
            errors.push(
                &path.field("retain"),
                format!("{retain} is not a count from 0 (the default) to {RETAIN_MAX}"),
            );
            policy_type.default_retain()
        }
    }
}

impl SchedulePolicyItem {
    /// Validates every section and returns the parsed policy, or every problem at once.
    pub fn parse(&self, path: &FieldPath) -> Result<ParsedPolicy, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut rules = Vec::new();
        let mut retain = BTreeMap::new();

        if let Some(interval) = &self.interval {
            let path = path.field("interval");
            let field = path.field("intervalMinutes");
            match interval.interval_minutes.map(|minutes| (minutes, u32::try_from(minutes))) {
                Some((_, Ok(minutes)))
                    if minutes >= 1 && i64::from(minutes) <= INTERVAL_MINUTES_MAX =>
                {
                    rules.push(PolicyRule::Interval { minutes });
                }
                Some((minutes, _)) => errors.push(
                    &field,
                    format!(
                        "{minutes} is not a number of minutes from 1 to {INTERVAL_MINUTES_MAX}"
                    ),
                ),
                None => {
                    errors.push(&field, "is required: give the interval in minutes (1 or more)")
                }
            }
            let count = check_retain(&mut errors, &path, interval.retain, PolicyType::Interval);
            retain.insert(PolicyType::Interval, count);
        }
        if let Some(daily) = &self.daily {
            let path = path.field("daily");
            if let Some(at) = check_time(&mut errors, &path.field("time"), &daily.time) {
                rules.push(PolicyRule::Daily { at });
            }
            if !daily.force_full_snapshot_day.is_empty() {
                check_weekday(
                    &mut errors,
                    &path.field("forceFullSnapshotDay"),
                    &daily.force_full_snapshot_day,
                );
            }
            let count = check_retain(&mut errors, &path, daily.retain, PolicyType::Daily);
            retain.insert(PolicyType::Daily, count);
        }
        if let Some(weekly) = &self.weekly {
            let path = path.field("weekly");
            let day = check_weekday(&mut errors, &path.field("day"), &weekly.day);
            let at = check_time(&mut errors, &path.field("time"), &weekly.time);
            if let (Some(day), Some(at)) = (day, at) {
                rules.push(PolicyRule::Weekly { day, at });
            }
            let count = check_retain(&mut errors, &path, weekly.retain, PolicyType::Weekly);
            retain.insert(PolicyType::Weekly, count);
        }
        if let Some(monthly) = &self.monthly {
            let path = path.field("monthly");
            let field = path.field("date");
            let date = match monthly.date.map(|date| (date, u8::try_from(date))) {
                Some((_, Ok(date))) if (1..=31).contains(&date) => Some(date),
                Some((date, _)) => {
                    errors.push(&field, format!("{date} is not a day of the month (1 to 31)"));
                    None
                }
                None => {
                    errors.push(&field, "is required: give a day of the month (1 to 31)");
                    None
                }
            };
            let at = check_time(&mut errors, &path.field("time"), &monthly.time);
            if let (Some(date), Some(at)) = (date, at) {
                rules.push(PolicyRule::Monthly { date, at });
            }
            let count = check_retain(&mut errors, &path, monthly.retain, PolicyType::Monthly);
            retain.insert(PolicyType::Monthly, count);
        }
        if self.interval.is_none()
            && self.daily.is_none()
            && self.weekly.is_none()
            && self.monthly.is_none()
        {
            errors.push(path, "sets none of interval, daily, weekly or monthly, so it never fires");
        }
        let timezone = self.timezone.as_deref().and_then(|name| match name.parse::<Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.push(
                    &path.field("timezone"),
                    format!("{name:?} is not an IANA time zone like Europe/Paris or UTC"),
                );
                None
            }
        });
        errors.into_result(ParsedPolicy { rules, retain, timezone })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> Option<(u8, u8)> {
        text.parse::<TimeOfDay>().ok().map(|t| (t.hour(), t.minute()))
    }

    #[test]
    fn parses_kitchen_time_as_go_does() {
        assert_eq!(time("10:14PM"), Some((22, 14)));
        assert_eq!(time("10:14pm"), Some((22, 14)));
        assert_eq!(time("01:15am"), Some((1, 15)));
        assert_eq!(time("1:15AM"), Some((1, 15)));
        assert_eq!(time("12:00am"), Some((0, 0)));
        assert_eq!(time("12:00PM"), Some((12, 0)));
        assert_eq!(time("8:05PM"), Some((20, 5)));
        // Go's hour12 accepts 0, and PM moves it to noon.
        assert_eq!(time("0:30AM"), Some((0, 30)));
        assert_eq!(time("0:30PM"), Some((12, 30)));
        for bad in ["10:14 PM", "10:14Pm", "13:00PM", "10:4PM", "10:60PM", "25:61PM", "", "PM"] {
            assert_eq!(time(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn parses_24_hour_time() {
        assert_eq!(time("22:14"), Some((22, 14)));
        assert_eq!(time("0:00"), Some((0, 0)));
        assert_eq!(time("09:05"), Some((9, 5)));
        for bad in ["24:00", "22:1", "22:145", "+1:00", "1:+5", "١٢:٠٠"] {
            assert_eq!(time(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepts_exactly_storks_weekday_aliases() {
        for alias in ["Thursday", "Thu", "Thur", "Thurs", "thursday", "thu", "thur", "thurs"] {
            assert_eq!(parse_weekday(alias), Some(Weekday::Thu), "{alias}");
        }
        assert_eq!(parse_weekday("sun"), Some(Weekday::Sun));
        for bad in ["SUNDAY", "Su", "Thrs", "", "Tues"] {
            assert_eq!(parse_weekday(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_reports_every_problem_at_once() {
        let item = SchedulePolicyItem {
            interval: Some(IntervalPolicy { interval_minutes: Some(0), retain: -1, options: None }),
            daily: Some(DailyPolicy { time: "25:61PM".into(), ..Default::default() }),
            weekly: Some(WeeklyPolicy {
                day: "Funday".into(),
                time: "9:00".into(),
                retain: 0,
                options: None,
            }),
            monthly: Some(MonthlyPolicy {
                date: Some(32),
                time: "8:05PM".into(),
                retain: 0,
                options: None,
            }),
            timezone: Some("Mars/Olympus".into()),
        };
        let errors = item.parse(&FieldPath::root().field("policy")).unwrap_err();
        let lines: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "policy.interval.intervalMinutes: 0 is not a number of minutes from 1 to 52704000",
                "policy.interval.retain: -1 is not a count from 0 (the default) to 10000",
                "policy.daily.time: \"25:61PM\" is not a time like 10:14PM",
                "policy.weekly.day: \"Funday\" is not a day of the week like Thursday or Thu",
                "policy.monthly.date: 32 is not a day of the month (1 to 31)",
                "policy.timezone: \"Mars/Olympus\" is not an IANA time zone like Europe/Paris or UTC",
            ]
        );
    }

    #[test]
    fn parse_returns_rules_in_evaluation_order_with_default_retain() {
        let item = SchedulePolicyItem {
            interval: Some(IntervalPolicy { interval_minutes: Some(60), ..Default::default() }),
            monthly: Some(MonthlyPolicy {
                date: Some(14),
                time: "8:05PM".into(),
                retain: 3,
                options: None,
            }),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        };
        let parsed = item.parse(&FieldPath::root().field("policy")).unwrap();
        assert_eq!(parsed.rules.len(), 2);
        assert_eq!(parsed.rules[0], PolicyRule::Interval { minutes: 60 });
        assert_eq!(
            parsed.rules[1],
            PolicyRule::Monthly { date: 14, at: TimeOfDay::new(20, 5).unwrap() }
        );
        assert_eq!(parsed.retain[&PolicyType::Interval], 10);
        assert_eq!(parsed.retain[&PolicyType::Monthly], 3);
        assert_eq!(parsed.timezone, Some(chrono_tz::America::New_York));
    }

    #[test]
    fn missing_values_are_required_not_zero() {
        let item = SchedulePolicyItem {
            interval: Some(IntervalPolicy::default()),
            weekly: Some(WeeklyPolicy::default()),
            monthly: Some(MonthlyPolicy::default()),
            ..Default::default()
        };
        let errors = item.parse(&FieldPath::root().field("policy")).unwrap_err();
        let lines: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "policy.interval.intervalMinutes: is required: give the interval in minutes (1 or more)",
                "policy.weekly.day: is required: give a day of the week like Thursday or Thu",
                "policy.weekly.time: is required: give a time like 10:14PM or 22:14",
                "policy.monthly.date: is required: give a day of the month (1 to 31)",
                "policy.monthly.time: is required: give a time like 10:14PM or 22:14",
            ]
        );
    }

    #[test]
    fn an_empty_policy_is_an_error() {
        let errors =
            SchedulePolicyItem::default().parse(&FieldPath::root().field("policy")).unwrap_err();
        assert_eq!(errors.errors[0].path, "policy");
    }
}
