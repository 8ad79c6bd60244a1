//! `avocetctl schedule preview -o json` agrees with an independent zoneinfo computation (Python's
//! `zoneinfo`, run as a child process) on DST gaps and overlaps, a 30- and a 45-minute DST zone,
//! month ends, leap days, noon and midnight, and intervals across DST.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::{avocetctl, texts};

/// Describes one single-section policy to preview, in YAML and in the oracle's terms.
struct Case {
    zone: &'static str,
    from: &'static str,
    section: &'static str,
    rule: Value,
}

fn daily(
    zone: &'static str,
    from: &'static str,
    section: &'static str,
    hour: u32,
    minute: u32,
) -> Case {
    Case { zone, from, section, rule: json!({"type": "Daily", "hour": hour, "minute": minute}) }
}

fn cases() -> Vec<Case> {
    vec![
        // Spring forward and fall back, America/New_York.
        daily("America/New_York", "2026-03-01T00:00:00Z", "daily: {time: \"2:30AM\"}", 2, 30),
        daily("America/New_York", "2026-10-25T00:00:00Z", "daily: {time: \"1:30AM\"}", 1, 30),
        daily("America/New_York", "2026-10-25T00:00:00Z", "daily: {time: \"02:00\"}", 2, 0),
        Case {
            zone: "America/New_York",
            from: "2026-02-20T00:00:00Z",
            section: "weekly: {day: sun, time: \"2:00am\"}",
            rule: json!({"type": "Weekly", "weekday": 6, "hour": 2, "minute": 0}),
        },
        Case {
            zone: "America/New_York",
            from: "2026-01-01T00:00:00Z",
            section: "monthly: {date: 8, time: \"2:30AM\"}",
            rule: json!({"type": "Monthly", "date": 8, "hour": 2, "minute": 30}),
        },
        Case {
            zone: "America/New_York",
            from: "2026-03-07T22:00:00-05:00",
            section: "interval: {intervalMinutes: 90}",
            rule: json!({"type": "Interval", "minutes": 90}),
        },
        // Europe: month ends on a fall-back day, and an interval of one day across DST.
        daily("Europe/London", "2026-03-25T00:00:00Z", "daily: {time: \"1:30AM\"}", 1, 30),
        Case {
            zone: "Europe/London",
            from: "2026-01-15T00:00:00Z",
            section: "monthly: {date: 31, time: \"1:30AM\"}",
            rule: json!({"type": "Monthly", "date": 31, "hour": 1, "minute": 30}),
        },
        Case {
            zone: "Europe/Paris",
            from: "2026-03-27T12:00:00+01:00",
            section: "interval: {intervalMinutes: 1440}",
            rule: json!({"type": "Interval", "minutes": 1440}),
        },
        // A 30-minute DST zone, a 45-minute one and a half-hour offset.
        daily("Australia/Lord_Howe", "2026-09-30T00:00:00Z", "daily: {time: \"2:15AM\"}", 2, 15),
        daily("Australia/Lord_Howe", "2026-04-01T00:00:00Z", "daily: {time: \"1:45am\"}", 1, 45),
        Case {
            zone: "Australia/Lord_Howe",
            from: "2026-03-20T00:00:00Z",
            section: "weekly: {day: Sunday, time: \"01:45\"}",
            rule: json!({"type": "Weekly", "weekday": 6, "hour": 1, "minute": 45}),
        },
        daily("Pacific/Chatham", "2026-09-20T00:00:00Z", "daily: {time: \"03:00\"}", 3, 0),
        daily("Pacific/Chatham", "2026-04-01T00:00:00Z", "daily: {time: \"3:15AM\"}", 3, 15),
        daily("America/St_Johns", "2026-03-05T00:00:00Z", "daily: {time: \"2:30AM\"}", 2, 30),
        daily("Asia/Kathmandu", "2026-06-01T00:00:00Z", "daily: {time: \"10:14PM\"}", 22, 14),
        // Southern hemisphere, and a zone whose DST starts at midnight.
        daily("Australia/Sydney", "2026-10-01T00:00:00Z", "daily: {time: \"2:30AM\"}", 2, 30),
        daily("America/Havana", "2026-03-05T00:00:00Z", "daily: {time: \"12:00am\"}", 0, 0),
        // Month ends, leap days, noon and midnight.
        Case {
            zone: "UTC",
            from: "2027-12-01T00:00:00Z",
            section: "monthly: {date: 29, time: \"12:00am\"}",
            rule: json!({"type": "Monthly", "date": 29, "hour": 0, "minute": 0}),
        },
        Case {
            zone: "UTC",
            from: "2028-01-31T12:00:00Z",
            section: "monthly: {date: 31, time: \"12:00PM\"}",
            rule: json!({"type": "Monthly", "date": 31, "hour": 12, "minute": 0}),
        },
        daily("America/Sao_Paulo", "2026-01-01T00:00:00Z", "daily: {time: \"12:00PM\"}", 12, 0),
    ]
}

const COUNT: usize = 12;

fn preview(case: &Case) -> Vec<String> {
    let yaml = format!(
        "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: SchedulePolicy\nmetadata: {{name: p}}\n\
         policy:\n  {}\n  timezone: {}\n",
        case.section, case.zone
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    let count = COUNT.to_string();
    let output = avocetctl(&[
        "schedule",
        "preview",
        "-f",
        file.path().to_str().unwrap(),
        "--from",
        case.from,
        "--count",
        &count,
        "-o",
        "json",
    ]);
    let (out, err) = texts(&output);
    assert!(output.status.success(), "{yaml}\n{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let policy_type = case.rule["type"].as_str().unwrap();
    assert!(rows.iter().all(|row| row["policyType"] == policy_type), "{out}");
    rows.iter().map(|row| row["time"].as_str().unwrap().to_owned()).collect()
}

fn oracle(cases: &[Case]) -> Vec<Vec<String>> {
    let input: Vec<Value> = cases
        .iter()
        .map(
            |case| json!({"zone": case.zone, "from": case.from, "count": COUNT, "rule": case.rule}),
        )
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/avocetctl/zoneinfo_oracle.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed (scripts/test.sh checks it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the zoneinfo oracle failed");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn preview_agrees_with_python_zoneinfo() {
    let cases = cases();
    let expected = oracle(&cases);
    let mut disagreements = Vec::new();
    for (case, expected) in cases.iter().zip(&expected) {
        let actual = preview(case);
        if &actual != expected {
            disagreements.push(format!(
                "{} from {} ({}):\n  avocetctl {actual:?}\n  zoneinfo  {expected:?}",
                case.zone, case.from, case.section
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "chrono-tz {} disagrees with the system zoneinfo:\n{}",
        chrono_tz::IANA_TZDB_VERSION,
        disagreements.join("\n")
    );
}
