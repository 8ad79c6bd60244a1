//! `avocetctl schedule preview`: the first N due slots of each policy type in a file.

use std::io::Write;
use std::process::ExitCode;

use avocet_scheduler::{Cadence, Clock, SystemClock};
use avocet_types::policy::{PolicyRule, TimeOfDay};
use avocet_types::{Kind, StorkObject};
use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::{OutputFormat, PreviewArgs, read_input, report_invalid};
use crate::output::Table;

/// Caps `--count`, so a typo cannot ask for millions of rows.
pub(super) const COUNT_MAX: i64 = 10_000;

/// Holds one due slot of one policy type.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    policy: String,
    namespace: Option<String>,
    policy_index: usize,
    rule: PolicyRule,
    zone: Tz,
    time: DateTime<Utc>,
}

impl Slot {
    fn sort_key(&self) -> (DateTime<Utc>, usize, avocet_types::PolicyType) {
        (self.time, self.policy_index, self.rule.policy_type())
    }

    fn local_rfc3339(&self) -> String {
        self.time.with_timezone(&self.zone).to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    /// Explains a slot whose wall time or date differs from the policy's, or `""`.
    fn note(&self) -> String {
        let local = self.time.with_timezone(&self.zone);
        let (at, date) = match self.rule {
            PolicyRule::Interval { .. } => return String::new(),
            PolicyRule::Daily { at } | PolicyRule::Weekly { at, .. } => (at, None),
            PolicyRule::Monthly { date, at } => (at, Some(date)),
        };
        let mut notes = Vec::new();
        if let Some(date) = date {
            // The slot belongs to its local month, unless a DST gap pushed it past midnight
            // into the next one; either way the rule chose that month's min(date, length).
            let month_of = |day: chrono::NaiveDate| day.with_day(1).unwrap_or(day);
            let slot_month = month_of(local.date_naive());
            let intended = if local.day() == u32::from(date).min(days_in_month(slot_month)) {
                slot_month
            } else {
                month_of(slot_month.pred_opt().unwrap_or(slot_month))
            };
            if u32::from(date) > days_in_month(intended) {
                notes.push(format!("the month has no day {date}, so it fires on its last day"));
            }
        }
        let wall = TimeOfDay::new(
            u8::try_from(local.hour()).unwrap_or_default(),
            u8::try_from(local.minute()).unwrap_or_default(),
        );
        if wall != Some(at) {
            notes.push(format!("{at} does not exist that day (DST), so it fires after the gap"));
        } else if matches!(
            self.zone.from_local_datetime(&local.date_naive().and_time(at.naive())),
            LocalResult::Ambiguous(..)
        ) {
            notes.push(format!("{at} happens twice that day (DST); it fires at the first"));
        }
        notes.join("; ")
    }
}

/// Returns the number of days in the month that starts on `first`.
fn days_in_month(first: chrono::NaiveDate) -> u32 {
    first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| u32::try_from(next.signed_duration_since(first).num_days()).ok())
        .unwrap_or(31)
}

