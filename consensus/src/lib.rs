//! The scheduler group's memory: a replicated log and state machine, generic over the application.
//!
//! One node is an openraft `Raft` over three parts of this crate:
//! - [`store`]: a sled log store whose appends and votes are flushed before openraft hears they
//!   are done, and a state-machine store that keeps the application in memory and its latest
//!   snapshot in sled (snapshots are built past a log threshold, sent to lagging or new nodes,
//!   and the log before them is purged);
//! - [`network`] and [`service`]: the `avocet.raft.v1` peer service over tonic, with the peer
//!   token on every call, a deadline on every RPC and bounded retries; every message carries the
//!   group id, so nodes of two groups never mix;
//! - [`node`]: start-up (refusing a data directory of another node or group, or a peer list that
//!   contradicts the stored membership), writes forwarded from followers to the leader,
//!   linearizable reads, membership changes, status, and a shutdown that hands leadership to a
//!   caught-up voter first;
//! - [`clocks`]: every peer message carries its sender's clock, and a node's estimate of the
//!   instant a majority of voters' clocks have reached, so one skewed clock moves nothing.
//!
//! The application is any [`StateMachine`]: commands cross the log as versioned bytes, so
//! openraft's types stay concrete ([`types`]). The scheduler's catalog plugs in from
//! `avocet-server`; [`kv::KvStore`] serves the tests and benches.
//!
//! Only this crate names openraft or sled (an architecture invariant, checked by the tidy test),
//! so a change of consensus library or storage engine stays inside it.

// openraft's error types are large by design and travel only on cold paths.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod clocks;
pub mod codec;
pub mod kv;
pub mod network;
pub mod node;
pub mod service;
pub mod store;
pub mod types;

pub use app::{Applied, StateMachine};
pub use clocks::PeerClocks;
pub use network::LinkControl;
pub use node::{
    ClusterStatus, MemberStatus, NodeConfig, RaftNode, RequestError, Role, StartError, Timing,
};
pub use types::{Member, NodeId};
