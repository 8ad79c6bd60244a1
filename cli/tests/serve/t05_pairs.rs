//! ClusterPair health, checked by the leader again and again: a pair turns Ready when its
//! destination Kubernetes API and Avocet answer, NotProvided without storage options, and Error
//! with the reason when the destination goes away later (Stork would keep saying Ready).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use avocet_sandbox::{Sandbox, SandboxConfig};
use base64::Engine as _;

use crate::group::{ADMIN_TOKEN, Group};

/// A one-node `avocet serve` on TLS, as a destination Avocet; returns it, its port and its CA.
fn tls_destination(dir: &std::path::Path) -> (Child, u16, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (dir.join("dest.crt"), dir.join("dest.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (api, raft) = (free(), free());
    let child = Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(["serve", "--id", "1", "--bootstrap", "--metrics-listen", "127.0.0.1:0"])
        .args([
            "--listen",
            &format!("127.0.0.1:{api}"),
            "--raft-listen",
            &format!("127.0.0.1:{raft}"),
        ])
        .args(["--peers", &format!("1=127.0.0.1:{raft}")])
        .arg("--data-dir")
        .arg(dir.join("dest-node"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("AVOCET_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AVOCET_PEER_TOKEN", "peer")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, api, base64::engine::general_purpose::STANDARD.encode(certified.cert.pem()))
}

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
    let (mut tls_node, tls_port, ca) = tls_destination(dir.path());
    let tls_options = format!("ip=localhost,port={tls_port},token={ADMIN_TOKEN},cadata={ca}");
    let mut documents = String::new();
    for (name, storage) in [
        ("remote", Some(options.as_str())),
        ("kube-only", None),
        ("tls-remote", Some(tls_options.as_str())),
    ] {
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

    group.eventually(Duration::from_secs(30), "tls-remote Ready/Ready over TLS", || {
        row("tls-remote").filter(|r| {
            r.get(1).map(String::as_str) == Some("Ready")
                && r.get(2).map(String::as_str) == Some("Ready")
        })
    });
    let _ = tls_node.kill();
    let _ = tls_node.wait();

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
