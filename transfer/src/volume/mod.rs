//! The volume side of the data plane: reading a directory tree into entries and chunks
//! ([`scan`]), and writing a manifest back out as a directory tree ([`write`](mod@write)). Together with
//! `store/`, the only modules that touch the file system.

pub mod scan;
pub mod write;

use std::os::unix::fs::MetadataExt;

/// A file's modification time in nanoseconds since the epoch.
pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}
