//! One Avocet node, assembled: configuration, the gRPC adapters, the leader loop, dispatch of
//! committed fires to workers, the CRD controller and graceful shutdown.
//!
//! This is the only crate that sees every layer. Today it runs `avocet serve`: it merges flags,
//! environment and a YAML file into a checked [`config::ServeConfig`], starts a
//! `avocet-consensus` node (the replicated application is the consensus crate's key-value store
//! until the scheduler's catalog plugs in), and serves the public `avocet.api.v1.Cluster`
//! service behind the admin token, as thin adapters whose errors become gRPC statuses in one
//! place ([`api::status_of`]). On SIGTERM the leader hands leadership to a caught-up voter
//! before the node stops. The scheduler-service issue adds the catalog, the leader's planner,
//! dispatch to workers and the rest of the public API.

pub mod api;
pub mod config;
pub mod serve;

pub use config::{ServeConfig, ServeFlags};
pub use serve::{ServeError, error_chain, serve};
