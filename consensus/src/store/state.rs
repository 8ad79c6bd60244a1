//! The state machine store: the application in memory, and its latest snapshot in sled.
//!
//! The application's state lives in memory and is rebuilt on start from the latest snapshot;
//! openraft then re-applies the committed entries after it (the log store keeps the committed
//! log id), so nothing applied is lost and nothing is applied twice into the persisted state.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::app::{Applied, StateMachine};
use crate::codec;
use crate::types::{
    Entry, LogId, Response, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const CURRENT_SNAPSHOT_KEY: &[u8] = b"current";

/// Holds the application and what was last applied to it; shared with readers of the node.
#[derive(Debug, Default)]
pub struct SharedState<S> {
    /// Holds the application's state.
    pub app: S,
    /// Gives the last applied log id.
    pub last_applied: Option<LogId>,
    /// Gives the last applied membership.
    pub membership: StoredMembership,
}

/// Holds a snapshot as stored: its metadata and the encoded application.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Applies committed entries to the application and keeps its snapshots.
#[derive(Debug)]
pub struct StateMachineStore<S> {
    state: Arc<RwLock<SharedState<S>>>,
    db: sled::Db,
    snapshots: sled::Tree,
    snapshots_built: u64,
}

impl<S> Clone for StateMachineStore<S> {
    fn clone(&self) -> Self {
        StateMachineStore {
            state: Arc::clone(&self.state),
            db: self.db.clone(),
            snapshots: self.snapshots.clone(),
            snapshots_built: self.snapshots_built,
        }
    }
}

fn read_lock<S>(state: &RwLock<SharedState<S>>) -> std::sync::RwLockReadGuard<'_, SharedState<S>> {
    // A panic inside `apply` would poison the lock; the state itself is still the last good one.
    state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<S>(
    state: &RwLock<SharedState<S>>,
) -> std::sync::RwLockWriteGuard<'_, SharedState<S>> {
    state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: StateMachine> StateMachineStore<S> {
    /// Opens the snapshot tree of `db` and restores the application from the latest snapshot.
    pub fn open(db: &sled::Db) -> Result<StateMachineStore<S>, StoreError> {
        let snapshots = db.open_tree("snapshot")?;
        let mut shared = SharedState::<S>::default();
        if let Some(bytes) = snapshots.get(CURRENT_SNAPSHOT_KEY)? {
            let stored: StoredSnapshot = codec::decode(&bytes)
                .map_err(|source| StoreError::Codec { what: "stored snapshot", source })?;
            shared.app = codec::decode(&stored.data).map_err(StoreError::Restore)?;
            shared.last_applied = stored.meta.last_log_id;
            shared.membership = stored.meta.last_membership.clone();
        }
        Ok(StateMachineStore {
            state: Arc::new(RwLock::new(shared)),
            db: db.clone(),
            snapshots,
            snapshots_built: 0,
        })
    }

    /// Returns the shared state, for reads that do not go through Raft's log.
    pub fn shared(&self) -> Arc<RwLock<SharedState<S>>> {
        Arc::clone(&self.state)
    }

    fn read_current(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let make = |error: &(dyn std::error::Error + 'static)| {
            StorageError::from(StorageIOError::read_snapshot(
                None,
                openraft::AnyError::from_dyn(error, None),
            ))
        };
        match self.snapshots.get(CURRENT_SNAPSHOT_KEY).map_err(|error| make(&error))? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|error| make(&error)),
        }
    }

    async fn write_current(&self, stored: &StoredSnapshot) -> Result<(), StorageError> {
        let signature = Some(stored.meta.signature());
        let make = |error: &(dyn std::error::Error + 'static)| {
            let source = openraft::AnyError::from_dyn(error, None);
            StorageError::from(StorageIOError::write_snapshot(signature.clone(), source))
        };
        self.snapshots
            .insert(CURRENT_SNAPSHOT_KEY, codec::encode(stored))
            .map_err(|error| make(&error))?;
        self.db.flush_async().await.map_err(|error| make(&error))?;
        Ok(())
    }
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig> for StateMachineStore<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let stored = {
            let state = read_lock(&self.state);
            self.snapshots_built += 1;
            let last = state.last_applied;
            let snapshot_id = match last {
                Some(log_id) => {
                    format!("{}-{}-{}", log_id.leader_id.term, log_id.index, self.snapshots_built)
                }
                None => format!("empty-{}", self.snapshots_built),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: last,
                    last_membership: state.membership.clone(),
                    snapshot_id,
                },
                data: codec::encode(&state.app),
            }
        };
        self.write_current(&stored).await?;
        Ok(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig> for StateMachineStore<S> {
    type SnapshotBuilder = StateMachineStore<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = read_lock(&self.state);
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = write_lock(&self.state);
        let mut responses = Vec::new();
        for entry in entries {
            debug_assert!(
                state.last_applied < Some(entry.log_id),
                "entries are applied in log order, once"
            );
            state.last_applied = Some(entry.log_id);
            let applied: Applied<Vec<S::Response>> = match entry.payload {
                EntryPayload::Blank => Applied::Internal,
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied::Internal
                }
                // An entry carries a batch of commands, applied in order at the entry's index.
                EntryPayload::Normal(command) => match codec::decode::<Vec<S::Command>>(&command.0)
                {
                    Ok(commands) => Applied::Response(
                        commands
                            .into_iter()
                            .map(|command| state.app.apply(entry.log_id.index, command))
                            .collect(),
                    ),
                    Err(error) => Applied::Undecodable(error.to_string()),
                },
            };
            responses.push(Response(codec::encode(&applied)));
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachineStore<S> {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let app: S = codec::decode(&data).map_err(|error| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::new(&error),
            ))
        })?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        // Persist first: if the node dies now, it restarts from this snapshot.
        self.write_current(&stored).await?;
        let mut state = write_lock(&self.state);
        state.app = app;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.read_current()?.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
