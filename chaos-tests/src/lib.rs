//! Proof of the exactly-once promise: a seeded simulation of the scheduler group, a real-process
//! failover harness, and the oracle that judges both.
//!
//! [`sim`] is the simulation (TigerBeetle's VOPR and openraft's turmoil tests are the models):
//! it drives the real planner and `apply` through an abstract replicated log with one seed
//! deriving node count, clock skew, message loss, partitions, crashes and a workload, checking
//! the named invariants (EO-1, EO-2, T-1, T-2, W-1) after every committed entry; the `sim`
//! binary sweeps seeds. The trade-off: it abstracts Raft to "a batch commits or is lost with its
//! leader", which is what the scheduler depends on, so it runs thousands of simulated days a
//! minute but cannot find bugs in the consensus crate itself (its own tests and the crash test
//! do that). The real-process harness, which starts `avocet serve` processes on loopback, kills
//! and partitions them and judges outcomes only through the public API, comes with the chaos
//! issue.

pub mod sim;
