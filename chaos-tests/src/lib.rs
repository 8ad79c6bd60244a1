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
//! do that).
//!
//! [`harness`] starts real `avocet serve` processes on loopback and kills, pauses and restarts
//! them; [`oracle`] (the scheduler's, re-exported; `avocet demo` uses it too) judges what they
//! did only through the public API (`avocetctl`'s events and migrations), and [`watch`] notes
//! when the test's own clock first saw each event, so a leader whose clock runs fast cannot
//! hide an early fire behind its own readings. [`netns`] partitions nodes run in network
//! namespaces, [`proxy`] puts faults between a node and S3 or the destination, [`dataplane`]
//! runs workers that copy real volumes, and [`nemesis`] mixes every fault on a seeded plan for
//! the `chaos` soak binary.

pub mod dataplane;
pub mod harness;
pub mod nemesis;
pub mod netns;
pub mod proxy;
pub mod scenario;
pub use avocet_scheduler::oracle;
pub mod sim;
pub mod watch;
