//! A push: one run of one volume into a repository. The scan runs on a blocking thread and
//! hands new chunks over a bounded channel; they are sealed on blocking threads, gathered into
//! packs of about [`PushOptions::pack_size`] bytes, and each pack is stored, then its index, by
//! tasks that run while the scan goes on. The manifest goes last, after a flush, so its
//! presence means every chunk it names is stored. A run killed at any point leaves only packs
//! whose chunks the next run's index load either finds or sends again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::chunk::{ChunkId, ChunkSizes};
use crate::error::TransferError;
use crate::layout::{self, Located};
use crate::manifest::{FORMAT, Manifest};
use crate::plan::{self, Mode};
use crate::repo::Repository;
use crate::seal;
use crate::stopwatch::Stopwatch;
use crate::volume::scan::{self, ScanInput};

/// How to run a push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The volume's name in the store.
    pub volume: String,
    /// Read every file, whatever the run number says.
    pub full: bool,
    /// The pair's transfer mode (which runs are full).
    pub mode: Mode,
    /// Chunk sizes.
    pub sizes: ChunkSizes,
    /// Packs are closed at this many bytes.
    pub pack_size: usize,
    /// Packs being stored at once.
    pub uploads: usize,
}

impl PushOptions {
    /// Defaults for `volume`.
    pub fn new(volume: &str) -> PushOptions {
        PushOptions {
            volume: volume.to_owned(),
            full: false,
            mode: Mode::Default,
            sizes: ChunkSizes::default(),
            pack_size: 8 * 1024 * 1024,
            uploads: 4,
        }
    }
}

/// What a push did (the fields of `avocetctl snapshot push -o json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// The volume.
    pub volume: String,
    /// The run written.
    pub run: u64,
    /// Whether every file was read.
    pub full: bool,
    /// Bytes read from files.
    pub bytes_scanned: u64,
    /// Bytes written to the store (packs, indexes, the manifest).
    pub bytes_uploaded: u64,
    /// Chunks the store did not have.
    pub chunks_new: u64,
    /// Chunks of files read that the store already had.
    pub chunks_reused: u64,
    /// Files added or whose contents changed.
    pub files_changed: u64,
    /// Files in the volume.
    pub files: u64,
    /// Bytes of every file in the volume.
    pub bytes_total: u64,
    /// Sockets, FIFOs and devices left out.
    pub skipped: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Counters a progress display reads while a push runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read so far.
    pub scanned: AtomicU64,
    /// Bytes stored so far.
    pub uploaded: AtomicU64,
}

/// Pushes `source` as the next run of `options.volume`.
pub async fn push(
    repo: &Repository,
    source: &Path,
    options: &PushOptions,
    progress: Arc<Progress>,
) -> Result<PushReport, TransferError> {
    let started = Stopwatch::start();
    layout::check_volume_name(&options.volume).map_err(TransferError::Invalid)?;
    if !source.is_dir() {
        return Err(TransferError::Invalid(format!(
            "source {} is not a directory",
            source.display()
        )));
    }
    let previous = repo.latest(&options.volume).await?;
    let run = previous.as_ref().map_or(1, |m| m.run + 1);
    let full = plan::is_full(run, options.mode, options.full);
    let index = repo.load_index().await?;
    let known: HashSet<ChunkId> = index.into_keys().collect();
    let previous: HashMap<String, _> = previous
        .map(|m| m.entries.into_iter().map(|e| (e.path.clone(), e)).collect())
        .unwrap_or_default();

    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(8);
    let source_owned = source.to_path_buf();
    let sizes = options.sizes;
    let scan_progress = progress.clone();
    let scanner = tokio::task::spawn_blocking(move || {
        let input = ScanInput { source: &source_owned, previous, full, known: &known, sizes };
        let stopped = || TransferError::Stopped("the uploads stopped".to_owned());
        let mut batch = Batch::default();
        let mut sink = |id: ChunkId, data: Vec<u8>| {
            batch.bytes += data.len();
            batch.chunks.push((id, data));
            if batch.bytes >= BATCH_BYTES {
                tx.blocking_send(std::mem::take(&mut batch)).map_err(|_| stopped())?;
            }
            Ok(())
        };
        let mut report = |n: u64| {
            scan_progress.scanned.fetch_add(n, Ordering::Relaxed);
        };
        let scanned = scan::scan(input, &mut sink, &mut report)?;
        if !batch.chunks.is_empty() {
            tx.blocking_send(batch).map_err(|_| stopped())?;
        }
        Ok::<_, TransferError>(scanned)
    });
    let uploaded = upload(repo, rx, options, &progress).await;
    let scanned =
        scanner.await.map_err(|e| TransferError::Stopped(format!("the scan panicked: {e}")))?;
    let mut bytes_uploaded = uploaded?;
    let scanned = scanned?;

    let mut manifest = Manifest {
        format: FORMAT,
        volume: options.volume.clone(),
        run,
        full,
        root: scanned.root,
        entries: scanned.entries,
    };
    repo.store().flush().await?;
    bytes_uploaded += repo.put_manifest(&mut manifest).await?;
    repo.store().flush().await?;
    Ok(PushReport {
        volume: options.volume.clone(),
        run: manifest.run,
        full,
        bytes_scanned: scanned.bytes_scanned,
        bytes_uploaded,
        chunks_new: scanned.chunks_new,
        chunks_reused: scanned.chunks_reused,
        files_changed: scanned.files_changed,
        files: scanned.files,
        bytes_total: scanned.bytes_total,
        skipped: scanned.skipped,
        seconds: started.seconds(),
    })
}

