//! Writes a manifest out as a directory tree, never touching the live target until the end:
//! everything is built in a staging directory beside the target, then swapped in with one
//! atomic exchange (`renameat2(RENAME_EXCHANGE)`, or two renames with recovery where the file
//! system lacks it). A file the previous restore left unchanged (its size, mtime and inode
//! still what that restore recorded, its contents and metadata the same in the new run) is
//! hard-linked into the staging tree, not copied; chunks of trusted old files are read locally
//! rather than downloaded. Zero pieces are left as holes, so sparse files stay sparse.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chunk::ChunkId;
use crate::error::TransferError;
use crate::manifest::{Entry, EntryKind, Manifest, Meta, Piece};
use crate::volume::mtime_ns;

/// The state file format.
const STATE_FORMAT: u32 = 2;

/// The target and the paths a restore keeps beside it.
#[derive(Debug, Clone)]
pub struct Places {
    /// The live directory.
    pub target: PathBuf,
    /// Where the next snapshot is built.
    pub staging: PathBuf,
    /// Where the live directory waits during a two-rename switch.
    pub previous: PathBuf,
    /// What the last restore wrote (for reuse).
    pub state: PathBuf,
}

impl Places {
    /// The places of `target`, whose parent must exist.
    pub fn of(target: &Path) -> Result<Places, TransferError> {
        let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            TransferError::Invalid(format!("target {} does not name a directory", target.display()))
        })?;
        let parent =
            target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(TransferError::Invalid(format!(
                "target {}: its parent directory {} does not exist",
                target.display(),
                parent.display()
            )));
        }
        Ok(Places {
            target: target.to_path_buf(),
            staging: parent.join(format!(".{name}.avocet-staging")),
            previous: parent.join(format!(".{name}.avocet-previous")),
            state: parent.join(format!(".{name}.avocet-restore.json")),
        })
    }

    /// Puts back a live directory a switch left aside, and clears a stale staging tree.
    pub fn recover(&self) -> Result<(), TransferError> {
        if !exists(&self.target) && exists(&self.previous) {
            std::fs::rename(&self.previous, &self.target)
                .map_err(|e| TransferError::io("put back", &self.previous, e))?;
        }
        for leftover in [&self.staging, &self.previous] {
            if exists(leftover) {
                std::fs::remove_dir_all(leftover)
                    .map_err(|e| TransferError::io("remove", leftover, e))?;
            }
        }
        Ok(())
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// What a restore records about the files it wrote, to trust them next time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreState {
    /// The state format.
    pub format: u32,
    /// The store restored from (its id): a run number means nothing in another store.
    pub store: String,
    /// The volume.
    pub volume: String,
    /// The run restored.
    pub run: u64,
    /// Each regular file: path → (size, mtime_ns, inode) as left by the restore.
    pub files: HashMap<String, (u64, i128, u64)>,
}

impl RestoreState {
    /// Reads the state beside a target, if there is a readable one.
    pub fn read(places: &Places) -> Option<RestoreState> {
        let bytes = std::fs::read(&places.state).ok()?;
        serde_json::from_slice::<RestoreState>(&bytes).ok().filter(|s| s.format == STATE_FORMAT)
    }
}

/// A file of the live target whose contents are known.
#[derive(Debug, Clone)]
pub struct Trusted {
    /// Its path in the live target.
    pub path: PathBuf,
    /// Its entry in the run it was restored from.
    pub entry: Entry,
    /// Its pieces.
    pub pieces: Vec<Piece>,
}

/// The files of the live target that still hold what the last restore wrote.
pub fn trusted_files(
    places: &Places,
    state: &RestoreState,
    old: &Manifest,
    old_pieces: &[Vec<Piece>],
) -> HashMap<String, Trusted> {
    let mut trusted = HashMap::new();
    for (entry, pieces) in old.entries.iter().zip(old_pieces) {
        if entry.kind != EntryKind::File || entry.hard_link_to.is_some() {
            continue;
        }
        let Some(recorded) = state.files.get(&entry.path) else { continue };
        if (recorded.0, recorded.1) != (entry.size, entry.mtime_ns) {
            continue;
        }
        let path = places.target.join(&entry.path);
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        // Contents by size, mtime and inode (a write moves mtime); a chmod or chown since, which
        // leaves mtime alone, by the mode and owner the old run gave it. (Not ctime: linking the
        // file into a staging tree moves that, and would end reuse after any failed attempt.)
        let now = (meta.size(), mtime_ns(&meta), meta.ino());
        let same_meta =
            (meta.mode() & 0o7777, meta.uid(), meta.gid()) == (entry.mode, entry.uid, entry.gid);
        if meta.is_file() && now == *recorded && same_meta {
            trusted.insert(
                entry.path.clone(),
                Trusted { path, entry: entry.clone(), pieces: pieces.clone() },
            );
        }
    }
    trusted
}

