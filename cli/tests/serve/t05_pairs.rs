//! ClusterPair health, checked by the leader again and again: a pair turns Ready when its
//! destination Kubernetes API and Avocet answer, NotProvided without storage options, and Error
//! with the reason when the destination goes away later (Stork would keep saying Ready).

use std::time::Duration;

use avocet_sandbox::{Sandbox, SandboxConfig};

use crate::group::{ADMIN_TOKEN, Group};

#[test]
fn pairs_are_checked_again_and_a_broken_destination_turns_error() {
    let group = Group::start_with(1, &["--pair-check-interval", "1s"]);
    let node = group.leader(Duration::from_secs(30));
    let ctl = |args: &[&str]| group.ctl(node, args);

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = SandboxConfig { token: Some("dest-token".to_owned()), ..SandboxConfig::local() };
    let sandbox = runtime.block_on(Sandbox::start(config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("destination.kubeconfig");
    sandbox.write_kubeconfig(&kubeconfig).unwrap();

    // One pair with storage options pointing at this group's own API, one without.
    let (_, port) = group.nodes[&node].api.rsplit_once(':').unwrap();
    let options = format!("ip=127.0.0.1,port={port},token={ADMIN_TOKEN}");
    let mut documents = String::new();
    for (name, storage) in [("remote", Some(options.as_str())), ("kube-only", None)] {
        let mut args = vec![
            "generate",
            "clusterpair",
            name,
            "-n",
            "mysql",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ];
        if let Some(storage) = storage {
            args.extend(["-s", storage]);
        }
        let (ok, yaml, err) = ctl(&args);
        assert!(ok, "{err}");
        documents.push_str("---\n");
        documents.push_str(
            &yaml
                .replace("    insert_storage_options_here: \"\"\n", "    {}\n")
                .replace("  options:\n    {}\n", ""),
        );
    }
    let file = dir.path().join("pairs.yaml");
    std::fs::write(&file, documents).unwrap();
    let (ok, out, err) = ctl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let row = |name: &str| {
        let (ok, out, _) = ctl(&["get", "clusterpair", name, "-n", "mysql"]);
        ok.then(|| {
            out.lines()
                .nth(1)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    // NAME STORAGE-STATUS SCHEDULER-STATUS CREATED
    group.eventually(Duration::from_secs(20), "remote Ready/Ready", || {
        row("remote").filter(|r| {
            r.get(1).map(String::as_str) == Some("Ready")
                && r.get(2).map(String::as_str) == Some("Ready")
        })
    });
    group.eventually(Duration::from_secs(20), "kube-only NotProvided/Ready", || {
        row("kube-only").filter(|r| {
            r.get(1).map(String::as_str) == Some("NotProvided")
                && r.get(2).map(String::as_str) == Some("Ready")
        })
    });

    // The destination goes away: the next check says so, with the reason in an event.
    runtime.block_on(sandbox.shutdown());
    group.eventually(Duration::from_secs(20), "remote scheduler Error", || {
        row("remote").filter(|r| r.get(2).map(String::as_str) == Some("Error"))
    });
    let (ok, events, _) = ctl(&["get", "events", "-n", "mysql", "--for", "clusterpair/remote"]);
    assert!(
        ok && events.contains("Scheduler successfully paired")
            && events.contains("Storage successfully paired"),
        "{events}"
    );
    assert!(events.contains("does not answer with the pair's credentials"), "{events}");
}
