//! The scheduler group's memory: a replicated log and state machine, generic over the application.
//!
//! This crate will hold openraft's `TypeConfig`, a sled log store and state-machine store whose
//! entries are flushed before openraft is told they are durable, snapshots past a log threshold,
//! a tonic Raft network (the `avocet.raft.v1` service of `avocet-proto`, peer token on every call,
//! deadlines and bounded retries) and membership changes. It is generic over a deterministic
//! application state machine (`apply(command) -> response`, snapshot, restore): the scheduler's
//! catalog plugs in from `avocet-server`, so nothing here knows about policies or migrations.
//!
//! Only this crate names openraft or sled (an architecture invariant, checked by the tidy test),
//! so a change of consensus library or storage engine stays inside it. The replicated-catalog
//! issue fills it in.
