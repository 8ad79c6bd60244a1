//! The openraft type configuration: what a log entry carries, what a node is, and their encoding.
//!
//! Commands and responses cross the log as opaque bytes that the application encodes and
//! versions itself, so openraft's types are concrete and the replicated application stays a plain
//! trait ([`crate::StateMachine`]) instead of a generic parameter threaded through openraft.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// Identifies a node within its group.
pub type NodeId = u64;

/// Holds an application command as the log carries it: bytes the application encoded
/// (written as base64 in the log's JSON, a third larger than the bytes, not four times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(#[serde(with = "base64_bytes")] pub Vec<u8>);

/// Rewrites a batch of commands on the leader just before it is appended to the log (never on
/// followers, never on replay): the place for leader-only data such as the leader's clock
/// reading, so that a command forwarded from another node carries the leader's time.
#[derive(Clone)]
pub struct Prepare(pub std::sync::Arc<dyn Fn(Command) -> Command + Send + Sync>);

impl std::fmt::Debug for Prepare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepare(..)")
    }
}

/// Holds the application's answer to a command, as bytes it encoded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Response(#[serde(with = "base64_bytes")] pub Vec<u8>);

/// Writes bytes as a base64 string.
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Describes a member: where its Raft peer service listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Gives the Raft peer address, `host:port`.
    pub address: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

openraft::declare_raft_types!(
    /// Names the types openraft replicates for Avocet.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// Names the openraft instance of one node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Names a log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// Names a log id.
pub type LogId = openraft::LogId<NodeId>;

/// Names a vote.
pub type Vote = openraft::Vote<NodeId>;

/// Names a membership as stored in the log.
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;

/// Names a storage error.
pub type StorageError = openraft::StorageError<NodeId>;

/// Names a snapshot.
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// Names a snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
