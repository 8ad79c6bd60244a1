//! One Avocet node, assembled: configuration, the gRPC adapters, the leader loop, dispatch of
//! committed fires to workers, the CRD controller and graceful shutdown.
//!
//! This is the only crate that sees every layer. It runs `avocet serve`: it merges flags,
//! environment and a YAML file into a checked [`config::ServeConfig`], starts an
//! `avocet-consensus` node replicating the scheduler's catalog ([`machine::Scheduler`]), runs
//! the [`leader::LeaderLoop`] (while this node leads, plan from committed state and propose what
//! is due), and serves the public API: `avocet.api.v1.Cluster` and `Catalog` behind the admin
//! token, `Workers` behind the worker (or admin) token, as thin adapters whose refusals become
//! gRPC statuses in one place each ([`api::status_of`], [`catalog_api::rejection_status`]).
//! Prometheus metrics are served on their own port ([`metrics`]). While it leads, the node also
//! re-checks every ClusterPair's destination ([`pairs::PairChecker`]) and, given `--kubeconfig`,
//! runs the Kubernetes controller ([`controller::Controller`]). On SIGTERM the leader hands
//! leadership to a caught-up voter before the node stops. Dispatch of leased migrations to
//! worker actors arrives with the workers issue; until then any client holding the worker
//! token leases migrations through `Workers`.

pub mod api;
pub mod catalog_api;
pub mod config;
pub mod controller;
pub mod credentials;
pub mod dispatch;
pub mod group_clock;
pub mod join;
pub mod leader;
pub mod machine;
pub mod metrics;
pub mod pairs;
pub mod serve;
pub mod volumes;

pub use config::{ServeConfig, ServeFlags};
pub use serve::{ServeError, error_chain, serve};
