//! One Avocet node, assembled: configuration, the gRPC adapters, the leader loop, dispatch of
//! committed fires to workers, the CRD controller and graceful shutdown.
//!
//! This is the only crate that sees every layer: it plugs the scheduler's catalog into
//! `avocet-consensus`, serves `avocet-proto`'s services as thin adapters over domain traits,
//! feeds the leader's planner from committed state, and turns worker outcomes into Raft
//! proposals (`dispatch`). The `avocet serve` and `avocet worker` commands of `avocet-cli` call
//! into it. The replicated-catalog and scheduler-service issues fill it in.