pub(super) fn run(
    args: &PreviewArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let from = match &args.from {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| {
                anyhow::anyhow!(
                    "--from: {text:?} is not an RFC 3339 time like 2026-03-08T02:30:00-05:00"
                )
            })?
            .to_utc(),
        // Whole seconds: interval slots are anchored here and printed.
        None => SystemClock.now().with_nanosecond(0).unwrap_or_else(|| SystemClock.now()),
    };
    let default_zone: Tz = match &args.timezone {
        Some(name) => name.parse().map_err(|_| {
            anyhow::anyhow!(
                "--timezone: {name:?} is not an IANA time zone like Europe/Paris or UTC"
            )
        })?,
        None => chrono_tz::UTC,
    };
    let source = args.file.display().to_string();
    let text = read_input(&args.file)?;
    let documents = avocet_types::parse_documents(&text)
        .map_err(|error| anyhow::anyhow!("{source}: {error}"))?;
    let mut valid = true;
    let mut slots = Vec::new();
    for (policy_index, document) in documents.iter().enumerate() {
        let document = match document {
            Ok(document) => document,
            Err(error) => {
                report_invalid(error, err)?;
                valid = false;
                continue;
            }
        };
        let object = &document.object;
        let Some(policy) = object.parsed_policy() else { continue };
        let zone = policy.timezone.unwrap_or(default_zone);
        for rule in &policy.rules {
            let cadence = Cadence::new(*rule, zone, from);
            let count = usize::try_from(args.count).unwrap_or(usize::MAX);
            slots.extend(cadence.due_slots(from).take(count).map(|time| Slot {
                policy: object.name().to_owned(),
                namespace: match object {
                    StorkObject::NamespacedSchedulePolicy(_) => {
                        object.namespace().map(str::to_owned)
                    }
                    _ => None,
                },
                policy_index,
                rule: *rule,
                zone,
                time,
            }));
        }
    }
    if !valid {
        return Ok(ExitCode::FAILURE);
    }
    let policies = documents
        .iter()
        .flatten()
        .filter(|d| {
            matches!(d.object.kind(), Kind::SchedulePolicy | Kind::NamespacedSchedulePolicy)
        })
        .count();
    if policies == 0 {
        anyhow::bail!("{source}: holds no SchedulePolicy or NamespacedSchedulePolicy documents");
    }
    slots.sort_by_key(Slot::sort_key);
    match args.output {
        OutputFormat::Json => write_json(&slots, out)?,
        OutputFormat::Table => write_table(&slots, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_json(slots: &[Slot], out: &mut dyn Write) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = slots
        .iter()
        .map(|slot| {
            let mut row = serde_json::json!({
                "policyType": slot.rule.policy_type().as_str(),
                "time": slot.local_rfc3339(),
                "policy": slot.policy,
            });
            if let Some(namespace) = &slot.namespace {
                row["namespace"] = namespace.clone().into();
            }
            row
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)?;
    Ok(())
}

fn write_table(slots: &[Slot], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut table = Table::new(&["POLICY", "TYPE", "ZONE", "DUE", "NOTE"]);
    for slot in slots {
        let policy = match &slot.namespace {
            Some(namespace) => format!("{namespace}/{}", slot.policy),
            None => slot.policy.clone(),
        };
        table.row(vec![
            policy,
            slot.rule.policy_type().to_string(),
            slot.zone.name().to_owned(),
            slot.time.with_timezone(&slot.zone).format("%a %Y-%m-%d %H:%M %Z").to_string(),
            slot.note(),
        ]);
    }
    table.write(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(yaml: &str, extra: impl FnOnce(&mut PreviewArgs), output: OutputFormat) -> String {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), yaml).unwrap();
        let mut args = PreviewArgs {
            file: file.path().to_path_buf(),
            from: Some("2026-03-07T12:00:00-05:00".into()),
            count: 2,
            timezone: None,
            output,
        };
        extra(&mut args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err).unwrap();
        assert_eq!(code, ExitCode::SUCCESS, "{}", String::from_utf8_lossy(&err));
        String::from_utf8(out).unwrap()
    }

    const POLICY: &str = "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\n\
        metadata: {name: nightly}\npolicy: {daily: {time: \"2:30AM\"}, interval: {intervalMinutes: 720}}\n";

    #[test]
    fn json_lists_slots_sorted_by_time_in_the_zones_offset() {
        let json = preview(
            POLICY,
            |args| args.timezone = Some("America/New_York".into()),
            OutputFormat::Json,
        );
        let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            rows,
            serde_json::json!([
                {"policyType": "Interval", "time": "2026-03-07T12:00:00-05:00", "policy": "nightly"},
                {"policyType": "Interval", "time": "2026-03-08T00:00:00-05:00", "policy": "nightly"},
                {"policyType": "Daily", "time": "2026-03-08T03:30:00-04:00", "policy": "nightly"},
                {"policyType": "Daily", "time": "2026-03-09T02:30:00-04:00", "policy": "nightly"},
            ])
        );
    }

    #[test]
    fn table_explains_dst_shifts() {
        let table = preview(
            POLICY,
            |args| args.timezone = Some("America/New_York".into()),
            OutputFormat::Table,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["POLICY", "TYPE", "ZONE", "DUE", "NOTE"]
        );
        assert!(
            lines[3].ends_with("Sun 2026-03-08 03:30 EDT   02:30 does not exist that day (DST), so it fires after the gap"),
            "{table}"
        );
        assert!(lines[4].ends_with("Mon 2026-03-09 02:30 EDT"), "{table}");
    }

    #[test]
    fn table_explains_short_months() {
        let yaml = "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\n\
            metadata: {name: eom}\npolicy: {monthly: {date: 31, time: \"11:30PM\"}}\n";
        let table = preview(
            yaml,
            |args| args.from = Some("2026-02-01T00:00:00Z".into()),
            OutputFormat::Table,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].ends_with(
                "Sat 2026-02-28 23:30 UTC   the month has no day 31, so it fires on its last day"
            ),
            "{table}"
        );
        assert!(lines[2].ends_with("Tue 2026-03-31 23:30 UTC"), "{table}");
    }

    #[test]
    fn policy_timezone_wins_over_the_flag() {
        let yaml = POLICY.replace("policy: {", "policy: {timezone: Asia/Kathmandu, ");
        let json = preview(
            &yaml,
            |args| args.timezone = Some("America/New_York".into()),
            OutputFormat::Json,
        );
        assert!(json.contains("\"2026-03-08T02:30:00+05:45\""), "{json}");
    }
}
