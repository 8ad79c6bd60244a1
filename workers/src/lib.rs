//! Worker actors: the hands that execute a migration once the scheduler group has committed it.
//!
//! This crate will hold actix actors that copy volume data through `avocet-transfer` and
//! Kubernetes objects through the kube crate, applying the standby transforms (workloads scaled
//! to 0 with `stork.libopenstorage.org/migrationReplicas`, CronJobs suspended, Service IPs
//! cleared) as plain functions tested without an actor system. Actors own mailboxes,
//! supervision, retries and progress; the rest of the system sees only a `Send` `WorkerPool`
//! handle, never actix types.
//!
//! Workers never touch Raft: they receive a migration and report an outcome, and
//! `avocet-server` turns outcomes into proposals. Only this crate names actix (an architecture
//! invariant, checked by the tidy test). The worker and Kubernetes issues fill it in.

pub mod pairing;
pub mod pool;
pub mod resources;
pub mod rules;
pub mod volumes;
