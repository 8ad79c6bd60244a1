//! The one error type of the data plane: each variant a sentence naming what failed.

use std::path::PathBuf;

use crate::manifest::ManifestError;
use crate::seal::SealError;
use crate::store::StoreError;

/// Why a push or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Bad input: a volume name, a source or target directory.
    #[error("{0}")]
    Invalid(String),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object did not open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A manifest did not read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The key does not open this store.
    #[error("{0}: the key does not open this store (it was created with another key)")]
    WrongKey(String),
    /// The store holds something this version cannot use.
    #[error("the store is damaged or from another tool: {0}")]
    Corrupt(String),
    /// A file or directory could not be read or written.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The run was stopped (its uploads failed, or the caller gave up).
    #[error("the run was stopped: {0}")]
    Stopped(String),
}

impl TransferError {
    /// An IO error at `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> TransferError {
        TransferError::Io { op, path: path.into(), source }
    }
}
