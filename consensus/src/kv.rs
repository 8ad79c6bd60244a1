//! A small key-value application: what the consensus tests and benches replicate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::app::StateMachine;

/// Holds string keys and values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    /// Maps keys to values.
    pub entries: BTreeMap<String, String>,
    /// Gives the log index of the last command applied.
    pub last_index: u64,
}

/// Changes the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// Names the key.
        key: String,
        /// Gives the value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// Names the key.
        key: String,
    },
}

/// Answers a command with the key's previous value and the command's log index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse {
    /// Gives the value the key had before.
    pub previous: Option<String>,
    /// Gives the log index the command was applied at.
    pub index: u64,
}

impl StateMachine for KvStore {
    type Command = KvCommand;
    type Response = KvResponse;

    fn apply(&mut self, index: u64, command: KvCommand) -> KvResponse {
        debug_assert!(index >= self.last_index, "indexes never decrease");
        self.last_index = index;
        let previous = match command {
            KvCommand::Put { key, value } => self.entries.insert(key, value),
            KvCommand::Delete { key } => self.entries.remove(&key),
        };
        KvResponse { previous, index }
    }
}
