//! The Raft log in sled: entries, the vote, the committed and purged log ids.
//!
//! Durability rule: openraft is told an append (or a vote) is done only after sled has flushed it
//! to disk (`flush_async`), so an acknowledged entry survives `kill -9` and power loss alike.
//!
//! Appends are group-committed: `append` writes the entries into sled and hands openraft's
//! callback to a flusher task, then returns at once so that Raft keeps accepting proposals. The
//! flusher takes every callback waiting, flushes once, and answers them in order: one fsync
//! covers every append that arrived while the previous one ran.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use std::sync::{Arc, OnceLock};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use tokio::sync::mpsc;

use super::io_error;
use crate::codec;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"purged";

/// Stores the Raft log of one node; clones share the same trees.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    flusher: Arc<OnceLock<mpsc::Sender<LogFlushed<TypeConfig>>>>,
}

/// Caps the appends waiting for a flush; a full queue makes `append` wait (back-pressure).
pub(crate) const FLUSH_QUEUE_CAPACITY: usize = 4096;

/// Flushes `db` for every batch of waiting callbacks, then answers them in arrival order.
async fn flush_loop(db: sled::Db, mut waiting: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    let mut batch = Vec::new();
    while waiting.recv_many(&mut batch, FLUSH_QUEUE_CAPACITY).await > 0 {
        let flushed = db.flush_async().await;
        for callback in batch.drain(..) {
            let result = match &flushed {
                Ok(_) => Ok(()),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[..8]);
    u64::from_be_bytes(bytes)
}

impl LogStore {
    /// Opens the log trees of `db`.
    pub fn open(db: &sled::Db) -> Result<LogStore, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree("log")?,
            meta: db.open_tree("meta")?,
            flusher: Arc::new(OnceLock::new()),
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        make: fn(openraft::AnyError) -> StorageIOError<crate::NodeId>,
    ) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(|error| io_error(&error, make))? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|error| io_error(&error, make)),
        }
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        make: fn(openraft::AnyError) -> StorageIOError<crate::NodeId>,
    ) -> Result<(), StorageError> {
        self.meta.insert(key, codec::encode(value)).map_err(|error| io_error(&error, make))?;
        self.db.flush_async().await.map_err(|error| io_error(&error, make))?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last().map_err(|error| io_error(&error, StorageIOError::read_logs))? {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: Entry = codec::decode(&bytes)
                    .map_err(|error| io_error(&error, StorageIOError::read_logs))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(index) => Bound::Included(key(*index)),
            Bound::Excluded(index) => Bound::Excluded(key(*index)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(index) => Bound::Included(key(*index)),
            Bound::Excluded(index) => Bound::Excluded(key(*index)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self.log.range((start, end)) {
            let (stored_key, bytes) =
                item.map_err(|error| io_error(&error, StorageIOError::read_logs))?;
            let entry: Entry = codec::decode(&bytes)
                .map_err(|error| io_error(&error, StorageIOError::read_logs))?;
            // Paired assertion: entries are stored under their own index (see `append`).
            debug_assert_eq!(entry.log_id.index, index_of(&stored_key));
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> =
            self.read_meta(PURGED_KEY, StorageIOError::read_logs)?;
        // After a crash inside `purge` the entries may end below the purge point.
        let last_log_id = self.last_entry_log_id()?.max(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(VOTE_KEY, vote, StorageIOError::write_vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE_KEY, StorageIOError::read_vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: a lost committed id only means re-applying from the snapshot on restart
        // (openraft allows it to lag), and flushing here would cost one fsync per commit.
        self.meta
            .insert(COMMITTED_KEY, codec::encode(&committed))
            .map_err(|error| io_error(&error, StorageIOError::write))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED_KEY, StorageIOError::read)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&key(entry.log_id.index), codec::encode(&entry));
        }
        self.log
            .apply_batch(batch)
            .map_err(|error| io_error(&error, StorageIOError::write_logs))?;
        // Durable before openraft hears of it: the flusher answers the callback after fsync.
        // It is started on first use, inside openraft's runtime, and ends with the last clone.
        let flusher = self.flusher.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(FLUSH_QUEUE_CAPACITY);
            tokio::spawn(flush_loop(self.db.clone(), receiver));
            sender
        });
        if let Err(unsent) = flusher.send(callback).await {
            // The flusher only stops when every sender is gone, so this cannot happen while we
            // hold one; flush here rather than lose the callback.
            let flushed = self.db.flush_async().await;
            let result = flushed
                .as_ref()
                .map(|_| ())
                .map_err(|error| std::io::Error::other(error.to_string()));
            unsent.0.log_io_completed(result);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(key(log_id.index)..) {
            let (stored_key, _) =
                item.map_err(|error| io_error(&error, StorageIOError::write_logs))?;
            batch.remove(stored_key);
        }
        self.log
            .apply_batch(batch)
            .map_err(|error| io_error(&error, StorageIOError::write_logs))?;
        self.db
            .flush_async()
            .await
            .map_err(|error| io_error(&error, StorageIOError::write_logs))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash between the two steps leaves extra entries,
        // never a log whose first entry is unaccounted for.
        self.write_meta(PURGED_KEY, &log_id, StorageIOError::write_logs).await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=key(log_id.index)) {
            let (stored_key, _) =
                item.map_err(|error| io_error(&error, StorageIOError::write_logs))?;
            batch.remove(stored_key);
        }
        self.log
            .apply_batch(batch)
            .map_err(|error| io_error(&error, StorageIOError::write_logs))?;
        self.db
            .flush_async()
            .await
            .map_err(|error| io_error(&error, StorageIOError::write_logs))?;
        Ok(())
    }
}
