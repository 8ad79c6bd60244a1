//! Bugs planted on purpose, to prove the chaos tests' oracle catches what it claims to (an
//! oracle that never fires proves nothing). Compiled only with the `planted-bugs` feature,
//! which only test builds enable (the cli's dev-dependencies); off even then until a node is
//! started with `AVOCET_PLANTED_BUG`. Release builds of `avocet` never contain this module.
//!
//! `double-fire`: `apply` loses its duplicate check (a `Fire` at or below a lane's mark fires
//! again), and a node that gains leadership re-proposes the last slot of every lane, as a new
//! leader that trusted a stale view would. Every failover then fires a slot twice, which EO-1
//! must catch.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::command::{Command, Fire};

static DOUBLE_FIRE: AtomicBool = AtomicBool::new(false);

/// Switches on the bug named `name`.
pub fn switch_on(name: &str) -> Result<(), String> {
    match name {
        "double-fire" => {
            DOUBLE_FIRE.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => Err(format!("AVOCET_PLANTED_BUG {other:?} is not a planted bug (double-fire)")),
    }
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
