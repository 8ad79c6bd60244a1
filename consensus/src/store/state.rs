//! The state machine store: the application in memory, and its latest snapshot in sled.
//!
//! The application's state lives in memory and is rebuilt on start from the latest snapshot;
//! openraft then re-applies the committed entries after it (the log store keeps the committed
//! log id), so nothing applied is lost and nothing is applied twice into the persisted state.
//!
//! Building a snapshot (openraft runs it in its own task) and installing one received from the
//! leader are serialized by one async mutex, held from reading the state until the stored
//! snapshot and the in-memory state agree; and a stored snapshot is never replaced by an older
//! one. Without both, a build that read the state just before an install could overwrite the
//! installed snapshot after openraft purged the log behind it.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
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
    snapshot_guard: Arc<tokio::sync::Mutex<()>>,
    snapshots_built: Arc<AtomicU64>,
}

impl<S> Clone for StateMachineStore<S> {
    fn clone(&self) -> Self {
        StateMachineStore {
            state: Arc::clone(&self.state),
            db: self.db.clone(),
            snapshots: self.snapshots.clone(),
            snapshot_guard: Arc::clone(&self.snapshot_guard),
            snapshots_built: Arc::clone(&self.snapshots_built),
        }
    }
}

fn snapshot_of(stored: StoredSnapshot) -> Snapshot {
    Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }
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
            snapshot_guard: Arc::new(tokio::sync::Mutex::new(())),
            snapshots_built: Arc::new(AtomicU64::new(0)),
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
        let _serialized = self.snapshot_guard.lock().await;
        // Copy under the lock, encode outside it: `apply` and readers wait only for the copy.
        let (app, last, membership) = {
            let state = read_lock(&self.state);
            (state.app.clone(), state.last_applied, state.membership.clone())
        };
        if let Some(current) = self.read_current()?
            && current.meta.last_log_id >= last
        {
            // An installed snapshot is at least as new: keep it rather than go backwards.
            return Ok(snapshot_of(current));
        }
        let data =
            tokio::task::spawn_blocking(move || codec::encode(&app)).await.map_err(|error| {
                StorageError::from(StorageIOError::write_snapshot(
                    None,
                    openraft::AnyError::new(&error),
                ))
            })?;
        let built = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last {
            Some(log_id) => format!("{}-{}-{built}", log_id.leader_id.term, log_id.index),
            None => format!("empty-{built}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta { last_log_id: last, last_membership: membership, snapshot_id },
            data,
        };
        self.write_current(&stored).await?;
        Ok(snapshot_of(stored))
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
        let _serialized = self.snapshot_guard.lock().await;
        let data = snapshot.into_inner();
        let app: S = codec::decode(&data).map_err(|error| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::new(&error),
            ))
        })?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        // Persist first: if the node dies now, it restarts from this snapshot. Both steps happen
        // under the snapshot guard, so no build can interleave.
        self.write_current(&stored).await?;
        let mut state = write_lock(&self.state);
        state.app = app;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.read_current()?.map(snapshot_of))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{LeaderId, Membership};

    use super::*;
    use crate::kv::KvStore;

    fn log_id(index: u64) -> LogId {
        LogId::new(LeaderId::new(1, 1), index)
    }

    #[tokio::test]
    async fn a_build_never_replaces_a_newer_installed_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open_db(dir.path()).unwrap();
        let mut store = StateMachineStore::<KvStore>::open(&db).unwrap();
        let membership =
            StoredMembership::new(Some(log_id(1)), Membership::new(vec![[1].into()], None));
        let mut installed = KvStore::default();
        installed.entries.insert("k".into(), "installed".into());
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(10)),
            last_membership: membership.clone(),
            snapshot_id: "installed".into(),
        };
        store
            .install_snapshot(&meta, Box::new(Cursor::new(codec::encode(&installed))))
            .await
            .unwrap();

        // --- a builder that read an older state (as if it raced the install) keeps the newer one
        {
            let shared = store.shared();
            let mut state = shared.write().unwrap();
            state.last_applied = Some(log_id(5));
            state.app = KvStore::default();
        }
        let built = store.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(10)));
        let current = store.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.snapshot_id, "installed");

        // --- a newer state builds a newer snapshot
        {
            let shared = store.shared();
            let mut state = shared.write().unwrap();
            state.last_applied = Some(log_id(20));
        }
        let built = store.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(20)));
        assert_ne!(
            store.get_current_snapshot().await.unwrap().unwrap().meta.snapshot_id,
            "installed"
        );
    }
}
