//! Proof of the exactly-once promise: a seeded simulation of the scheduler group, a real-process
//! failover harness, and the oracle that judges both.
//!
//! The simulation (TigerBeetle's VOPR and openraft's turmoil tests are the models) will drive the
//! real planner and `apply` through an abstract replicated log with one seed deriving node count,
//! clock skew, message loss, partitions and crashes, checking the named invariants (EO-1, EO-2,
//! T-1, T-2, W-1) after every step. The harness will start real `avocet serve` processes on
//! loopback, kill and partition them, and judge outcomes only through the public API. The
//! scheduler-service and chaos issues fill it in.
