//! Object-store credentials as an operator stores them: named after the destination's cluster
//! id, listed without secrets, refused by name when the provider is not supported or a flag is
//! missing, and sealed, so the node's data directory never holds the secret in the clear.

use std::time::Duration;

use crate::group::Group;

fn grep_dir(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            grep_dir(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

#[test]
fn credentials_are_stored_sealed_listed_without_secrets_and_deleted() {
    let keys = tempfile::tempdir().unwrap();
    let master = keys.path().join("master.key");
    std::fs::write(&master, b"the service's master key, 32+ bytes long").unwrap();
    let group = Group::start_with(1, &["--master-key-file", master.to_str().unwrap()]);
    let node = group.leader(Duration::from_secs(30));
    let ctl = |args: &[&str]| group.ctl(node, args);

    let (ok, out, err) = ctl(&["cluster", "status", "-o", "json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = status["clusterId"].as_str().unwrap().to_owned();
    assert!(id.len() >= 32, "a UUID-like cluster id: {status}");
    let name = format!("clusterPair_{id}");
    let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let create = |provider: &str, secret: &str| {
        ctl(&[
            "credentials",
            "create",
            "--provider",
            provider,
            "--s3-access-key",
            "AKIAEXAMPLE",
            "--s3-secret-key",
            secret,
            "--s3-region",
            "us-east-1",
            "--s3-endpoint",
            "127.0.0.1:9010",
            "--disable-ssl",
            &name,
        ])
    };
    let (ok, out, err) = create("s3", secret);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("Credentials created successfully: {name}"));
    let (ok, _, err) = create("s3", secret);
    assert!(!ok && err.contains("already exist"), "{err}");
    let (ok, _, err) = create("azure", secret);
    assert!(!ok && err.contains("--provider azure: not supported yet"), "{err}");
    let (ok, _, err) = create("s3", "");
    assert!(!ok && err.contains("--s3-secret-key: is required"), "{err}");

    let (ok, out, err) = ctl(&["credentials", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("NAME") && out.contains(&name) && out.contains("http://127.0.0.1:9010"),
        "{out}"
    );
    assert!(!out.contains(secret) && !out.contains("AKIAEXAMPLE"), "no secrets in the list: {out}");
    let (ok, json, _) = ctl(&["credentials", "list", "-o", "json"]);
    assert!(ok && !json.contains(secret));

    let (ok, _, _) = ctl(&["cluster", "barrier"]);
    assert!(ok);
    assert!(!grep_dir(&group.data_dir(node), secret.as_bytes()), "the secret is sealed in the log");

    let (ok, out, err) = ctl(&["credentials", "delete", &name]);
    assert!(ok && out.contains("deleted"), "{err}");
    let (ok, _, err) = ctl(&["credentials", "delete", &name]);
    assert!(!ok && err.contains("not found"), "{err}");

    let bare = Group::start(1);
    let node = bare.leader(Duration::from_secs(30));
    let (ok, _, err) = bare.ctl(
        node,
        &[
            "credentials",
            "create",
            "--provider",
            "s3",
            "--s3-access-key",
            "A",
            "--s3-secret-key",
            "S",
            "--s3-region",
            "r",
            "--s3-endpoint",
            "e:1",
            "x",
        ],
    );
    assert!(!ok && err.contains("--master-key-file"), "{err}");
}
