//! Timing-core tests: the reviewed case table, property tests, and every zone against a reference.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

mod reference;
mod t01_case_table;
mod t02_properties;
mod t03_every_zone;
