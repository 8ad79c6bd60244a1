//! The named invariants (DESIGN.md §3), one predicate each, shared by the seeded simulation,
//! the chaos tests and unit tests.
//!
//! - `EO-1` a due slot fires at most once: no slot is fired or coalesced twice.
//! - `EO-2` every due slot is fired or coalesced once a quorum is healthy.
//! - `T-1` nothing fires before its due instant.
//! - `T-2` fired slots are monotonic per schedule and policy type.
//! - `W-1` a command with a stale fencing token changes nothing.
//!
//! A [`FireLedger`] watches the answers to committed `Fire` commands, in commit order, as an
//! outside observer would, and accounts for every slot it learns was fired or coalesced.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use avocet_types::policy::PolicyType;

use crate::catalog::{Catalog, CoalescedSlots, MigrationEntry};
use crate::command::{Disposition, Fire, Rejection, Response};
use crate::timing::Cadence;

/// Says which invariant broke and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Names the invariant (`EO-1`…).
    pub invariant: &'static str,
    /// Explains.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// Says how a slot was accounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounted {
    /// It fired (a migration started or was buffered for it).
    Fired,
    /// It was coalesced into another fire.
    Coalesced,
}

/// Records every slot fired or coalesced, per (schedule uid, policy type).
#[derive(Debug, Default, Clone)]
pub struct FireLedger {
    slots: HashMap<(String, PolicyType), BTreeMap<DateTime<Utc>, Accounted>>,
    last_fired: HashMap<(String, PolicyType), DateTime<Utc>>,
    /// Counts fires accepted.
    pub fired: u64,
    /// Counts slots coalesced.
    pub coalesced: u64,
    /// Counts duplicate fires refused by `apply`.
    pub duplicates_refused: u64,
}

impl FireLedger {
    /// Records the answer to a committed fire. `cadence` is the lane's cadence when it was
    /// applied (to expand coalesced ranges); `true_now` is the real time at commit, when known,
    /// and `skew_allowed` how far ahead of it the proposer's clock may legitimately have been.
    pub fn record(
        &mut self,
        fire: &Fire,
        response: &Response,
        cadence: Option<&Cadence>,
        true_now: Option<DateTime<Utc>>,
        skew_allowed: TimeDelta,
    ) -> Result<(), Violation> {
        let lane = (fire.uid.clone(), fire.policy_type);
        let (slot, coalesced, disposition) = match response {
            Response::Fired { slot, coalesced, disposition } => (*slot, *coalesced, disposition),
            Response::Duplicate { .. } => {
                self.duplicates_refused += 1;
                return Ok(());
            }
            _ => return Ok(()),
        };
        // T-1: by the proposer's clock, and by real time within the allowed skew.
        if slot > fire.at {
            return Err(violation(
                "T-1",
                format!("{} {} slot {slot} fired at {}", fire.schedule, fire.policy_type, fire.at),
            ));
        }
        if let Some(true_now) = true_now
            && slot > true_now + skew_allowed
        {
            return Err(violation(
                "T-1",
                format!(
                    "{} {} slot {slot} fired at real time {true_now}",
                    fire.schedule, fire.policy_type
                ),
            ));
        }
        // T-2: fired slots increase per lane.
        if let Some(previous) = self.last_fired.get(&lane)
            && slot <= *previous
        {
            return Err(violation(
                "T-2",
                format!(
                    "{} {} slot {slot} fired after slot {previous}",
                    fire.schedule, fire.policy_type
                ),
            ));
        }
        self.last_fired.insert(lane.clone(), slot);
        let how = match disposition {
            Disposition::Absorbed { .. } => Accounted::Coalesced,
            _ => Accounted::Fired,
        };
        self.account(&lane, &fire.schedule.to_string(), slot, how)?;
        if how == Accounted::Fired {
            self.fired += 1;
        } else {
            self.coalesced += 1;
        }
        if let Some(range) = coalesced {
            let expanded = expand(cadence, &range)?;
            for missed in expanded {
                self.account(&lane, &fire.schedule.to_string(), missed, Accounted::Coalesced)?;
                self.coalesced += 1;
            }
        }
        Ok(())
    }

    fn account(
        &mut self,
        lane: &(String, PolicyType),
        schedule: &str,
        slot: DateTime<Utc>,
        how: Accounted,
    ) -> Result<(), Violation> {
        let slots = self.slots.entry(lane.clone()).or_default();
        if let Some(before) = slots.insert(slot, how) {
            return Err(violation(
                "EO-1",
                format!(
                    "{schedule} {} slot {slot} accounted twice ({before:?}, then {how:?})",
                    lane.1
                ),
            ));
        }
        Ok(())
    }

    /// Returns whether the slot was fired or coalesced.
    pub fn accounted(
        &self,
        uid: &str,
        policy_type: PolicyType,
        slot: DateTime<Utc>,
    ) -> Option<Accounted> {
        self.slots.get(&(uid.to_owned(), policy_type)).and_then(|slots| slots.get(&slot)).copied()
    }

    /// Checks EO-2 on a healthy group: every owed slot of every active lane at or before
    /// `until` is accounted for.
    pub fn check_owed(&self, catalog: &Catalog, until: DateTime<Utc>) -> Result<(), Violation> {
        for (key, schedule) in catalog.schedules() {
            if schedule.suspended() {
                continue;
            }
            for (&policy_type, lane) in schedule.lanes.iter().filter(|(_, lane)| lane.active) {
                let Some(cadence) = catalog.cadence(schedule, policy_type) else { continue };
                for slot in cadence.due_slots(lane.owed_from) {
                    if slot > until {
                        break;
                    }
                    if self.accounted(schedule.uid(), policy_type, slot).is_none() {
                        return Err(violation(
                            "EO-2",
                            format!(
                                "{key} {policy_type} slot {slot} (owed since {}) never fired by {until}",
                                lane.owed_from
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Expands a coalesced range into its slots.
fn expand(
    cadence: Option<&Cadence>,
    range: &CoalescedSlots,
) -> Result<BTreeSet<DateTime<Utc>>, Violation> {
    let Some(cadence) = cadence else {
        return Err(violation(
            "EO-2",
            format!("coalesced {} slots without a cadence to expand them", range.count),
        ));
    };
    let slots: BTreeSet<DateTime<Utc>> =
        cadence.due_slots(range.first).take_while(|slot| *slot <= range.last).collect();
    if slots.len() as u64 != range.count {
        return Err(violation(
            "EO-2",
            format!(
                "coalesced range {}..{} claims {} slots, the cadence has {}",
                range.first,
                range.last,
                range.count,
                slots.len()
            ),
        ));
    }
    Ok(slots)
}

/// Checks W-1 for one applied command: a stale-token refusal left the migration unchanged.
pub fn check_stale_token(
    before: Option<&MigrationEntry>,
    after: Option<&MigrationEntry>,
    response: &Response,
) -> Result<(), Violation> {
    if let Response::Rejected(Rejection::StaleToken { migration, token, .. }) = response
        && before != after
    {
        return Err(violation("W-1", format!("stale token {token} changed Migration {migration}")));
    }
    Ok(())
}
