//! Benchmarks of every layer: criterion benches under `benches/` and table-printing bench
//! binaries. Speed and memory targets live here, never in timed unit tests; figures are quoted
//! as ratios measured in one run.
//!
//! Today: `policy_next_due`, next-due computations per second for each policy type in a DST
//! zone (target ≥ 1 M/s on one core). Later issues add `apply` throughput, Raft commit latency,
//! failover gap, volume transfer against restic and rsync, and resource copy.
