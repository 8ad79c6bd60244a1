//! The leader's planner: from committed state and one clock reading, the commands that are due.
//!
//! The planner keeps no memory of its own. A new leader calls it with the catalog it inherited
//! (every committed entry applied) and its clock, and gets exactly the fires still owed: a slot
//! the old leader committed sits at or below its lane's mark and is never proposed again; a
//! slot it never committed is proposed now, late. Proposing the same command twice is harmless,
//! because `apply` answers a second fire of a slot with `Duplicate`.
//!
//! Each tick proposes, per due lane, only the *latest* owed slot at or before `now`; `apply`
//! records the earlier owed ones as coalesced into it. It also proposes `ExpireLease` for
//! lapsed leases and `Timeout` for migrations past their stage deadline.

use chrono::{DateTime, TimeDelta, Utc};

use avocet_types::PolicyRule;

use crate::catalog::Catalog;
use crate::command::{Command, Fire};
use crate::timing::Cadence;

/// Bounds the commands one tick proposes, so that a tick stays short (about 5 ms on our machines)
/// even when tens of thousands of schedules share a slot; the rest go in the next tick, earliest
/// first.
pub const FIRES_PER_TICK: usize = 1024;

/// Returns the commands due at `now` — fires first, then lapsed leases, then stage deadlines —
/// at most `max` of them in all (earliest due first), in a deterministic order. A caller that
/// gets `max` commands back should plan again at once.
pub fn plan(catalog: &Catalog, now: DateTime<Utc>, max: usize) -> Vec<Command> {
    let mut commands = Vec::new();
    for (_, key, policy_type) in catalog.due_lanes(now) {
        if commands.len() >= max {
            return commands;
        }
        let Some(schedule) = catalog.schedule(key) else { continue };
        let Some(cadence) = catalog.cadence(schedule, *policy_type) else { continue };
        let Some(next) = catalog.next_owed(schedule, *policy_type) else { continue };
        let Some(slot) = latest_slot(&cadence, next, now) else { continue };
        commands.push(Command::Fire(Fire {
            schedule: key.clone(),
            uid: schedule.uid().to_owned(),
            policy_type: *policy_type,
            slot,
            at: now,
        }));
    }
    let mut lapsed = std::collections::BTreeSet::new();
    for key in catalog.leases_lapsed_by(now) {
        if commands.len() >= max {
            return commands;
        }
        if let Some(lease) = catalog.migration(key).and_then(|entry| entry.lease.as_ref()) {
            commands.push(Command::ExpireLease {
                migration: key.clone(),
                token: lease.token,
                at: now,
            });
            lapsed.insert(key);
        }
    }
    let deadline = catalog.settings().stage_deadline();
    if let Some(cutoff) = now.checked_sub_signed(deadline) {
        for key in catalog.stages_begun_by(cutoff) {
            if commands.len() >= max {
                return commands;
            }
            if lapsed.contains(key) {
                continue;
            }
            if let Some(entry) = catalog.migration(key) {
                commands.push(Command::Timeout {
                    migration: key.clone(),
                    stage: entry.stage(),
                    at: now,
                });
            }
        }
    }
    commands
}

/// Returns the latest slot of `cadence` in `[first, now]`, given that `first` is a slot.
pub fn latest_slot(
    cadence: &Cadence,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if first > now {
        return None;
    }
    if let PolicyRule::Interval { minutes } = cadence.rule() {
        let step = TimeDelta::minutes(i64::from(minutes)).num_milliseconds();
        let steps = (now - first).num_milliseconds() / step;
        return Some(first + TimeDelta::milliseconds(steps * step));
    }
    let mut latest = first;
    // Wall-clock rules: at most one slot a day, so even a year's outage is a short walk; jump
    // close to `now` first when the gap is long.
    let mut from = first;
    if now - first > TimeDelta::days(40)
        && let Some(near) = cadence.first_at_or_after(now - TimeDelta::days(32))
        && near <= now
    {
        from = near;
    }
    for slot in cadence.due_slots(from) {
        if slot > now {
            break;
        }
        latest = slot;
    }
    Some(latest)
}

/// Returns how long the leader may sleep before the next tick has work: until the next owed
/// slot, the next lease expiry or stage deadline, capped at `max`.
pub fn next_wake(catalog: &Catalog, now: DateTime<Utc>, max: TimeDelta) -> TimeDelta {
    let deadline = catalog.settings().stage_deadline();
    let mut wake = now.checked_add_signed(max).unwrap_or(now);
    if let Some(next) = catalog.next_due() {
        wake = wake.min(next);
    }
    let (stage, lease) = catalog.next_migration_deadlines();
    if let Some(due) = stage.and_then(|stage| stage.checked_add_signed(deadline)) {
        wake = wake.min(due);
    }
    if let Some(lease) = lease {
        wake = wake.min(lease);
    }
    (wake - now).max(TimeDelta::zero())
}
