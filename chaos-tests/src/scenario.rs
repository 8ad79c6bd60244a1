//! The workload the real-process tests and the `chaos` soak share: a group on a clock running
//! an hour a second with [`BUSY_SCHEDULE`] applied (an interval slot every 2 real seconds and a
//! daily one), no worker (so a fired migration stays in flight and later slots coalesce behind
//! it), and the judgement of its slots through the public API only.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::Value;

use crate::harness::{BUSY_SCHEDULE, Cluster};
use crate::oracle::{self, Accounting};

/// Runs the group's clock this many times as fast as real time.
pub const SCALE: i32 = 3600;

/// The policy types of [`BUSY_SCHEDULE`] and their steps.
pub const POLICY_TYPES: [(&str, TimeDelta); 2] =
    [("Interval", TimeDelta::hours(2)), ("Daily", TimeDelta::days(1))];

/// Reads the real time: the scaled clock starts from it, and faults are aimed at slots by it.
#[allow(clippy::disallowed_methods)] // The chaos tests aim faults at real instants.
pub fn real_now() -> DateTime<Utc> {
    Utc::now()
}

/// The flags of a fast group whose clock runs [`SCALE`] times as fast from the whole second
/// `epoch`: 50 ms heartbeats, 0.3–0.6 s election timeouts, stages that never time out.
pub fn fast_flags(epoch: DateTime<Utc>) -> Vec<String> {
    let epoch = epoch.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let flags = [
        "--clock-scale",
        "3600",
        "--clock-epoch",
        &epoch,
        "--stage-deadline",
        "48h",
        "--heartbeat-ms",
        "50",
        "--election-timeout-ms",
        "300-600",
    ];
    flags.map(str::to_owned).to_vec()
}

/// The group's true time at real instant `real`, for a group on [`fast_flags`] from `epoch`.
pub fn group_time(epoch: DateTime<Utc>, real: DateTime<Utc>) -> DateTime<Utc> {
    epoch + (real - epoch) * SCALE
}

/// The epoch for [`fast_flags`]: now, to the whole second.
pub fn epoch_now() -> DateTime<Utc> {
    let now = real_now();
    now.with_nanosecond(0).unwrap_or(now)
}

/// Applies [`BUSY_SCHEDULE`] through node `leader` and returns the real instant of its first
/// interval slot (its creation), from which its slots come every 2 real seconds.
pub fn schedule(
    cluster: &Cluster,
    leader: u64,
    epoch: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let file = cluster.dir().join("objects.yaml");
    std::fs::write(&file, BUSY_SCHEDULE).map_err(|e| e.to_string())?;
    let path = file.to_string_lossy().into_owned();
    let (ok, out, err) = cluster.ctl(leader, &["apply", "-f", &path]);
    if !ok {
        return Err(format!("apply: {out}{err}"));
    }
    let schedule = cluster
        .ctl_json(leader, &["get", "migrationschedule", "app", "-n", "apps"])
        .ok_or("the schedule cannot be read back")?;
    let created = schedule["metadata"]["creationTimestamp"].as_str().unwrap_or_default();
    let created = DateTime::parse_from_rfc3339(created).map_err(|e| e.to_string())?.to_utc();
    // The group reads epoch + (real - epoch) × SCALE, so a group instant t is real epoch +
    // (t - epoch) / SCALE.
    Ok(epoch + (created - epoch) / SCALE)
}

/// One policy type's accounting (when a slot of it fired or was coalesced) and violations.
pub type Tally = (Option<Accounting>, Vec<String>);

/// Suspends the schedule and tallies every policy type through the public API: for each,
/// its accounting (when a slot of it fired or was coalesced) and its violations; with the
/// events read, to explain them.
pub fn tally(cluster: &Cluster) -> Result<(Vec<Tally>, Vec<Value>), String> {
    let leader = cluster.leader(Duration::from_secs(30))?;
    let (ok, out, err) =
        cluster.ctl(leader, &["suspend", "migrationschedule", "app", "-n", "apps"]);
    if !ok {
        return Err(format!("suspend: {out}{err}"));
    }
    let read = |args: &[&str]| {
        cluster.ctl_json(leader, args).ok_or_else(|| format!("cannot read {args:?}"))
    };
    let items = |list: Value| list["items"].as_array().cloned().unwrap_or_default();
    let events = items(read(&["get", "events", "-n", "apps"])?);
    let migrations = items(read(&["get", "migration", "-n", "apps"])?);
    let tallied = POLICY_TYPES
        .iter()
        .map(|(policy_type, step)| oracle::tally(&events, &migrations, policy_type, *step))
        .collect();
    Ok((tallied, events))
}

/// Suspends the schedule, then judges every policy type through the public API: the
/// accounting of each that fired, or every violation (with the events that explain them).
pub fn judge(cluster: &Cluster) -> Result<Vec<Accounting>, Vec<String>> {
    let (tallied, events) = tally(cluster).map_err(|e| vec![e])?;
    let mut accounted = Vec::new();
    let mut violations = Vec::new();
    for (accounting, found) in tallied {
        if found.is_empty() {
            accounted.extend(accounting);
        }
        violations.extend(found);
    }
    if violations.is_empty() {
        return Ok(accounted);
    }
    for event in &events {
        let reason = event["reason"].as_str().unwrap_or_default();
        if matches!(reason, "Fired" | "Coalesced" | "Missed" | "Buffered") {
            violations.push(format!(
                "  event {reason}: {}",
                event["message"].as_str().unwrap_or_default()
            ));
        }
    }
    Err(violations)
}

/// As [`judge`], and at least `slots` interval slots must have fallen due (else the test saw
/// too little to prove anything).
pub fn judge_at_least(cluster: &Cluster, slots: u64) -> Result<Vec<Accounting>, Vec<String>> {
    let accounted = judge(cluster)?;
    let interval = accounted.iter().find(|a| a.policy_type == "Interval");
    if interval.is_some_and(|a| a.expected >= slots) {
        Ok(accounted)
    } else {
        Err(vec![format!("fewer than {slots} interval slots fell due: {accounted:?}")])
    }
}
