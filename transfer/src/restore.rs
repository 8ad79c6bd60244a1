//! A restore: one run of one volume out of a repository into a target directory. Everything is
//! checked before the target's neighbourhood is touched (the manifest opens, every piece list
//! reads, every chunk is in the index, every file's pieces add up to its size); the tree is
//! built beside the target and switched in at once (see [`volume::write`](mod@crate::volume::write)). Chunks are
//! fetched pack by pack, adjacent ones in one ranged read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::chunk::ChunkId;
use crate::error::TransferError;
use crate::layout;
use crate::manifest::{EntryKind, Manifest, Piece};
use crate::repo::{Index, Location, OBJECT_MAX, Repository};
use crate::seal;
use crate::stopwatch::Stopwatch;
use crate::volume::write::{self, Places, RestoreState};

/// Packs read at once.
const FETCHES: usize = 4;
/// Chunks of one pack closer than this are read in one request.
const GAP_MAX: u64 = 1024 * 1024;

/// What a restore did (the fields of `avocetctl snapshot restore -o json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// The volume.
    pub volume: String,
    /// The run restored.
    pub run: u64,
    /// Whether that run read every file.
    pub full: bool,
    /// Files in the run.
    pub files: u64,
    /// Files written.
    pub files_written: u64,
    /// Files kept from the previous restore (hard-linked, not copied).
    pub files_reused: u64,
    /// Bytes read from the store.
    pub bytes_downloaded: u64,
    /// Chunks read from the store.
    pub chunks_downloaded: u64,
    /// Bytes copied from unchanged parts of the previous restore instead of downloaded.
    pub bytes_reused: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Counters a progress display reads while a restore runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from the store so far.
    pub downloaded: AtomicU64,
}

/// Restores run `run` (the newest when `None`) of `volume` into `target`.
pub async fn restore(
    repo: &Repository,
    volume: &str,
    run: Option<u64>,
    target: &Path,
    progress: Arc<Progress>,
) -> Result<RestoreReport, TransferError> {
    let started = Stopwatch::start();
    layout::check_volume_name(volume).map_err(TransferError::Invalid)?;
    let places = Places::of(target)?;
    let manifest = match run {
        Some(run) => repo.manifest(volume, run).await?,
        None => repo.latest(volume).await?.ok_or_else(|| {
            TransferError::Invalid(format!("the store holds no run of volume {volume:?}"))
        })?,
    };
    let index = Arc::new(repo.load_index().await?);
    let pieces = resolve(repo, &index, &manifest).await?;
    check(&manifest, &pieces, &index)?;

    let recovered = places.clone();
    blocking(move || recovered.recover()).await?;
    let old = match RestoreState::read(&places) {
        Some(state) if state.volume == volume && state.store == repo.id() => {
            match repo.manifest(volume, state.run).await {
                Ok(old) => match resolve(repo, &index, &old).await {
                    Ok(old_pieces) => Some((state, old, old_pieces)),
                    Err(_) => None,
                },
                Err(_) => None,
            }
        }
        _ => None,
    };

    let manifest = Arc::new(manifest);
    let outcome = materialize(repo, &places, manifest.clone(), pieces, old, index, progress).await;
    let (built, downloads) = match outcome {
        Ok(done) => done,
        Err(error) => {
            // Nothing of a failed restore stays behind: the staging tree holds hard links to
            // the live target's files, which must look exactly as before.
            let staging = places.staging.clone();
            let _ = blocking(move || {
                std::fs::remove_dir_all(&staging).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(TransferError::io("remove", &staging, e)),
                })
            })
            .await;
            return Err(error);
        }
    };
    Ok(RestoreReport {
        volume: volume.to_owned(),
        run: manifest.run,
        full: manifest.full,
        files: manifest.entries.iter().filter(|e| e.kind == EntryKind::File).count() as u64,
        files_written: built.files_written,
        files_reused: built.files_reused,
        bytes_downloaded: downloads.iter().map(|d| d.0).sum(),
        chunks_downloaded: downloads.iter().map(|d| d.1).sum(),
        bytes_reused: built.bytes_local,
        seconds: started.seconds(),
    })
}

/// The previous restore's record, its manifest and its pieces.
type Old = Option<(RestoreState, Manifest, Vec<Vec<Piece>>)>;

/// Builds the staging tree, fetches what is missing, and switches it in; returns what the
/// build did and (bytes, chunks) per pack read.
async fn materialize(
    repo: &Repository,
    places: &Places,
    manifest: Arc<Manifest>,
    pieces: Vec<Vec<Piece>>,
    old: Old,
    index: Arc<Index>,
    progress: Arc<Progress>,
) -> Result<(write::Built, Vec<(u64, u64)>), TransferError> {
    let pieces = Arc::new(pieces);
    let (p, m, pc) = (places.clone(), manifest.clone(), pieces.clone());
    let mut built = blocking(move || {
        let trusted = match &old {
            Some((state, old, old_pieces)) => write::trusted_files(&p, state, old, old_pieces),
            None => HashMap::new(),
        };
        write::build(&p, &m, &pc, &trusted)
    })
    .await?;

    let mut by_pack: HashMap<Arc<str>, Vec<(ChunkId, Location)>> = HashMap::new();
    for id in built.needed.chunks.keys() {
        if let Some(at) = index.get(id) {
            by_pack.entry(at.pack.clone()).or_default().push((id.clone(), at.clone()));
        }
    }
    let needed = Arc::new(std::mem::take(&mut built.needed.chunks));
    let fetches: Vec<_> = by_pack
        .into_iter()
        .map(|(pack, chunks)| {
            fetch_pack(repo.clone(), pack, chunks, needed.clone(), progress.clone())
        })
        .collect();
    let downloads: Vec<(u64, u64)> =
        futures::stream::iter(fetches).buffer_unordered(FETCHES).try_collect().await?;

    let (p, m, store) = (places.clone(), manifest.clone(), repo.id().to_owned());
    let reused = built.reused.clone();
    blocking(move || {
        write::finish(&p, &m, &reused)?;
        write::switch(&p, &m, &store)
    })
    .await?;
    Ok((built, downloads))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| TransferError::Stopped(format!("the restore panicked: {e}")))?
}

