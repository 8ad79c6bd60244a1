//! The command lines: `avocetctl`, the storkctl-like client, and `avocet`, the service binary.
//!
//! `avocetctl` follows storkctl where storkctl has a verb (the same names, flags and table
//! headers, because users' scripts parse them) and adds Avocet's own verbs beside them. Today it
//! works offline on files: `validate` checks Stork YAML with the same schemas and rules the
//! service enforces, and `schedule preview` lists the due slots a policy will fire, computed by
//! the scheduler's own timing core, so what a user previews is what the group will do.
//!
//! Binaries stay thin (`src/bin/*.rs` parse nothing themselves); every command is a function
//! that writes to the given output streams and returns an exit code, so tests call it directly.
//! Exit codes: 0 success, 1 bad input or failed validation, 2 bad usage (clap).

pub mod ctl;
mod demo;
mod output;
pub mod service;
