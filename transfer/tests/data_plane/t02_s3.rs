//! Through a real S3 server (s3s-fs): the store's contract (paged listing, ranged and
//! multipart objects, a missing bucket), the story with a 200 MiB file, and S3 faults (503s,
//! stalls and resets) retried through a fault-injecting proxy.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avocet_transfer::repo::Repository;
use avocet_transfer::store::ObjectStore;
use avocet_transfer::store::s3::S3Store;
use futures::{StreamExt, TryStreamExt};

use crate::faulty::{self, Fault};
use crate::s3::S3Server;
use crate::story::{self, key, push_dir, restore_dir};
use crate::tree;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pushes_keep_their_own_runs_on_s3() {
    let server = S3Server::start();
    let store = S3Store::connect(server.options("racing", server.port)).await.expect("client");
    story::racing_pushes_keep_their_own_runs(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_keeps_its_contract_against_a_real_server() {
    let server = S3Server::start();
    let mut options = server.options("contract", server.port);
    options.prefix = "pair-1/avocet".to_owned();
    options.multipart_threshold = 6 * 1024 * 1024;
    options.part_size = 5 * 1024 * 1024;
    let store = S3Store::connect(options).await.expect("client");

    assert_eq!(store.get("missing").await.expect("get"), None, "a missing bucket reads as empty");
    assert!(store.list("").await.expect("list").is_empty());
    let big = tree::noise(12 * 1024 * 1024 + 7, 5);
    store.put("big/object", big.clone()).await.expect("multipart put creates the bucket");
    assert_eq!(store.get("big/object").await.expect("get"), Some(big.clone()));
    let range = store.get_range("big/object", 6_000_000, 1000).await.expect("range");
    assert_eq!(range, big[6_000_000..6_001_000]);
    let other = tree::noise(12 * 1024 * 1024 + 7, 6);
    assert!(!store.put_new("big/object", other).await.expect("multipart create-only put"));
    assert_eq!(store.get("big/object").await.expect("get"), Some(big.clone()), "kept");

    let keys: Vec<String> = (0..1005).map(|i| format!("many/{i:05}")).collect();
    futures::stream::iter(&keys)
        .map(|k| store.put(k, k.as_bytes().to_vec()))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("puts");
    let mut listed = store.list("many/").await.expect("paged list");
    listed.sort();
    assert_eq!(listed, keys, "more than one page of keys, under the prefix, without it");
    store.delete("many/00000").await.expect("delete");
    store.delete("many/00000").await.expect("deleting nothing is fine");
    assert_eq!(store.get("many/00000").await.expect("get"), None);
    store.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_with_a_200_mib_file_survives_push_change_push_restore_through_s3() {
    let server = S3Server::start();
    let store = S3Store::connect(server.options("story", server.port)).await.expect("client");
    story::run(Arc::new(store), 200 * 1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_503s_stalls_and_resets_are_retried_and_too_many_fail_with_the_key_named() {
    let server = S3Server::start();
    let (port, plan) = faulty::start(server.port).await;
    let mut options = server.options("faults", port);
    options.attempt_timeout = Duration::from_secs(1);
    let store: Arc<dyn ObjectStore> =
        Arc::new(S3Store::connect(options.clone()).await.expect("client"));

    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("src");
    for i in 0..20u64 {
        std::fs::write(src.join(format!("f{i}")), tree::noise(100_000, i)).expect("file");
    }
    let repo = Repository::open(store.clone(), key(), true).await.expect("open");
    plan.add([
        Fault::Unavailable,
        Fault::Reset,
        Fault::Stall(Duration::from_secs(3)),
        Fault::Unavailable,
        Fault::Reset,
    ]);
    let report = push_dir(&repo, &src, "data").await;
    assert_eq!(plan.pending(), 0, "every fault was met");
    assert_eq!(plan.injected.load(Ordering::SeqCst), 5);
    plan.add([Fault::Unavailable, Fault::Stall(Duration::from_secs(3)), Fault::Reset]);
    let target = work.path().join("target");
    restore_dir(&repo, "data", None, &target).await;
    tree::assert_same(&src, &target);
    assert_eq!(plan.pending(), 0);
    assert!(report.chunks_new >= 20, "{report:?}");

    options.attempts = 2;
    let impatient = S3Store::connect(options).await.expect("client");
    plan.add([Fault::Unavailable, Fault::Unavailable]);
    let err = impatient.put("one/key", b"x".to_vec()).await.expect_err("two 503s, two attempts");
    let text = err.to_string();
    assert!(text.contains("cannot put \"one/key\"") && text.contains("SlowDown"), "{text}");
}
