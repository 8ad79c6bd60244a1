//! The scheduler's catalog as the replicated application of the consensus group.

use serde::{Deserialize, Serialize};

use avocet_consensus::StateMachine;
use avocet_scheduler::{Catalog, Command, Response};

/// Holds the catalog each node of the group keeps identical.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scheduler(pub Catalog);

impl StateMachine for Scheduler {
    type Command = Command;
    type Response = Response;

    fn apply(&mut self, index: u64, command: Command) -> Response {
        self.0.apply(index, command)
    }
}

/// Names the consensus node that replicates the catalog.
pub type SchedulerNode = avocet_consensus::RaftNode<Scheduler>;
