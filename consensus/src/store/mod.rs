//! Durable storage of one node: the identity file, and the sled database holding the Raft log,
//! the vote and the latest snapshot.
//!
//! Layout of a data directory:
//! - `identity`: which node this directory belongs to, and of which group (written atomically,
//!   read before anything else so that a wrong directory is refused before sled opens it);
//! - `db/`: sled, with trees `log` (index → entry), `meta` (vote, committed, purged) and
//!   `snapshot` (the latest snapshot with its metadata).
//!
//! Every value starts with a format version byte ([`crate::codec`]).

mod identity;
mod log;
mod state;

use std::path::{Path, PathBuf};

pub use identity::{GroupId, Identity};
pub use log::LogStore;
pub use state::{SharedState, StateMachineStore};

use crate::codec::CodecError;

/// Says why storage could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Names the file.
        path: PathBuf,
        /// Gives the operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// sled failed.
    #[error("storage engine: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("{what}: {source}")]
    Codec {
        /// Names the value.
        what: &'static str,
        /// Gives the decoder's reason.
        #[source]
        source: CodecError,
    },
    /// The application could not be restored from a snapshot.
    #[error("restoring the application from snapshot: {0}")]
    Restore(CodecError),
}

/// Bounds the wait for the database lock a stopping node (or process) still holds.
pub const DB_LOCK_WAIT_ATTEMPTS_MAX: u32 = 60;

/// Opens (or creates) the sled database of a data directory.
///
/// The file lock of a node that is still stopping (its storage tasks finish shortly after Raft
/// reports shutdown) is waited for, up to [`DB_LOCK_WAIT_ATTEMPTS_MAX`] × 50 ms.
pub fn open_db(data_dir: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new().path(data_dir.join("db"));
    let mut attempt = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && attempt < DB_LOCK_WAIT_ATTEMPTS_MAX =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => return Ok(result?),
        }
    }
}

/// Converts any error into openraft's storage error for the given subject.
pub(crate) fn io_error(
    source: &(impl std::error::Error + 'static),
    make: fn(openraft::AnyError) -> openraft::StorageIOError<crate::NodeId>,
) -> crate::types::StorageError {
    make(openraft::AnyError::new(source)).into()
}
