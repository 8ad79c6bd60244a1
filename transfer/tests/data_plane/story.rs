//! The done-means story, run against any store: an awkward tree survives push →
//! change 1 % → push → restore byte for byte, a restore over the previous one reuses what did
//! not change, and a push with nothing changed stores almost nothing.

use std::path::Path;
use std::sync::Arc;

use avocet_transfer::push::{self, PushOptions, PushReport};
use avocet_transfer::repo::Repository;
use avocet_transfer::restore::{self, RestoreReport};
use avocet_transfer::seal::Key;
use avocet_transfer::store::ObjectStore;

use crate::tree::{self, Sizes};

/// The key every story uses.
pub(crate) fn key() -> Key {
    Key::derive(b"a test key of at least thirty-two bytes").expect("long enough")
}

/// Pushes `source` as the next run of `volume`.
pub(crate) async fn push_dir(repo: &Repository, source: &Path, volume: &str) -> PushReport {
    push::push(repo, source, &PushOptions::new(volume), Arc::default()).await.expect("push")
}

/// Restores run `run` (the newest when `None`) of `volume` into `target`.
pub(crate) async fn restore_dir(
    repo: &Repository,
    volume: &str,
    run: Option<u64>,
    target: &Path,
) -> RestoreReport {
    restore::restore(repo, volume, run, target, Arc::default()).await.expect("restore")
}

/// Runs the story with a big file of `big` bytes.
pub(crate) async fn run(store: Arc<dyn ObjectStore>, big: usize) {
    let work = tempfile::tempdir().expect("work dir");
    let src = work.path().join("src");
    tree::build(&src, Sizes { big, sparse: 64 * 1024 * 1024 });
    let repo = Repository::open(store, key(), true).await.expect("open");

    let first = push_dir(&repo, &src, "data").await;
    assert_eq!((first.run, first.full), (1, true), "{first:?}");
    assert_eq!(first.files_changed, first.files, "every file is new: {first:?}");
    assert!(first.skipped.is_empty());
    let snapshot = work.path().join("snapshot-1");
    tree::copy(&src, &snapshot);

    let tree_bytes = first.bytes_total;
    let regions = (tree_bytes / 100 / (64 * 1024)).max(1);
    let changed = tree::change(&src, regions, 1);
    let second = push_dir(&repo, &src, "data").await;
    assert_eq!((second.run, second.full), (2, false), "{second:?}");
    assert_eq!(second.files_changed, 3, "big.bin, config.yaml and the new file: {second:?}");
    let budget = changed * 3 / 2 + tree_bytes / 200;
    assert!(
        second.bytes_uploaded <= budget,
        "{} bytes sent for {changed} changed bytes of {tree_bytes} (budget {budget}): {second:?}",
        second.bytes_uploaded
    );
    assert!(second.bytes_scanned < tree_bytes, "unchanged files are not read: {second:?}");

    let fresh = work.path().join("fresh/data");
    std::fs::create_dir(work.path().join("fresh")).expect("mkdir");
    let restored = restore_dir(&repo, "data", None, &fresh).await;
    assert_eq!(restored.run, 2);
    tree::assert_same(&src, &fresh);
    assert!(
        tree::allocated(&fresh.join("sparse.img"))
            <= tree::allocated(&src.join("sparse.img")) + 1024 * 1024,
        "the sparse file stays sparse"
    );

    let standby = work.path().join("standby/data");
    std::fs::create_dir(work.path().join("standby")).expect("mkdir");
    let older = restore_dir(&repo, "data", Some(1), &standby).await;
    assert_eq!(older.run, 1);
    tree::assert_same(&snapshot, &standby);
    let newer = restore_dir(&repo, "data", None, &standby).await;
    tree::assert_same(&src, &standby);
    assert!(newer.files_reused >= 40, "unchanged files are kept: {newer:?}");
    assert!(
        newer.bytes_downloaded <= changed * 3 + 1024 * 1024,
        "only what changed is fetched ({changed} changed): {newer:?}"
    );

    let third = push_dir(&repo, &src, "data").await;
    assert_eq!(
        (third.files_changed, third.chunks_new, third.bytes_scanned),
        (0, 0, 0),
        "{third:?}"
    );
    assert!(third.bytes_uploaded < 64 * 1024, "only a manifest: {third:?}");
}

/// Two pushes of one volume that both read run 1 as the latest (a worker whose lease lapsed,
/// still pushing beside the one that holds it now): each writes a run of its own, the later
/// one taking the next free number, and neither replaces the other's manifest.
pub(crate) async fn racing_pushes_keep_their_own_runs(store: Arc<dyn ObjectStore>) {
    let work = tempfile::tempdir().expect("work dir");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("f"), b"one").expect("f");
    let repo = Repository::open(store.clone(), key(), true).await.expect("open");
    assert_eq!(push_dir(&repo, &src, "data").await.run, 1);

    let mut first = repo.manifest("data", 1).await.expect("run 1");
    first.run = 2;
    first.entries.clear();
    repo.put_manifest(&mut first).await.expect("the first to write run 2");
    assert_eq!(first.run, 2);
    let mut second = repo.manifest("data", 1).await.expect("run 1");
    second.run = 2;
    repo.put_manifest(&mut second).await.expect("the second takes the next run");
    assert_eq!(second.run, 3, "run 2 was taken");
    assert_eq!(repo.runs("data").await.expect("runs"), [1, 2, 3]);
    assert!(repo.manifest("data", 2).await.expect("run 2").entries.is_empty(), "run 2 kept");
    assert_eq!(repo.manifest("data", 3).await.expect("run 3").entries.len(), 1);
    // A push after both continues from the newest.
    std::fs::write(src.join("f"), b"two").expect("f");
    assert_eq!(push_dir(&repo, &src, "data").await.run, 4);

    // The store's create-only put.
    assert!(store.put_new("race/key", b"a".to_vec()).await.expect("create"));
    assert!(!store.put_new("race/key", b"b".to_vec()).await.expect("create again"));
    assert_eq!(store.get("race/key").await.expect("get"), Some(b"a".to_vec()));
}
