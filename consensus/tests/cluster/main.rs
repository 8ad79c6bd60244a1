//! In-process groups of real nodes on loopback (real tonic, real sled), with per-link faults.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

mod harness;
mod t01_replication;
mod t02_faults;
mod t03_restart_and_snapshots;
mod t04_refusals;
