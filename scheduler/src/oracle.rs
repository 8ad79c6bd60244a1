//! The oracle of the real-process tests and `avocet demo`: it judges only what the public API
//! shows, the `Fired` and `Coalesced` events (`avocetctl get events -o json`, written by
//! [`crate::apply`]) and the migrations' slot annotations (`avocetctl get migration -o json`).
//!
//! - EO-1: no (schedule, policy type, slot) fired twice.
//! - EO-2: every slot of a policy type from its first fire to its last accounted slot was
//!   fired, buffered (fired while the schedule's migration ran, to start when it ends) or
//!   coalesced, exactly once in all (so nothing was lost across faults).
//! - T-1: no fire before its slot was due (the event's lateness is never negative, and each
//!   kept migration's `fired-at` is at or after its `due-slot`). Those readings are the
//!   leader's own, so [`early`] also judges T-1 by an observer's clock: no event that fired a
//!   slot was seen before that slot was due, which catches a leader whose clock runs fast.
//!
//! - W-1: no migration's outcome was committed by a lease that was not current ([`stale_leases`],
//!   from the `Leased`, `LeaseExpired` and `Completed` events, each naming its token).
//!
//! Events read `Scheduled migration (NAME) created for the Interval slot SLOT (0.004 s after it
//! was due)`, `Interval slot SLOT fired while migration (NAME) runs; it starts when that one
//! ends` and `N [missed] Interval slot(s) from A to B coalesced into …`.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// What one policy type of one schedule showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    /// The policy type (`Interval`, `Daily`…).
    pub policy_type: String,
    /// The slots fired.
    pub fired: usize,
    /// The slots accounted for: fired plus coalesced.
    pub accounted: u64,
    /// The slots from the first fire to the last accounted slot, one `step` apart.
    pub expected: u64,
    /// The first slot fired.
    pub first: DateTime<Utc>,
    /// The last slot fired or coalesced.
    pub last: DateTime<Utc>,
}

