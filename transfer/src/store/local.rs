//! The local-directory store, the embedded default (like Portworx's internal object store): one
//! file per object under a root directory. A put writes a temporary file and renames it into
//! place, so a reader sees an object whole or not at all; each object and its name are synced
//! before the put returns, and `flush` syncs the file system too.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ObjectStore, StoreError, StoreFuture};

/// Marks a temporary file (never a key: keys have no `~`).
const TEMP_MARK: &str = "~tmp~";

/// A store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    counter: AtomicU64,
}

impl LocalStore {
    /// A store rooted at `root` (created on the first put).
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore { inner: Arc::new(Inner { root, counter: AtomicU64::new(0) }) }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let safe = !key.is_empty()
            && !key.contains(TEMP_MARK)
            && key.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
        if !safe {
            return Err(self.error("use", key, "not a valid key".to_owned()));
        }
        Ok(self.inner.root.join(key))
    }

    fn error(&self, op: &'static str, key: &str, reason: String) -> StoreError {
        StoreError::Op {
            store: format!("file://{}", self.inner.root.display()),
            op,
            key: key.to_owned(),
            reason,
        }
    }

    /// Runs blocking file work off the async threads, naming the key on failure.
    fn blocking<'a, T: Send + 'static>(
        &'a self,
        op: &'static str,
        key: &'a str,
        work: impl FnOnce(&LocalStore, PathBuf) -> io::Result<T> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let path = self.path(key)?;
            let store = self.clone();
            tokio::task::spawn_blocking(move || work(&store, path))
                .await
                .map_err(|e| self.error(op, key, e.to_string()))?
                .map_err(|e| self.error(op, key, e.to_string()))
        })
    }
}

/// Writes `body` to a temporary file beside `path`, synced; returns the file's path.
fn write_temp(store: &LocalStore, path: &Path, body: &[u8]) -> io::Result<PathBuf> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let n = store.inner.counter.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = parent.join(format!("{name}{TEMP_MARK}{}-{n}", std::process::id()));
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(body)?;
        file.sync_data()
    });
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

fn sync_parent(path: &Path) -> io::Result<()> {
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

fn write_new(store: &LocalStore, path: &Path, body: &[u8]) -> io::Result<()> {
    // Every object is on disk before its name is (and its name before `put` returns), so a
    // crash can never leave an index whose pack, or a manifest whose chunks, were lost; packs
    // go to disk while the run goes on rather than all at once in the final `flush`.
    let temp = write_temp(store, path, body)?;
    let result = std::fs::rename(&temp, path).and_then(|()| sync_parent(path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Moves a synced temporary file in at `path` unless a file is there, atomically
/// (`renameat2(RENAME_NOREPLACE)`, or a hard link, which never replaces its target either, on
/// a file system without it); returns whether it did.
fn create_new(store: &LocalStore, path: &Path, body: &[u8]) -> io::Result<bool> {
    let temp = write_temp(store, path, body)?;
    let moved = rustix::fs::renameat_with(
        rustix::fs::CWD,
        &temp,
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(io::Error::from)
    .or_else(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => Err(e),
        _ => std::fs::hard_link(&temp, path),
    });
    let _ = std::fs::remove_file(&temp);
    match moved {
        Ok(()) => sync_parent(path).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn walk(root: &Path, dir: &Path, prefix: &str, keys: &mut Vec<String>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, prefix, keys)?;
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else { continue };
        let key = relative.to_string_lossy().replace('\\', "/");
        if key.starts_with(prefix) && !key.contains(TEMP_MARK) {
            keys.push(key);
        }
    }
    Ok(())
}

impl ObjectStore for LocalStore {
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, ()> {
        self.blocking("put", key, move |store, path| write_new(store, &path, &body))
    }

    fn put_new<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, bool> {
        self.blocking("create", key, move |store, path| create_new(store, &path, &body))
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.blocking("get", key, |_, path| match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, offset: u64, len: u64) -> StoreFuture<'a, Vec<u8>> {
        self.blocking("read a range of", key, move |_, path| {
            let mut file = std::fs::File::open(path)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut bytes = Vec::new();
            file.take(len).read_to_end(&mut bytes)?;
            if (bytes.len() as u64) < len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the object is shorter"));
            }
            Ok(bytes)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let root = self.inner.root.clone();
            let owned = prefix.to_owned();
            tokio::task::spawn_blocking(move || {
                let dir = match owned.rfind('/') {
                    Some(i) => root.join(&owned[..i]),
                    None => root.clone(),
                };
                let mut keys = Vec::new();
                walk(&root, &dir, &owned, &mut keys).map(|()| keys)
            })
            .await
            .map_err(|e| self.error("list", prefix, e.to_string()))?
            .map_err(|e| self.error("list", prefix, e.to_string()))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.blocking("delete", key, |_, path| match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let root = self.inner.root.clone();
            tokio::task::spawn_blocking(move || {
                let dir = std::fs::File::open(&root)?;
                rustix::fs::syncfs(&dir).map_err(io::Error::from)
            })
            .await
            .map_err(|e| self.error("flush", "", e.to_string()))?
            .map_err(|e| self.error("flush", "", e.to_string()))
        })
    }
}
