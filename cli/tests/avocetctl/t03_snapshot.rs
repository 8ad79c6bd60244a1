//! `avocetctl snapshot push|restore` as a user runs them: a local store and a real S3 server
//! (credentials from the AWS environment variables), JSON reports, and errors that name the
//! bad flag.

use std::path::Path;
use std::process::{Command, Output};

use avocet_transfer::testing::{ACCESS_KEY, S3Server, SECRET_KEY};

use crate::texts;

fn snapshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avocetctl"))
        .arg("snapshot")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("avocetctl runs")
}

fn json(output: &Output) -> serde_json::Value {
    let (out, err) = texts(output);
    assert!(output.status.success(), "{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn same_trees(a: &Path, b: &Path) {
    let diff =
        Command::new("diff").arg("-r").arg("--no-dereference").arg(a).arg(b).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
}

fn story(store: &str, work: &Path) {
    let src = work.join("src");
    std::fs::create_dir_all(src.join("db")).unwrap();
    for i in 0..10u8 {
        let data: Vec<u8> = (0..200_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> (i % 7)).to_le_bytes()[0])
            .collect();
        std::fs::write(src.join(format!("db/table-{i}.ibd")), data).unwrap();
    }
    std::os::unix::fs::symlink("db/table-0.ibd", src.join("current")).unwrap();
    let key = work.join("pair.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let (src_s, key_s) = (src.to_str().unwrap(), key.to_str().unwrap());
    let push = [
        "push",
        "--source",
        src_s,
        "--store",
        store,
        "--volume",
        "mysql-data",
        "--key-file",
        key_s,
        "-o",
        "json",
    ];

    let first = json(&snapshot(&push));
    assert_eq!(first["full"], true, "{first}");
    assert_eq!(first["filesChanged"], 10, "{first}");
    assert!(first["bytesUploaded"].as_u64().unwrap() > 0, "{first}");
    for field in ["bytesScanned", "chunksNew", "chunksReused", "seconds"] {
        assert!(first[field].is_number(), "{field}: {first}");
    }
    let unchanged = json(&snapshot(&push));
    assert_eq!(
        (unchanged["filesChanged"].as_u64(), unchanged["chunksNew"].as_u64()),
        (Some(0), Some(0)),
        "{unchanged}"
    );
    assert_eq!(unchanged["full"], false);
    std::fs::write(src.join("db/table-3.ibd"), b"rewritten").unwrap();
    let changed = json(&snapshot(&push));
    assert_eq!(changed["filesChanged"], 1, "{changed}");
    let full = json(&snapshot(&[&push[..], &["--full"]].concat()));
    assert_eq!(
        (full["full"].as_bool(), full["filesChanged"].as_u64(), full["chunksNew"].as_u64()),
        (Some(true), Some(0), Some(0)),
        "{full}"
    );

    let target = work.join("restored");
    let target_s = target.to_str().unwrap();
    let restore = [
        "restore",
        "--store",
        store,
        "--volume",
        "mysql-data",
        "--target",
        target_s,
        "--key-file",
        key_s,
    ];
    let report = json(&snapshot(&[&restore[..], &["-o", "json"]].concat()));
    assert_eq!(report["run"], 4, "{report}");
    same_trees(&src, &target);
    let older = snapshot(&[&restore[..], &["--run", "1"]].concat());
    let (out, err) = texts(&older);
    assert!(older.status.success(), "{err}");
    assert!(out.starts_with("volume mysql-data run 1 restored into"), "{out}");
    assert_eq!(std::fs::read(target.join("db/table-3.ibd")).unwrap().len(), 200_000);
}

#[test]
fn push_and_restore_through_a_local_store() {
    let work = tempfile::tempdir().unwrap();
    let store = format!("file://{}", work.path().join("store").display());
    story(&store, work.path());
}

#[test]
fn push_and_restore_through_s3_with_credentials_from_the_environment() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("s3");
    std::fs::create_dir(&data).unwrap();
    let server = S3Server::start(&data).unwrap();
    let store =
        format!("s3://avocet-dr/pair-1?endpoint=http://127.0.0.1:{}&region=us-east-1", server.port);
    story(&store, work.path());
}

#[test]
fn bad_flags_are_refused_by_name_before_anything_is_stored() {
    let work = tempfile::tempdir().unwrap();
    let short = work.path().join("short.key");
    std::fs::write(&short, b"too short").unwrap();
    let store = format!("file://{}", work.path().join("store").display());
    let out = snapshot(&[
        "push",
        "--source",
        "/",
        "--store",
        &store,
        "--volume",
        "v",
        "--key-file",
        short.to_str().unwrap(),
    ]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("--key-file") && err.contains("holds 9 bytes"), "{err}");
    assert!(!work.path().join("store").exists(), "nothing stored");

    let key = work.path().join("good.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let out = snapshot(&[
        "push",
        "--source",
        "/",
        "--store",
        "ftp://x",
        "--volume",
        "v",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let (_, err) = texts(&out);
    assert!(err.contains("--store") && err.contains("\"ftp://x\""), "{err}");
    let out = snapshot(&[
        "restore",
        "--store",
        &store,
        "--volume",
        "v",
        "--target",
        "/tmp/x",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let (_, err) = texts(&out);
    assert!(err.contains("holds no Avocet data"), "{err}");
}
