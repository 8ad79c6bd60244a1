//! Reads a directory tree: one entry per directory, file and symlink, parents before children
//! and siblings in name order. A file whose size, mtime and inode match the previous run is not
//! read (its pieces are carried over) unless the run is full; a file that is read is cut into
//! chunks, runs of zeros become holes, and every chunk the store lacks goes to `sink`.
//! Hard links are found by (device, inode); sockets, FIFOs and devices are skipped and counted.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::chunk::{self, ChunkId, ChunkSizes};
use crate::error::TransferError;
use crate::manifest::{Entry, EntryKind, Meta, Piece};
use crate::plan::{self, Stat};
use crate::volume::mtime_ns;

/// Files with more pieces than this keep them in a piece list chunk.
pub const INLINE_PIECES: usize = 32;

/// What a scan starts from.
#[derive(Debug)]
pub struct ScanInput<'a> {
    /// The directory to read.
    pub source: &'a Path,
    /// The previous run's entries by path.
    pub previous: HashMap<String, Entry>,
    /// Whether every file is read.
    pub full: bool,
    /// The chunks the store already has.
    pub known: &'a HashSet<ChunkId>,
    /// Chunk sizes.
    pub sizes: ChunkSizes,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// The top directory.
    pub root: Meta,
    /// Every entry.
    pub entries: Vec<Entry>,
    /// Bytes read from files.
    pub bytes_scanned: u64,
    /// Chunks handed to the sink (new to the store).
    pub chunks_new: u64,
    /// Plain bytes of those chunks.
    pub bytes_new: u64,
    /// Chunks of files read that the store (or this run) already had.
    pub chunks_reused: u64,
    /// Files added or whose contents changed.
    pub files_changed: u64,
    /// Files in the tree.
    pub files: u64,
    /// Bytes of every file in the tree.
    pub bytes_total: u64,
    /// Paths skipped because they are sockets, FIFOs or devices.
    pub skipped: Vec<String>,
}

/// Where new chunks go; an error stops the scan.
pub type Sink<'a> = dyn FnMut(ChunkId, Vec<u8>) -> Result<(), TransferError> + 'a;

