//! `avocet serve` as an operator runs it: three real processes on loopback, driven and judged
//! only through `avocetctl`.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

mod group;
mod t01_failover;
mod t02_schedules;
mod t03_tls;
mod t04_verbs;
mod t05_pairs;
mod t06_controller;
mod t07_migrate;
mod t08_credentials;
mod t09_demo;
