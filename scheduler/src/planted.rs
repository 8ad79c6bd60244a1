//! Bugs planted on purpose, to prove the chaos tests' oracle catches what it claims to (an
//! oracle that never fires proves nothing). Compiled only with the `planted-bugs` feature,
//! which only test builds enable (the cli's dev-dependencies); off even then until a node is
//! started with `AVOCET_PLANTED_BUG`. Release builds of `avocet` never contain this module.
//!
//! `double-fire`: `apply` loses its duplicate check (a `Fire` at or below a lane's mark fires
//! again), and a node that gains leadership re-proposes the last slot of every lane, as a new
//! leader that trusted a stale view would. Every failover then fires a slot twice, which EO-1
//! must catch.
//!
//! `trust-own-clock`: the server's group clock answers the node's own reading instead of the
//! time a majority of the voters' clocks agree on, so a leader whose clock runs fast fires
//! slots early, which the tests' real-time T-1 check must catch.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::command::{Command, Fire};

static DOUBLE_FIRE: AtomicBool = AtomicBool::new(false);
static TRUST_OWN_CLOCK: AtomicBool = AtomicBool::new(false);

/// Switches on the bug named `name`.
pub fn switch_on(name: &str) -> Result<(), String> {
    let switch = match name {
        "double-fire" => &DOUBLE_FIRE,
        "trust-own-clock" => &TRUST_OWN_CLOCK,
        other => {
            return Err(format!(
                "AVOCET_PLANTED_BUG {other:?} is not a planted bug (double-fire, trust-own-clock)"
            ));
        }
    };
    switch.store(true, Ordering::Relaxed);
    Ok(())
}

/// Says whether `trust-own-clock` is on.
pub fn trust_own_clock() -> bool {
    TRUST_OWN_CLOCK.load(Ordering::Relaxed)
}

/// Says whether `double-fire` is on.
pub fn double_fire() -> bool {
    DOUBLE_FIRE.load(Ordering::Relaxed)
}

/// The re-fires a new leader proposes under `double-fire`: the last slot of every lane.
pub fn refires(catalog: &Catalog, now: DateTime<Utc>) -> Vec<Command> {
    if !double_fire() {
        return Vec::new();
    }
    let mut commands = Vec::new();
    for (key, entry) in catalog.schedules() {
        for (policy_type, lane) in &entry.lanes {
            if let Some(mark) = lane.mark {
                commands.push(Command::Fire(Fire {
                    schedule: key.clone(),
                    uid: entry.uid().to_owned(),
                    policy_type: *policy_type,
                    slot: mark,
                    at: now,
                }));
            }
        }
    }
    commands
}