/// Reads the tree at `input.source`.
pub fn scan(
    input: ScanInput<'_>,
    sink: &mut Sink<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<Scanned, TransferError> {
    let meta = std::fs::symlink_metadata(input.source)
        .map_err(|e| TransferError::io("read", input.source, e))?;
    if !meta.is_dir() {
        return Err(TransferError::Invalid(format!(
            "source {} is not a directory",
            input.source.display()
        )));
    }
    let mut scanner = Scanner {
        input: &input,
        sink,
        progress,
        sent: HashSet::new(),
        links: HashMap::new(),
        out: Scanned {
            root: Meta {
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime_ns: mtime_ns(&meta),
            },
            ..Scanned::default()
        },
    };
    scanner.dir(input.source, "")?;
    Ok(scanner.out)
}

/// How much of the next file is read ahead while this one is chunked.
const PREFETCH_BYTES: u64 = 16 * 1024 * 1024;

struct Scanner<'i, 's> {
    input: &'i ScanInput<'i>,
    sink: &'s mut Sink<'s>,
    progress: &'s mut dyn FnMut(u64),
    sent: HashSet<ChunkId>,
    links: HashMap<(u64, u64), String>,
    out: Scanned,
}

impl Scanner<'_, '_> {
    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<(), TransferError> {
        let mut children: Vec<(String, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| TransferError::io("list", dir, e))? {
            let entry = entry.map_err(|e| TransferError::io("list", dir, e))?;
            let name = entry.file_name().into_string().map_err(|name| {
                TransferError::Invalid(format!(
                    "cannot store {}: its name is not UTF-8",
                    dir.join(name).display()
                ))
            })?;
            children.push((name, entry.path()));
        }
        children.sort();
        let relative = |name: &str| {
            if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") }
        };
        for i in 0..children.len() {
            if let Some((name, next)) = children.get(i + 1) {
                self.prefetch(next, &relative(name));
            }
            let (name, path) = &children[i];
            self.entry(path, relative(name))?;
        }
        Ok(())
    }

    /// Asks the kernel to start reading the start of `path` if this run will read it, so the
    /// disk works while the CPU chunks the file before it. Only a hint: failures are ignored.
    fn prefetch(&self, path: &Path, relative: &str) {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        if !meta.is_file() || meta.len() == 0 {
            return;
        }
        let now = Stat { size: meta.size(), mtime_ns: mtime_ns(&meta), inode: meta.ino() };
        let before = self
            .input
            .previous
            .get(relative)
            .filter(|p| p.kind == EntryKind::File && p.hard_link_to.is_none())
            .map(|p| Stat { size: p.size, mtime_ns: p.mtime_ns, inode: p.inode });
        if !plan::must_read(before, now, self.input.full) {
            return;
        }
        if let Ok(file) = File::open(path) {
            let len = std::num::NonZeroU64::new(meta.len().min(PREFETCH_BYTES));
            let _ = rustix::fs::fadvise(&file, 0, len, rustix::fs::Advice::WillNeed);
        }
    }

    fn entry(&mut self, path: &Path, relative: String) -> Result<(), TransferError> {
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| TransferError::io("read", path, e))?;
        let kind = meta.file_type();
        let mut entry = Entry {
            path: relative.clone(),
            kind: EntryKind::File,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: 0,
            mtime_ns: mtime_ns(&meta),
            inode: meta.ino(),
            hard_link_to: None,
            target: None,
            pieces: Vec::new(),
            piece_list: None,
        };
        if kind.is_dir() {
            entry.kind = EntryKind::Dir;
            self.out.entries.push(entry);
            return self.dir(path, &relative);
        }
        if kind.is_symlink() {
            let target = std::fs::read_link(path)
                .map_err(|e| TransferError::io("read the link", path, e))?;
            let target = target.into_os_string().into_string().map_err(|_| {
                TransferError::Invalid(format!(
                    "cannot store {}: its link target is not UTF-8",
                    path.display()
                ))
            })?;
            entry.kind = EntryKind::Symlink;
            entry.target = Some(target);
            self.out.entries.push(entry);
            return Ok(());
        }
        if kind.is_fifo() || kind.is_socket() || kind.is_block_device() || kind.is_char_device() {
            self.out.skipped.push(relative);
            return Ok(());
        }
        self.out.files += 1;
        let previous = self.input.previous.get(&relative).filter(|p| p.kind == EntryKind::File);
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                entry.hard_link_to = Some(first.clone());
                entry.size = meta.size();
                if previous.is_none_or(|p| p.hard_link_to.as_deref() != Some(first)) {
                    self.out.files_changed += 1;
                }
                self.out.entries.push(entry);
                return Ok(());
            }
            self.links.insert((meta.dev(), meta.ino()), relative.clone());
        }
        self.out.bytes_total += meta.size();
        let now = Stat { size: meta.size(), mtime_ns: entry.mtime_ns, inode: meta.ino() };
        let before = previous.filter(|p| p.hard_link_to.is_none()).map(|p| Stat {
            size: p.size,
            mtime_ns: p.mtime_ns,
            inode: p.inode,
        });
        if !plan::must_read(before, now, self.input.full)
            && let Some(p) = previous
        {
            entry.size = p.size;
            entry.pieces = p.pieces.clone();
            entry.piece_list = p.piece_list.clone();
            self.out.entries.push(entry);
            return Ok(());
        }
        let pieces = self.read(path)?;
        entry.size = pieces.iter().map(Piece::len).sum();
        if pieces.len() > INLINE_PIECES {
            let list = serde_json::to_vec(&pieces).unwrap_or_default();
            let id = ChunkId::of(&list);
            self.offer(&id, &list)?;
            entry.piece_list = Some(id);
        } else {
            entry.pieces = pieces;
        }
        if previous.is_none_or(|p| p.hard_link_to.is_some() || !p.same_contents(&entry)) {
            self.out.files_changed += 1;
        }
        self.out.entries.push(entry);
        Ok(())
    }

    /// Sends a chunk unless the store or this run already has it; says whether it was new.
    /// (Only a new chunk is copied out of the read buffer.)
    fn offer(&mut self, id: &ChunkId, data: &[u8]) -> Result<bool, TransferError> {
        if self.input.known.contains(id) || self.sent.contains(id) {
            return Ok(false);
        }
        self.sent.insert(id.clone());
        self.out.chunks_new += 1;
        self.out.bytes_new += data.len() as u64;
        (self.sink)(id.clone(), data.to_vec())?;
        Ok(true)
    }

    fn read(&mut self, path: &Path) -> Result<Vec<Piece>, TransferError> {
        let file = File::open(path).map_err(|e| TransferError::io("open", path, e))?;
        let mut pieces: Vec<Piece> = Vec::new();
        let mut chunker = chunk::Chunker::new(file, self.input.sizes);
        while let Some(next) = chunker.next_chunk() {
            let (_, data) = next.map_err(|e| {
                TransferError::io("read", path, std::io::Error::other(e.to_string()))
            })?;
            let len = data.len() as u64;
            self.out.bytes_scanned += len;
            (self.progress)(len);
            if data.iter().all(|b| *b == 0) {
                match pieces.last_mut() {
                    Some(Piece::Zero { zero }) => *zero += len,
                    _ => pieces.push(Piece::Zero { zero: len }),
                }
                continue;
            }
            let id = ChunkId::of(data);
            if !self.offer(&id, data)? {
                self.out.chunks_reused += 1;
            }
            pieces.push(Piece::Data { id, len: u32::try_from(len).unwrap_or(u32::MAX) });
        }
        Ok(pieces)
    }
}
