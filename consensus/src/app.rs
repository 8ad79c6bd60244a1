//! The replicated application: a deterministic state machine the group keeps identical on every node.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Describes an application the group replicates.
///
/// `apply` must be deterministic: it reads no clock, no randomness and no environment, only the
/// command and the log index it was committed at (commands that need time carry it, stamped by
/// the proposer). The whole state is serialized for snapshots, so it must round-trip through
/// serde (its encoding is versioned by [`crate::codec`]); it is cloned under a short lock so that
/// the encoding runs off the async threads.
pub trait StateMachine:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Names the commands clients propose.
    type Command: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// Names the answer to a command.
    type Response: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;

    /// Applies a committed command; `index` is the log index of the entry that carried it.
    /// Indexes never decrease; commands written together as one batch share their entry's
    /// index and are applied in the order they were given.
    fn apply(&mut self, index: u64, command: Self::Command) -> Self::Response;
}

/// Holds what the state machine answered to one log entry, as the log's response bytes carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Applied<R> {
    /// The command was applied and answered.
    Response(R),
    /// The entry was a leader's blank entry or a membership change: nothing to answer.
    Internal,
    /// The command's bytes could not be decoded (on every node alike), so it changed nothing.
    Undecodable(String),
}
