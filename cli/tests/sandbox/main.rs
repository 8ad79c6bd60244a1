//! `avocet sandbox` as a developer runs it: a real process, driven by the real `kubectl`.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

mod harness;
mod t01_kubectl;
mod t02_process;
mod t03_generators;
mod t04_activate;
mod t05_generate;
