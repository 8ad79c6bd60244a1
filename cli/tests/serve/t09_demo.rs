//! `avocet demo` as a newcomer runs it: the story ends with exit 0, a slots table with no slot
//! missed or doubled across the leader's kill, a matching failover check, and nothing left
//! running; with `--keep` it stays up for `kubectl` and `avocetctl` until Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::group::kubectl;

/// The processes whose command line mentions `needle`, other than this test.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn the_demo_tells_the_story_and_leaves_nothing_running() {
    let out = Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(["demo", "--data-mib", "4", "--slots", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "clusterpair remotecluster: scheduler Ready, storage Ready",
        "schedulepolicy/testpolicy created",
        "migrationschedule/mysqlmigrationschedule created",
        "** SIGKILL to the leader, node ",
        "SLOT               MIGRATION",
        "3 slots due, 3 fired, 0 missed, 0 duplicated, 0 failed",
        "Updated replicas for deployment mysql/mysql to 1",
        "0 replicas as a standby, 1 now",
        "equals the source as the last migration read it, byte for byte (7 files, ",
        "The demo passed in ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}\n{stderr}");
    }
    // The table: a full run first, then incremental ones that send less than it.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("mysqlmigrationschedule-interval-") && l.contains("Successful   "))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(rows[0].contains("full #1") && rows[1].contains("incremental #2"), "{stdout}");
    assert!(rows[2].contains("killed") && rows[2].contains("fired"), "the kill is noted: {stdout}");
    // Nothing left: the folder it named is gone, and no process mentions it.
    let last = stdout.lines().last().unwrap();
    let dir = last
        .strip_prefix("Stopped every process and removed ")
        .unwrap()
        .split(" (")
        .next()
        .unwrap();
    assert!(!Path::new(dir).exists(), "{dir} was removed");
    assert_eq!(processes_mentioning(dir), Vec::<String>::new());
}

#[test]
fn with_keep_the_demo_stays_up_for_kubectl_and_avocetctl_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(["demo", "--keep", "--data-mib", "2", "--slots", "3", "--dir"])
        .arg(&work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut env = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if let Some(exports) = line.trim().strip_prefix("export ") {
            env = exports
                .split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
        if line.starts_with("  logs: ") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("Everything keeps running until Ctrl-C")), "{seen:#?}");
    assert_eq!(env.len(), 2, "{seen:#?}");
    // The commands it prints work.
    let (ok, out, err) = kubectl(
        &work.join("destination.kubeconfig"),
        &["get", "deployment", "mysql", "-n", "mysql", "-o", "json"],
    );
    assert!(ok, "{err}");
    let deployment: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1, "activated");
    let out = Command::new(env!("CARGO_BIN_EXE_avocetctl"))
        .args(["get", "migrationschedule", "-n", "mysql"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && table.contains("mysqlmigrationschedule   testpolicy   remotecluster   true"),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ctrl-C (SIGINT to the demo alone) stops everything and keeps the files.
    Command::new("kill").args(["-INT", &demo.id().to_string()]).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = demo.wait().unwrap();
    assert!(status.success(), "{rest:#?}");
    assert!(
        rest.iter().any(|l| l.starts_with("Stopped every process; the files stay in ")),
        "{rest:#?}"
    );
    assert!(work.join("node-1.log").is_file() && work.join("store").is_dir());
    assert_eq!(processes_mentioning(work.to_str().unwrap()), Vec::<String>::new());
}