/// Every file entry's pieces, reading piece lists (in entry order; empty for the rest).
/// (Owned clones in the stream keep the future `Send` for callers that spawn it.)
async fn resolve(
    repo: &Repository,
    index: &Arc<Index>,
    manifest: &Manifest,
) -> Result<Vec<Vec<Piece>>, TransferError> {
    let jobs: Vec<_> = manifest
        .entries
        .iter()
        .map(|entry| {
            let (repo, index, entry) = (repo.clone(), index.clone(), entry.clone());
            async move {
                if entry.kind == EntryKind::File && entry.hard_link_to.is_none() {
                    repo.pieces(&index, &entry).await
                } else {
                    Ok(Vec::new())
                }
            }
        })
        .collect();
    futures::stream::iter(jobs).buffered(16).try_collect().await
}

/// Refuses a manifest that cannot be restored whole, before anything is written.
fn check(manifest: &Manifest, pieces: &[Vec<Piece>], index: &Index) -> Result<(), TransferError> {
    let mut seen: HashMap<&str, EntryKind> = HashMap::new();
    for (entry, pieces) in manifest.entries.iter().zip(pieces) {
        let parent = entry.path.rsplit_once('/').map(|(p, _)| p);
        if let Some(parent) = parent
            && seen.get(parent) != Some(&EntryKind::Dir)
        {
            return Err(TransferError::Corrupt(format!(
                "{:?} comes before its directory in the manifest",
                entry.path
            )));
        }
        if let Some(first) = &entry.hard_link_to
            && seen.get(first.as_str()) != Some(&EntryKind::File)
        {
            return Err(TransferError::Corrupt(format!(
                "{:?} links to {first:?}, which is not an earlier file",
                entry.path
            )));
        }
        if entry.kind == EntryKind::File && entry.hard_link_to.is_none() {
            let total = pieces.iter().try_fold(0u64, |sum, p| sum.checked_add(p.len()));
            if total != Some(entry.size) {
                return Err(TransferError::Corrupt(format!(
                    "{:?} is {} bytes but its pieces hold {}",
                    entry.path,
                    entry.size,
                    total.map_or_else(|| "more than 2^64".to_owned(), |t| t.to_string())
                )));
            }
            for piece in pieces {
                if let Piece::Data { id, .. } = piece
                    && !index.contains_key(id)
                {
                    return Err(TransferError::Corrupt(format!(
                        "{:?} needs chunk {id}, which the store does not have",
                        entry.path
                    )));
                }
            }
        }
        if seen.insert(&entry.path, entry.kind).is_some() {
            return Err(TransferError::Corrupt(format!("{:?} appears twice", entry.path)));
        }
    }
    Ok(())
}

/// Reads the needed chunks of one pack (neighbours in one ranged read) and writes them out;
/// returns (bytes read, chunks read).
async fn fetch_pack(
    repo: Repository,
    pack: Arc<str>,
    mut chunks: Vec<(ChunkId, Location)>,
    needed: Arc<HashMap<ChunkId, Vec<(PathBuf, u64)>>>,
    progress: Arc<Progress>,
) -> Result<(u64, u64), TransferError> {
    chunks.sort_by_key(|(_, at)| at.offset);
    let key = layout::pack_key(&pack);
    let mut downloaded = 0;
    let mut start = 0;
    while start < chunks.len() {
        let mut end = start + 1;
        while end < chunks.len() {
            let prev = &chunks[end - 1].1;
            let reach = prev.offset.saturating_add(u64::from(prev.len)).saturating_add(GAP_MAX);
            if chunks[end].1.offset > reach {
                break;
            }
            end += 1;
        }
        let first = chunks[start].1.offset;
        let last = &chunks[end - 1].1;
        let span = last.offset.saturating_add(u64::from(last.len)).saturating_sub(first);
        let bytes = repo.store().get_range(&key, first, span).await?;
        downloaded += span;
        progress.downloaded.fetch_add(span, Ordering::Relaxed);
        let group: Vec<(ChunkId, Location)> = chunks[start..end].to_vec();
        let (repo2, needed2) = (repo.clone(), needed.clone());
        blocking(move || {
            for (id, at) in &group {
                let from = usize::try_from(at.offset - first).unwrap_or(usize::MAX);
                let to = from.saturating_add(at.len as usize);
                let sealed = bytes.get(from..to).ok_or_else(|| {
                    TransferError::Corrupt(format!("pack {} is shorter than its index", at.pack))
                })?;
                let plain = seal::open(repo2.key(), id, sealed, OBJECT_MAX)?;
                write::place(&plain, needed2.get(id).map_or(&[][..], Vec::as_slice))?;
            }
            Ok(())
        })
        .await?;
        start = end;
    }
    Ok((downloaded, chunks.len() as u64))
}