/// Returns the instant written between `before` and `after` in `message`.
fn between(message: &str, before: &str, after: &str) -> Option<DateTime<Utc>> {
    let start = message.find(before)? + before.len();
    let rest = &message[start..];
    let text = &rest[..rest.find(after)?];
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

/// Reads annotation `key` of a JSON object as an instant.
pub fn annotation(object: &Value, key: &str) -> Option<DateTime<Utc>> {
    let text = object.pointer(&format!("/metadata/annotations/{}", key.replace('/', "~1")))?;
    DateTime::parse_from_rfc3339(text.as_str()?).ok().map(|t| t.to_utc())
}

/// Judges one schedule's `policy_type` slots, `step` apart, from its events (`items` of
/// `get events -o json`) and its migrations (`items` of `get migration -o json`); returns the
/// accounting (`None` when no slot of that type fired or was coalesced) or every violation.
pub fn judge(
    events: &[Value],
    migrations: &[Value],
    policy_type: &str,
    step: TimeDelta,
) -> Result<Option<Accounting>, Vec<String>> {
    let (accounting, violations) = tally(events, migrations, policy_type, step);
    if violations.is_empty() { Ok(accounting) } else { Err(violations) }
}

/// As [`judge`], but returns the accounting also when there are violations, for a report
/// that counts slots missed and doubled (the `chaos` soak's summary).
pub fn tally(
    events: &[Value],
    migrations: &[Value],
    policy_type: &str,
    step: TimeDelta,
) -> (Option<Accounting>, Vec<String>) {
    let mut violations = Vec::new();
    for migration in migrations {
        let name = migration["metadata"]["name"].as_str().unwrap_or_default();
        if let (Some(due), Some(fired)) = (
            annotation(migration, "avocet.dev/due-slot"),
            annotation(migration, "avocet.dev/fired-at"),
        ) && fired < due
        {
            violations.push(format!("T-1: {name} fired at {fired}, before its slot {due}"));
        }
    }
    let mut fired = BTreeSet::new();
    // Slots fired while the schedule's migration ran: each starts (and is Fired) later, or
    // is still waiting; either way it is accounted once.
    let mut buffered = BTreeSet::new();
    let mut accounted = 0u64;
    let mut last = None;
    for event in events {
        let message = event["message"].as_str().unwrap_or_default();
        match event["reason"].as_str().unwrap_or_default() {
            "Buffered" if message.starts_with(&format!("{policy_type} slot ")) => {
                let Some(slot) = between(message, &format!("{policy_type} slot "), " fired while")
                else {
                    violations.push(format!("unreadable Buffered event: {message}"));
                    continue;
                };
                if !buffered.insert(slot) {
                    violations.push(format!("EO-1: slot {slot} buffered twice: {message}"));
                }
                // Events come in commit order: a buffered slot fires later, never before.
                if fired.contains(&slot) {
                    violations
                        .push(format!("EO-1: slot {slot} fired, then buffered again: {message}"));
                }
                accounted += 1;
                last = last.max(Some(slot));
            }
            "Fired" if message.contains(&format!(" for the {policy_type} slot ")) => {
                let Some(slot) = between(message, &format!("{policy_type} slot "), " (") else {
                    violations.push(format!("unreadable Fired event: {message}"));
                    continue;
                };
                if message.contains("(-") {
                    violations.push(format!("T-1: fired early: {message}"));
                }
                if !fired.insert(slot) {
                    violations.push(format!("EO-1: slot {slot} fired twice: {message}"));
                }
                if !buffered.contains(&slot) {
                    accounted += 1;
                }
                last = last.max(Some(slot));
            }
            "Coalesced" if message.split(' ').take(3).any(|word| word == policy_type) => {
                let count = message.split(' ').next().and_then(|n| n.parse::<u64>().ok());
                let to = between(message, " to ", " coalesced");
                match (count, to) {
                    (Some(count), Some(to)) => {
                        accounted += count;
                        last = last.max(Some(to));
                    }
                    _ => violations.push(format!("unreadable Coalesced event: {message}")),
                }
            }
            _ => {}
        }
    }
    // A schedule holds at most one buffered slot at a time, and it starts (a Fired event)
    // when the migration ahead of it ends: more than one that never started were lost.
    let waiting: Vec<_> = buffered.difference(&fired).collect();
    if waiting.len() > 1 {
        violations.push(format!(
            "EO-2: {policy_type}: {} buffered slots never started ({})",
            waiting.len(),
            waiting.iter().map(|slot| slot.to_rfc3339()).collect::<Vec<_>>().join(", ")
        ));
    }
    let first = match (fired.first(), buffered.first()) {
        (Some(a), Some(b)) => Some(*a.min(b)),
        (a, b) => a.or(b).copied(),
    };
    let (Some(first), Some(last)) = (first, last) else {
        if accounted > 0 {
            violations.push(format!("EO-2: {policy_type} slots were coalesced, none fired"));
        }
        return (None, violations);
    };
    let span = (last - first).num_seconds() / step.num_seconds().max(1);
    let expected = u64::try_from(span).unwrap_or(0) + 1;
    if accounted != expected {
        violations.push(format!(
            "EO-2: {policy_type}: {accounted} slots fired or coalesced for the {expected} slots {first}..{last}"
        ));
    }
    let accounting = Accounting {
        policy_type: policy_type.to_owned(),
        fired: fired.len(),
        accounted,
        expected,
        first,
        last,
    };
    (Some(accounting), violations)
}

/// Returns the latest slot an event accounts for: the slot a `Fired` or `Buffered` event
/// fired, or the last slot a `Coalesced` event folded into another (`None` for other events).
/// Each was due, by the leader's clock, when the event was committed.
pub fn accounted_slot(event: &Value) -> Option<DateTime<Utc>> {
    let message = event["message"].as_str()?;
    match event["reason"].as_str()? {
        "Fired" => between(message, " slot ", " ("),
        "Buffered" => between(message, " slot ", " fired while"),
        "Coalesced" => between(message, " to ", " coalesced"),
        _ => None,
    }
}

/// T-1 judged by an observer's clock: `seen` pairs each event with the true time (on the
/// group's clock, as the observer's clock gives it) at which the observer first saw it. An
/// event that accounts for a slot ([`accounted_slot`]) later than that time, by more than
/// `tolerance` (the observer's measurement error), treated it as due early; returns one
/// violation for each.
pub fn early(seen: &[(Value, DateTime<Utc>)], tolerance: TimeDelta) -> Vec<String> {
    seen.iter()
        .filter_map(|(event, at)| {
            let slot = accounted_slot(event)?;
            (slot > *at + tolerance).then(|| {
                format!(
                    "T-1: slot {slot} fired {:.0} s before it was due (first seen at {at}): {}",
                    (slot - *at).num_milliseconds() as f64 / 1e3,
                    event["message"].as_str().unwrap_or_default()
                )
            })
        })
        .collect()
}

/// Reads the number after the last `token ` in `message` (the worker's name comes earlier).
fn token_of(message: &str) -> Option<u64> {
    let rest = &message[message.rfind("token ")? + "token ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// W-1 from the events (`items` of `get events -o json`, in commit order): for each migration,
/// a `Completed` event must name the token of its one current lease (granted by a `Leased`
/// event, not yet ended by `LeaseExpired`, `LeaseRevoked` or by the migration ending), and no
/// lease may be granted while another is current. Returns one violation for each breach. When the group
/// has trimmed its oldest events (the first kept is not `seq` 1), a migration whose `Leased`
/// event was trimmed is judged only from its next grant on.
pub fn stale_leases(events: &[Value]) -> Vec<String> {
    let mut current: std::collections::BTreeMap<(String, String), Option<u64>> =
        std::collections::BTreeMap::new();
    let whole = events.first().is_none_or(|event| event["seq"].as_u64() == Some(1));
    let mut violations = Vec::new();
    for event in events {
        let message = event["message"].as_str().unwrap_or_default();
        let object = &event["involvedObject"];
        let namespace = object["namespace"].as_str().unwrap_or_default().to_owned();
        let mut name = object["name"].as_str().unwrap_or_default().to_owned();
        let reason = event["reason"].as_str().unwrap_or_default();
        if object["kind"].as_str() == Some("MigrationSchedule") {
            // A scheduled migration's end is told on its schedule: `Scheduled migration (NAME) …`.
            let ended = matches!(reason, "Successful" | "Failed");
            let named =
                message.strip_prefix("Scheduled migration (").and_then(|r| r.split_once(')'));
            match named {
                Some((migration, _)) if ended => name = migration.to_owned(),
                _ => continue,
            }
        }
        let key = (namespace.clone(), name.clone());
        if !whole && reason != "Leased" && !current.contains_key(&key) {
            continue;
        }
        let held = current.entry(key).or_default();
        let what = format!("migration {namespace}/{name}");
        match (reason, token_of(message)) {
            ("Leased", Some(token)) => {
                if let Some(live) = held {
                    violations.push(format!(
                        "W-1: {what} leased with token {token} while token {live} was current"
                    ));
                }
                *held = Some(token);
            }
            ("LeaseExpired" | "LeaseRevoked", Some(token)) => {
                if *held != Some(token) {
                    violations.push(format!(
                        "W-1: {what}: token {token} expired but {held:?} was current: {message}"
                    ));
                }
                *held = None;
            }
            ("Completed", Some(token)) => {
                if *held != Some(token) {
                    violations.push(format!(
                        "W-1: {what} completed by token {token}, but the current lease was {held:?}: {message}"
                    ));
                }
                *held = None;
            }
            ("Leased" | "LeaseExpired" | "LeaseRevoked" | "Completed", None) => {
                violations.push(format!("unreadable {reason} event: {message}"));
            }
            ("Successful" | "Failed", _) => *held = None,
            _ => {}
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fired(slot: &str) -> Value {
        json!({"reason": "Fired", "message": format!("Scheduled migration (x-{slot}) created for the Interval slot {slot} (0.004 s after it was due)")})
    }

    #[test]
    fn a_slot_fired_twice_or_missing_is_a_violation_and_a_clean_run_is_not() {
        let step = TimeDelta::hours(2);
        let clean = [fired("2026-03-08T00:00:00Z"), fired("2026-03-08T02:00:00Z")];
        let judged = judge(&clean, &[], "Interval", step).unwrap().unwrap();
        assert_eq!((judged.accounted, judged.expected), (2, 2));
        assert_eq!(judge(&clean, &[], "Daily", TimeDelta::days(1)), Ok(None));
        let twice = [fired("2026-03-08T00:00:00Z"), fired("2026-03-08T00:00:00Z")];
        let errors = judge(&twice, &[], "Interval", step).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("EO-1")), "{errors:?}");
        let gap = [fired("2026-03-08T00:00:00Z"), fired("2026-03-08T04:00:00Z")];
        let errors = judge(&gap, &[], "Interval", step).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("EO-2")), "{errors:?}");
        let early = [
            json!({"reason": "Fired", "message": "Scheduled migration (x) created for the Interval slot 2026-03-08T00:00:00Z (-0.500 s after it was due)"}),
        ];
        let errors = judge(&early, &[], "Interval", step).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("T-1")), "{errors:?}");
    }

    #[test]
    fn an_event_seen_before_its_slot_was_due_fired_early() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let seen = [
            (fired("2026-03-08T02:00:00Z"), at("2026-03-08T02:00:01Z")),
            (buffered("2026-03-08T04:00:00Z"), at("2026-03-08T04:03:00Z")),
            (json!({"reason": "Missed", "message": "whatever"}), at("2026-03-01T00:00:00Z")),
        ];
        assert!(early(&seen, TimeDelta::minutes(3)).is_empty());
        let fast = [(fired("2026-03-20T14:00:00Z"), at("2026-03-08T02:00:00Z"))];
        let errors = early(&fast, TimeDelta::minutes(3));
        assert!(errors.len() == 1 && errors[0].starts_with("T-1"), "{errors:?}");
        let barely = [(buffered("2026-03-08T04:00:00Z"), at("2026-03-08T03:56:00Z"))];
        assert_eq!(early(&barely, TimeDelta::minutes(3)).len(), 1);
        assert_eq!(accounted_slot(&fast[0].0), Some(at("2026-03-20T14:00:00Z")));
        let coalesced = json!({"reason": "Coalesced", "message": "3 Interval slot(s) from 2026-03-20T10:00:00Z to 2026-03-20T14:00:00Z coalesced into the Interval slot 2026-03-08T02:00:00Z waiting to start"});
        assert_eq!(accounted_slot(&coalesced), Some(at("2026-03-20T14:00:00Z")));
        assert_eq!(early(&[(coalesced, at("2026-03-08T02:00:00Z"))], TimeDelta::zero()).len(), 1);
    }

    fn lease_event(reason: &str, name: &str, message: &str) -> Value {
        json!({"reason": reason, "message": message,
            "involvedObject": {"kind": "Migration", "namespace": "apps", "name": name}})
    }

    #[test]
    fn a_completion_by_a_lease_that_is_not_current_breaks_w_1() {
        let leased = |token: u64| {
            lease_event(
                "Leased",
                "m1",
                &format!(
                    "worker w leased the migration with token {token} until 2026-03-08T00:00:00.000Z (attempt 1)"
                ),
            )
        };
        let expired = |token: u64| {
            lease_event(
                "LeaseExpired",
                "m1",
                &format!(
                    "worker w stopped renewing its lease (token {token}); queued again (attempt 1 of 3 used)"
                ),
            )
        };
        let completed = |token: u64| {
            lease_event(
                "Completed",
                "m1",
                &format!("worker w reported Successful with token {token}"),
            )
        };
        let clean = [leased(7), expired(7), leased(12), completed(12)];
        assert!(stale_leases(&clean).is_empty(), "{:?}", stale_leases(&clean));
        let stale = [leased(7), expired(7), leased(12), completed(7)];
        let errors = stale_leases(&stale);
        assert!(errors.len() == 1 && errors[0].starts_with("W-1"), "{errors:?}");
        let after_end = [
            leased(7),
            json!({"reason": "Failed", "message": "Scheduled migration (m1) status Failed: Migration cancelled",
                "involvedObject": {"kind": "MigrationSchedule", "namespace": "apps", "name": "app"}}),
            completed(7),
        ];
        assert_eq!(stale_leases(&after_end).len(), 1, "completed after the migration ended");
        let twice = [leased(7), leased(9)];
        assert_eq!(stale_leases(&twice).len(), 1, "two leases at once");
        let revoked = lease_event(
            "LeaseRevoked",
            "m1",
            "the migration was deleted while worker w held its lease (token 7)",
        );
        assert!(stale_leases(&[leased(7), revoked, leased(9), completed(9)]).is_empty());
        // Its grant trimmed from the group's events: nothing to judge it by.
        let mut trimmed = completed(7);
        trimmed["seq"] = json!(40);
        assert!(stale_leases(&[trimmed.clone()]).is_empty());
        trimmed["seq"] = json!(1);
        assert_eq!(stale_leases(&[trimmed]).len(), 1, "nothing trimmed: no grant at all");
    }

    fn buffered(slot: &str) -> Value {
        json!({"reason": "Buffered", "message": format!("Interval slot {slot} fired while migration (x) runs; it starts when that one ends")})
    }

    #[test]
    fn a_buffered_slot_is_accounted_once_whether_or_not_it_started() {
        let step = TimeDelta::hours(2);
        let coalesced = json!({"reason": "Coalesced", "message": "1 Interval slot(s) from 2026-03-08T04:00:00Z to 2026-03-08T04:00:00Z coalesced into the Interval slot 2026-03-08T02:00:00Z waiting to start"});
        // Still waiting behind the first migration.
        let waiting =
            [fired("2026-03-08T00:00:00Z"), buffered("2026-03-08T02:00:00Z"), coalesced.clone()];
        let judged = judge(&waiting, &[], "Interval", step).unwrap().unwrap();
        assert_eq!((judged.accounted, judged.expected, judged.fired), (3, 3, 1));
        // Started later: its Fired event is the same slot, not another.
        let started = [
            fired("2026-03-08T00:00:00Z"),
            buffered("2026-03-08T02:00:00Z"),
            coalesced,
            fired("2026-03-08T02:00:00Z"),
        ];
        let judged = judge(&started, &[], "Interval", step).unwrap().unwrap();
        assert_eq!((judged.accounted, judged.expected, judged.fired), (3, 3, 2));
        // Without the buffered slot, one is missing.
        let lost = [fired("2026-03-08T00:00:00Z"), fired("2026-03-08T04:00:00Z")];
        assert!(judge(&lost, &[], "Interval", step).is_err());
        // Two buffered slots that never started: one was lost.
        let lost = [
            fired("2026-03-08T00:00:00Z"),
            buffered("2026-03-08T02:00:00Z"),
            buffered("2026-03-08T04:00:00Z"),
        ];
        let errors = judge(&lost, &[], "Interval", step).unwrap_err();
        assert!(errors.iter().any(|e| e.contains("never started")), "{errors:?}");
        // Fired, then buffered again, is a slot fired twice.
        let again = [fired("2026-03-08T00:00:00Z"), buffered("2026-03-08T00:00:00Z")];
        let errors = judge(&again, &[], "Interval", step).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("EO-1")), "{errors:?}");
        // Buffered twice is a slot fired twice.
        let twice = [
            fired("2026-03-08T00:00:00Z"),
            buffered("2026-03-08T02:00:00Z"),
            buffered("2026-03-08T02:00:00Z"),
        ];
        let errors = judge(&twice, &[], "Interval", step).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("EO-1")), "{errors:?}");
    }
}