/// New chunks travel from the scan to the sealers in batches of about this many bytes, so a
/// hand-over between threads costs little next to the work it carries.
const BATCH_BYTES: usize = 1024 * 1024;

/// New chunks on their way to be sealed.
#[derive(Debug, Default)]
struct Batch {
    chunks: Vec<(ChunkId, Vec<u8>)>,
    bytes: usize,
}

/// Seals what arrives, packs it, and stores the packs; returns the bytes stored.
async fn upload(
    repo: &Repository,
    rx: tokio::sync::mpsc::Receiver<Batch>,
    options: &PushOptions,
    progress: &Arc<Progress>,
) -> Result<u64, TransferError> {
    let key_repo = repo.clone();
    let sealed =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
            .map(move |batch: Batch| {
                let repo = key_repo.clone();
                tokio::task::spawn_blocking(move || {
                    batch
                        .chunks
                        .into_iter()
                        .map(|(id, data)| Ok((seal::seal(repo.key(), &id, &data)?, id)))
                        .collect::<Result<Vec<(Vec<u8>, ChunkId)>, TransferError>>()
                })
            })
            .buffer_unordered(3);
    let mut sealed = std::pin::pin!(sealed);
    let mut pack: Vec<u8> = Vec::with_capacity(options.pack_size + 512 * 1024);
    let mut located: Vec<Located> = Vec::new();
    let mut tasks: JoinSet<Result<u64, TransferError>> = JoinSet::new();
    let mut total = 0;
    let store_pack = |pack: Vec<u8>, located: Vec<Located>, tasks: &mut JoinSet<_>| {
        let repo = repo.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let written = repo.put_pack(pack, located).await?;
            progress.uploaded.fetch_add(written, Ordering::Relaxed);
            Ok(written)
        });
    };
    while let Some(next) = sealed.next().await {
        let batch =
            next.map_err(|e| TransferError::Stopped(format!("sealing panicked: {e}")))??;
        for (bytes, id) in batch {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            located.push(Located { id, offset: pack.len() as u64, len });
            pack.extend_from_slice(&bytes);
        }
        if pack.len() >= options.pack_size {
            while tasks.len() >= options.uploads.max(1) {
                total += joined(tasks.join_next().await)?;
            }
            let full =
                std::mem::replace(&mut pack, Vec::with_capacity(options.pack_size + 512 * 1024));
            store_pack(full, std::mem::take(&mut located), &mut tasks);
        }
    }
    if !located.is_empty() {
        store_pack(pack, located, &mut tasks);
    }
    while let Some(done) = tasks.join_next().await {
        total += joined(Some(done))?;
    }
    Ok(total)
}

fn joined(
    done: Option<Result<Result<u64, TransferError>, tokio::task::JoinError>>,
) -> Result<u64, TransferError> {
    match done {
        None => Ok(0),
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(TransferError::Stopped(format!("a pack upload panicked: {e}"))),
    }
}