/// A chunk to fetch and the places it goes.
#[derive(Debug, Default)]
pub struct Needed {
    /// Chunk → (file in staging, offset) for every place it is written.
    pub chunks: HashMap<ChunkId, Vec<(PathBuf, u64)>>,
}

/// What building the staging tree did.
#[derive(Debug, Default)]
pub struct Built {
    /// Chunks still to fetch from the store.
    pub needed: Needed,
    /// Files hard-linked from the live target.
    pub files_reused: u64,
    /// Files written.
    pub files_written: u64,
    /// Bytes copied from trusted files in the live target.
    pub bytes_local: u64,
    /// Paths of entries hard-linked from the live target (their metadata is already right).
    pub reused: HashSet<String>,
}

/// Builds the staging tree of `manifest` (whose file pieces are `pieces`, in entry order):
/// directories, symlinks, hard links, reused files, and every file's bytes that are at hand.
pub fn build(
    places: &Places,
    manifest: &Manifest,
    pieces: &[Vec<Piece>],
    trusted: &HashMap<String, Trusted>,
) -> Result<Built, TransferError> {
    let staging = &places.staging;
    std::fs::create_dir(staging).map_err(|e| TransferError::io("create", staging, e))?;
    let mut local: HashMap<&ChunkId, (&Path, u64)> = HashMap::new();
    for t in trusted.values() {
        let mut offset = 0;
        for piece in &t.pieces {
            if let Piece::Data { id, .. } = piece {
                local.entry(id).or_insert((t.path.as_path(), offset));
            }
            offset += piece.len();
        }
    }
    let mut built = Built::default();
    let mut used_inodes = HashSet::new();
    for (entry, pieces) in manifest.entries.iter().zip(pieces) {
        let path = staging.join(&entry.path);
        match entry.kind {
            EntryKind::Dir => {
                std::fs::create_dir(&path).map_err(|e| TransferError::io("create", &path, e))?;
            }
            EntryKind::Symlink => {
                let target = entry.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(target, &path)
                    .map_err(|e| TransferError::io("create the link", &path, e))?;
            }
            EntryKind::File if entry.hard_link_to.is_some() => {
                let first = staging.join(entry.hard_link_to.as_deref().unwrap_or_default());
                std::fs::hard_link(&first, &path)
                    .map_err(|e| TransferError::io("link", &path, e))?;
            }
            EntryKind::File => {
                let reusable = trusted.get(&entry.path).filter(|t| {
                    t.pieces == *pieces
                        && t.entry.size == entry.size
                        && (t.entry.mode, t.entry.uid, t.entry.gid, t.entry.mtime_ns)
                            == (entry.mode, entry.uid, entry.gid, entry.mtime_ns)
                });
                if let Some(t) = reusable
                    && used_inodes.insert(t.entry.inode)
                    && std::fs::hard_link(&t.path, &path).is_ok()
                {
                    built.files_reused += 1;
                    built.reused.insert(entry.path.clone());
                    continue;
                }
                built.files_written += 1;
                let file =
                    File::create(&path).map_err(|e| TransferError::io("create", &path, e))?;
                file.set_len(entry.size).map_err(|e| TransferError::io("size", &path, e))?;
                let mut offset = 0;
                for piece in pieces {
                    if let Piece::Data { id, len } = piece {
                        match local.get(id) {
                            Some((from, at)) => {
                                let mut buf = vec![0; *len as usize];
                                let read =
                                    File::open(from).and_then(|f| f.read_exact_at(&mut buf, *at));
                                match read {
                                    Ok(()) if ChunkId::of(&buf) == *id => {
                                        file.write_all_at(&buf, offset)
                                            .map_err(|e| TransferError::io("write", &path, e))?;
                                        built.bytes_local += u64::from(*len);
                                    }
                                    _ => built
                                        .needed
                                        .chunks
                                        .entry(id.clone())
                                        .or_default()
                                        .push((path.clone(), offset)),
                                }
                            }
                            None => built
                                .needed
                                .chunks
                                .entry(id.clone())
                                .or_default()
                                .push((path.clone(), offset)),
                        }
                    }
                    offset += piece.len();
                }
            }
        }
    }
    Ok(built)
}

