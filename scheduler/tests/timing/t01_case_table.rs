//! Checks every case of `testdata/timing.txt`, the hand-checked table reviewers read.

use avocet_scheduler::Cadence;
use avocet_types::policy::{PolicyRule, TimeOfDay, parse_weekday};
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;

/// Parses a rule written as in the table, e.g. `weekly Thursday 10:13PM`.
fn parse_rule(text: &str) -> PolicyRule {
    let words: Vec<&str> = text.split_whitespace().collect();
    let time =
        |word: &str| word.parse::<TimeOfDay>().unwrap_or_else(|()| panic!("bad time {word:?}"));
    match words.as_slice() {
        ["interval", minutes] => PolicyRule::Interval { minutes: minutes.parse().unwrap() },
        ["daily", at] => PolicyRule::Daily { at: time(at) },
        ["weekly", day, at] => {
            PolicyRule::Weekly { day: parse_weekday(day).unwrap(), at: time(at) }
        }
        ["monthly", date, at] => PolicyRule::Monthly { date: date.parse().unwrap(), at: time(at) },
        _ => panic!("bad rule {text:?}"),
    }
}

#[test]
fn hand_checked_cases() {
    let table = include_str!("../../testdata/timing.txt");
    let mut cases = 0;
    let mut failures = Vec::new();
    for (number, line) in table.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = line.split('|').map(str::trim).collect();
        let [rule, zone, from, expected] = columns.as_slice() else {
            panic!("testdata/timing.txt:{}: expected 4 columns: {line}", number + 1);
        };
        let zone: Tz = zone.parse().unwrap();
        let from = DateTime::parse_from_rfc3339(from).unwrap().to_utc();
        let cadence = Cadence::new(parse_rule(rule), zone, from);
        let actual: Vec<DateTime<FixedOffset>> = cadence
            .due_slots(from)
            .take(3)
            .map(|slot| slot.with_timezone(&zone).fixed_offset())
            .collect();
        let expected: Vec<DateTime<FixedOffset>> = expected
            .split_whitespace()
            .map(|text| DateTime::parse_from_rfc3339(text).unwrap())
            .collect();
        // Compare instants and offsets: the offset column is how the table shows DST.
        let same = actual.len() == expected.len()
            && actual.iter().zip(&expected).all(|(a, e)| a == e && a.offset() == e.offset());
        if !same {
            let shown: Vec<String> = actual.iter().map(DateTime::to_rfc3339).collect();
            failures.push(format!(
                "testdata/timing.txt:{}: {line}\n    got {}",
                number + 1,
                shown.join(" ")
            ));
        }
        cases += 1;
    }
    assert!(cases >= 30, "the table lost cases: {cases}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
