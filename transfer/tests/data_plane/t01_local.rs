//! Through the local-directory store: the story with a 200 MiB file, a push killed part-way
//! resumes without resending what was stored, a restore that fails part-way leaves the
//! previous snapshot as it was, a wrong key is refused before any work, and full runs come
//! when the mode says.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use avocet_transfer::TransferError;
use avocet_transfer::plan::Mode;
use avocet_transfer::push::{self, PushOptions};
use avocet_transfer::repo::Repository;
use avocet_transfer::restore;
use avocet_transfer::seal::Key;
use avocet_transfer::store::local::LocalStore;
use avocet_transfer::store::{ObjectStore, StoreError, StoreFuture};

use crate::story::{self, key, push_dir, restore_dir};
use crate::tree::{self, Sizes};

fn local(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
    Arc::new(LocalStore::new(dir.to_path_buf()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_with_a_200_mib_file_survives_push_change_push_restore_locally() {
    let store = tempfile::tempdir().expect("store");
    story::run(local(store.path()), 200 * 1024 * 1024).await;
}

/// A store that fails puts of packs after `packs_ok` of them, or ranged reads after
/// `ranges_ok`: a run killed part-way.
#[derive(Debug)]
struct Failing {
    inner: Arc<dyn ObjectStore>,
    packs_ok: usize,
    ranges_ok: usize,
    packs: AtomicUsize,
    ranges: AtomicUsize,
}

impl Failing {
    fn new(inner: Arc<dyn ObjectStore>, packs_ok: usize, ranges_ok: usize) -> Failing {
        Failing {
            inner,
            packs_ok,
            ranges_ok,
            packs: AtomicUsize::new(0),
            ranges: AtomicUsize::new(0),
        }
    }

    fn fail(key: &str) -> StoreError {
        StoreError::Op {
            store: "failing".to_owned(),
            op: "put",
            key: key.to_owned(),
            reason: "killed".to_owned(),
        }
    }
}

impl ObjectStore for Failing {
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, ()> {
        if key.starts_with("packs/") && self.packs.fetch_add(1, Ordering::SeqCst) >= self.packs_ok {
            return Box::pin(async move { Err(Failing::fail(key)) });
        }
        self.inner.put(key, body)
    }
    fn put_new<'a>(&'a self, key: &'a str, body: Vec<u8>) -> StoreFuture<'a, bool> {
        self.inner.put_new(key, body)
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn get_range<'a>(&'a self, key: &'a str, offset: u64, len: u64) -> StoreFuture<'a, Vec<u8>> {
        if self.ranges.fetch_add(1, Ordering::SeqCst) >= self.ranges_ok {
            return Box::pin(async move { Err(Failing::fail(key)) });
        }
        self.inner.get_range(key, offset, len)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.inner.delete(key)
    }
    fn flush(&self) -> StoreFuture<'_, ()> {
        self.inner.flush()
    }
}

fn small_tree(root: &std::path::Path) {
    tree::build(root, Sizes { big: 24 * 1024 * 1024, sparse: 4 * 1024 * 1024 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_killed_part_way_resends_only_what_the_store_lacks() {
    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("src");
    small_tree(&src);
    let mut options = PushOptions::new("data");
    options.pack_size = 1024 * 1024;
    options.uploads = 1;

    let reference = local(&work.path().join("reference"));
    let repo = Repository::open(reference, key(), true).await.expect("open");
    let whole = push::push(&repo, &src, &options, Arc::default()).await.expect("push");

    let real = local(&work.path().join("store"));
    let failing: Arc<dyn ObjectStore> = Arc::new(Failing::new(real.clone(), 5, usize::MAX));
    let repo = Repository::open(failing, key(), true).await.expect("open");
    let err = push::push(&repo, &src, &options, Arc::default()).await.expect_err("killed");
    assert!(err.to_string().contains("killed"), "{err}");
    let repo = Repository::open(real, key(), true).await.expect("open");
    assert!(repo.runs("data").await.expect("runs").is_empty(), "no manifest for a killed run");
    let stored = repo.load_index().await.expect("index").len() as u64;
    assert!(stored > 0, "some packs were stored before the kill");

    let resumed = push::push(&repo, &src, &options, Arc::default()).await.expect("resume");
    assert_eq!(resumed.run, 1);
    assert_eq!(resumed.chunks_new, whole.chunks_new - stored, "only what the store lacked");
    let out = work.path().join("out");
    restore_dir(&repo, "data", None, &out).await;
    tree::assert_same(&src, &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_part_way_leaves_the_previous_snapshot_intact() {
    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("src");
    small_tree(&src);
    let real = local(&work.path().join("store"));
    let repo = Repository::open(real.clone(), key(), true).await.expect("open");
    push_dir(&repo, &src, "data").await;
    let snapshot = work.path().join("snapshot");
    tree::copy(&src, &snapshot);
    let target = work.path().join("target");
    restore_dir(&repo, "data", None, &target).await;

    tree::change(&src, 40, 2);
    push_dir(&repo, &src, "data").await;
    let failing: Arc<dyn ObjectStore> = Arc::new(Failing::new(real.clone(), usize::MAX, 2));
    let broken = Repository::open(failing, key(), false).await.expect("open");
    let err =
        restore::restore(&broken, "data", None, &target, Arc::default()).await.expect_err("fails");
    assert!(err.to_string().contains("killed"), "{err}");
    tree::assert_same(&snapshot, &target);

    let report = restore_dir(&repo, "data", None, &target).await;
    tree::assert_same(&src, &target);
    assert!(report.files_reused > 0, "{report:?}");
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging") || n.contains("previous"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pushes_keep_their_own_runs_locally() {
    let store = tempfile::tempdir().expect("store");
    story::racing_pushes_keep_their_own_runs(local(store.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_an_empty_store_is_refused_before_any_work() {
    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("f"), b"x").expect("f");
    let store = local(&work.path().join("store"));
    let empty = Repository::open(store.clone(), key(), false).await.expect_err("empty");
    assert!(empty.to_string().contains("holds no Avocet data"), "{empty}");
    let repo = Repository::open(store.clone(), key(), true).await.expect("open");
    push_dir(&repo, &src, "data").await;
    let other = Key::derive(&[9; 32]).expect("key");
    let err = Repository::open(store, other, false).await.expect_err("wrong key");
    assert!(matches!(err, TransferError::WrongKey(_)), "{err}");
    assert!(err.to_string().contains("another key"), "{err}");
    let bad =
        push::push(&repo, &src, &PushOptions::new("a/b"), Arc::default()).await.expect_err("name");
    assert!(bad.to_string().contains("volume \"a/b\""), "{bad}");
    let missing = restore::restore(&repo, "nope", None, &work.path().join("t"), Arc::default())
        .await
        .expect_err("none");
    assert!(missing.to_string().contains("no run of volume \"nope\""), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_mode_reads_everything_every_seventh_run_and_disaster_recovery_never_again() {
    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("f"), tree::noise(300_000, 3)).expect("f");
    for (volume, mode, expected) in
        [("default", Mode::Default, vec![1, 8]), ("dr", Mode::DisasterRecovery, vec![1])]
    {
        let repo =
            Repository::open(local(&work.path().join(volume)), key(), true).await.expect("open");
        let mut options = PushOptions::new(volume);
        options.mode = mode;
        let mut full = Vec::new();
        for _ in 0..9 {
            let report = push::push(&repo, &src, &options, Arc::default()).await.expect("push");
            assert_eq!(report.bytes_scanned > 0, report.full, "{report:?}");
            assert_eq!(
                report.chunks_new > 0,
                report.run == 1,
                "a full run finds its chunks stored"
            );
            if report.full {
                full.push(report.run);
            }
        }
        assert_eq!(full, expected, "{volume}");
        options.full = true;
        let forced = push::push(&repo, &src, &options, Arc::default()).await.expect("push");
        assert!(forced.full && forced.files_changed == 0, "{forced:?}");
    }
}