/// Writes one fetched chunk everywhere it goes.
pub fn place(data: &[u8], places: &[(PathBuf, u64)]) -> Result<(), TransferError> {
    for (path, offset) in places {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| TransferError::io("open", path, e))?;
        file.write_all_at(data, *offset).map_err(|e| TransferError::io("write", path, e))?;
    }
    Ok(())
}

/// Sets owners, permissions and times: files and links first, then directories deepest
/// first (creating children changes a directory's mtime), then the top directory; entries
/// reused from the live target already have theirs and are not touched.
pub fn finish(
    places: &Places,
    manifest: &Manifest,
    reused: &HashSet<String>,
) -> Result<(), TransferError> {
    let root_user = rustix::process::geteuid().is_root();
    let staging = &places.staging;
    for entry in &manifest.entries {
        if entry.kind == EntryKind::Dir
            || reused.contains(&entry.path)
            || entry.hard_link_to.is_some()
        {
            continue;
        }
        let meta =
            Meta { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime_ns: entry.mtime_ns };
        set_meta(&staging.join(&entry.path), &meta, entry.kind == EntryKind::Symlink, root_user)?;
    }
    for entry in manifest.entries.iter().rev().filter(|e| e.kind == EntryKind::Dir) {
        let meta =
            Meta { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime_ns: entry.mtime_ns };
        set_meta(&staging.join(&entry.path), &meta, false, root_user)?;
    }
    set_meta(staging, &manifest.root, false, root_user)?;
    let dir = File::open(staging).map_err(|e| TransferError::io("open", staging, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| TransferError::io("sync", staging, e.into()))
}

fn set_meta(path: &Path, meta: &Meta, symlink: bool, root_user: bool) -> Result<(), TransferError> {
    match std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)) {
        Err(e) if !root_user && e.kind() == io::ErrorKind::PermissionDenied => {}
        other => other.map_err(|e| TransferError::io("set the owner of", path, e))?,
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode))
            .map_err(|e| TransferError::io("set the mode of", path, e))?;
    }
    let secs = i64::try_from(meta.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0);
    let nanos = i64::try_from(meta.mtime_ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
        last_modification: rustix::fs::Timespec { tv_sec: secs, tv_nsec: nanos },
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| TransferError::io("set the time of", path, e.into()))
}

/// Swaps the staging tree in for the live target, then removes the old one and records what
/// was written (from the store `store`).
pub fn switch(places: &Places, manifest: &Manifest, store: &str) -> Result<(), TransferError> {
    // No record while the switch is under way: a crash here costs reuse next time, never trust.
    match std::fs::remove_file(&places.state) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(TransferError::io("remove", &places.state, e));
        }
        _ => {}
    }
    if exists(&places.target) {
        let exchanged = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &places.staging,
            rustix::fs::CWD,
            &places.target,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        if exchanged.is_ok() {
            std::fs::remove_dir_all(&places.staging)
                .map_err(|e| TransferError::io("remove the old tree", &places.staging, e))?;
        } else {
            std::fs::rename(&places.target, &places.previous)
                .map_err(|e| TransferError::io("move aside", &places.target, e))?;
            if let Err(e) = std::fs::rename(&places.staging, &places.target) {
                // Put the live tree back at once rather than leave the target missing.
                let _ = std::fs::rename(&places.previous, &places.target);
                return Err(TransferError::io("move into place", &places.staging, e));
            }
            std::fs::remove_dir_all(&places.previous)
                .map_err(|e| TransferError::io("remove the old tree", &places.previous, e))?;
        }
    } else {
        std::fs::rename(&places.staging, &places.target)
            .map_err(|e| TransferError::io("move into place", &places.staging, e))?;
    }
    let mut files = HashMap::new();
    for entry in &manifest.entries {
        if entry.kind == EntryKind::File && entry.hard_link_to.is_none() {
            let path = places.target.join(&entry.path);
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| TransferError::io("read", &path, e))?;
            files.insert(entry.path.clone(), (meta.size(), mtime_ns(&meta), meta.ino()));
        }
    }
    let state = RestoreState {
        format: STATE_FORMAT,
        store: store.to_owned(),
        volume: manifest.volume.clone(),
        run: manifest.run,
        files,
    };
    let temp = places.state.with_extension("json.tmp");
    std::fs::write(&temp, serde_json::to_vec(&state).unwrap_or_default())
        .and_then(|()| std::fs::rename(&temp, &places.state))
        .map_err(|e| TransferError::io("write", &places.state, e))
}
