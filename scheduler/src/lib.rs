//! The sans-IO scheduling core: when each policy is due, computed, never sampled.
//!
//! Stork samples the clock every ten seconds and fires a daily policy only inside a one-hour
//! window after its time, so runs vanish during outages and interval schedules drift. Avocet
//! instead computes every due slot as a pure function of the policy, its time zone and an
//! instant ([`timing`]); the replicated scheduler records the last slot it fired per schedule and
//! policy type, so a new leader can recompute exactly which slots are still owed.
//!
//! Everything here is synchronous and deterministic: time comes in as a parameter (the [`clock`]
//! module is the one place that reads the system clock, for the shells to use), and nothing does
//! IO or needs an async runtime.
//!
//! On top of the timing functions sit the replicated scheduler's pieces: the [`catalog`] (every
//! object the group keeps, and the due index), the [`command`]s it replicates, the
//! deterministic [`apply`] that makes each fire happen exactly once, the leader's [`planner`]
//! (from committed state and a clock reading, the commands now due) and the named
//! [`invariants`] that the simulation and chaos tests check.
//!
//! The trade-off in [`timing`]: wall-clock policies resolve local times that do not exist or
//! occur twice (DST) with one fixed rule (gap → same offset as before the gap, so 02:30 becomes
//! 03:30; overlap → first occurrence), chosen so every calendar day yields exactly one slot and
//! no day is skipped, at the cost of a slot that sometimes shows a different wall time.

pub mod apply;
pub mod catalog;
pub mod clock;
pub mod command;
pub mod invariants;
pub mod oracle;
pub mod planner;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod timing;

pub use catalog::{Catalog, ObjectKey, Settings};
pub use clock::{Clock, ManualClock, OffsetClock, ScaledClock, SystemClock};
pub use command::{CatalogObject, Command, Fire, Rejection, Response};
pub use timing::{Cadence, DueSlots};
