//! Manifests: what one run of one volume holds, file by file. A manifest is written after every
//! chunk it names, so its presence in the store means the snapshot is complete. Every manifest
//! carries a format number; this version reads its own format and every earlier one, and
//! refuses a later one with a sentence saying so.

use serde::{Deserialize, Serialize};

use crate::chunk::ChunkId;

/// The manifest format this version writes.
pub const FORMAT: u32 = 1;

/// One run of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The manifest format.
    pub format: u32,
    /// The volume's name.
    pub volume: String,
    /// The run's number for this volume, from 1.
    pub run: u64,
    /// Whether every file was read (else unchanged files were taken from the previous run).
    pub full: bool,
    /// The volume's top directory itself.
    pub root: Meta,
    /// Every entry, parents before children, siblings in name order.
    pub entries: Vec<Entry>,
}

/// Ownership, permissions and time of the volume's top directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

/// One stretch of a file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Piece {
    /// Bytes stored as the chunk `id`.
    Data {
        /// The chunk.
        id: ChunkId,
        /// Its length.
        len: u32,
    },
    /// A run of zeros, not stored: a restore leaves a hole (the file comes back sparse).
    Zero {
        /// Its length.
        zero: u64,
    },
}

impl Piece {
    /// The stretch's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Data { len, .. } => u64::from(*len),
            Piece::Zero { zero } => *zero,
        }
    }

    /// Whether the stretch is empty (never, for pieces a run writes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// One file, directory or link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The path inside the volume, `/`-separated, never absolute, never `..`.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number on the source (change detection and hard links).
    pub inode: u64,
    /// For a file that is another name of an earlier entry: that entry's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_link_to: Option<String>,
    /// For a symlink: its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a file: its contents in order, when they are few enough to list here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pieces: Vec<Piece>,
    /// For a large file: the chunk holding its piece list (JSON), so an unchanged large file
    /// costs one id in the next run's manifest, not thousands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piece_list: Option<ChunkId>,
}

impl Entry {
    /// Whether two entries of a file name the same contents.
    pub fn same_contents(&self, other: &Entry) -> bool {
        self.size == other.size
            && self.pieces == other.pieces
            && self.piece_list == other.piece_list
    }
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not JSON of a manifest.
    #[error("the manifest of {0} cannot be read: {1}")]
    Malformed(String, String),
    /// Written by a later Avocet.
    #[error(
        "the manifest of {volume} is format {format}; this Avocet reads formats up to {FORMAT} (upgrade it)"
    )]
    TooNew {
        /// The volume.
        volume: String,
        /// The format found.
        format: u32,
    },
    /// A path that could escape the volume.
    #[error("the manifest of {volume} names {path:?}, which leaves the volume")]
    UnsafePath {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
    },
}

/// Whether a manifest path stays inside the volume.
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

impl Manifest {
    /// The manifest as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored manifest of `volume`, refusing later formats and unsafe paths.
    pub fn decode(volume: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError::Malformed(volume.to_owned(), e.to_string()))?;
        let format = value["format"].as_u64().and_then(|f| u32::try_from(f).ok()).unwrap_or(0);
        if format > FORMAT {
            return Err(ManifestError::TooNew { volume: volume.to_owned(), format });
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| ManifestError::Malformed(volume.to_owned(), e.to_string()))?;
        let unsafe_entry = manifest.entries.iter().find(|e| {
            !safe_path(&e.path) || e.hard_link_to.as_deref().is_some_and(|p| !safe_path(p))
        });
        if let Some(entry) = unsafe_entry {
            return Err(ManifestError::UnsafePath {
                volume: volume.to_owned(),
                path: entry.path.clone(),
            });
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            volume: "data".to_owned(),
            run: 3,
            full: false,
            root: Meta { mode: 0o755, uid: 0, gid: 0, mtime_ns: 5 },
            entries: vec![
                Entry {
                    path: "db".to_owned(),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    uid: 999,
                    gid: 999,
                    size: 0,
                    mtime_ns: 1,
                    inode: 2,
                    hard_link_to: None,
                    target: None,
                    pieces: Vec::new(),
                    piece_list: None,
                },
                Entry {
                    path: "db/ibdata1".to_owned(),
                    kind: EntryKind::File,
                    mode: 0o640,
                    uid: 999,
                    gid: 999,
                    size: 4101,
                    mtime_ns: 2,
                    inode: 3,
                    hard_link_to: None,
                    target: None,
                    pieces: vec![
                        Piece::Data { id: ChunkId::of(b"hello"), len: 5 },
                        Piece::Zero { zero: 4096 },
                    ],
                    piece_list: None,
                },
            ],
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        let m = manifest();
        assert_eq!(Manifest::decode("data", &m.encode()), Ok(m.clone()));
        let text = String::from_utf8(m.encode()).expect("json");
        assert!(text.contains(r#"{"zero":4096}"#), "{text}");
    }

    #[test]
    fn a_later_format_and_an_escaping_path_are_refused_by_name() {
        let mut later = manifest();
        later.format = FORMAT + 1;
        let err = Manifest::decode("data", &later.encode()).expect_err("too new");
        assert!(err.to_string().contains("upgrade"), "{err}");
        let mut escaping = manifest();
        escaping.entries[1].path = "../../etc/shadow".to_owned();
        assert!(matches!(
            Manifest::decode("data", &escaping.encode()),
            Err(ManifestError::UnsafePath { .. })
        ));
        assert!(
            !safe_path("/abs") && !safe_path("a//b") && !safe_path("a/./b") && safe_path("a/b.c")
        );
    }
}
