//! A migration end to end through real processes: a source `avocet serve` whose in-process
//! worker pool leases the migration, pushes the PVC's directory through the local-directory
//! store and has the destination `avocet serve` restore it into `--volume-root`, then copies
//! the namespace's objects to the destination cluster with the standby PV pointing at the
//! restored folder; the migration ends Successful with its volume listed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use avocet_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::group::{ADMIN_TOKEN, Group};

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let dir = kubeconfig.parent().unwrap();
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", dir.join("kube-cache"))
        .env("HOME", dir)
        .output()
        .expect("kubectl is on the PATH (scripts/test.sh installs it)");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_migration_moves_a_volume_and_its_objects_between_two_avocets() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let source = runtime.block_on(Sandbox::start_local()).unwrap();
    let destination = runtime.block_on(Sandbox::start_local()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (source_config, dest_config) =
        (dir.path().join("source.kubeconfig"), dir.path().join("dest.kubeconfig"));
    source.write_kubeconfig(&source_config).unwrap();
    destination.write_kubeconfig(&dest_config).unwrap();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let (ok, out, err) = kubectl(&source_config, &["apply", "-f", crds.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let data = dir.path().join("mysql-data");
    std::fs::create_dir_all(data.join("db")).unwrap();
    for i in 0..8u32 {
        let bytes: Vec<u8> =
            (0..100_000u32).map(|n| (n.wrapping_mul(i + 3)).to_le_bytes()[1]).collect();
        std::fs::write(data.join(format!("db/t{i}.ibd")), bytes).unwrap();
    }
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mysql"}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-mysql"},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": data.to_str().unwrap()}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "mysql"},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": "pv-mysql",
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mysql", "namespace": "mysql"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "mysql"}},
                  "template": {"metadata": {"labels": {"app": "mysql"}},
                               "spec": {"containers": [{"name": "mysql", "image": "mysql:8"}]}}}}
    ]});
    let file = dir.path().join("app.json");
    std::fs::write(&file, objects.to_string()).unwrap();
    let (ok, out, err) = kubectl(&source_config, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");

    let key = dir.path().join("pair.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef-pair").unwrap();
    let store = format!("file://{}", dir.path().join("store").display());
    let root = dir.path().join("volumes");
    std::fs::create_dir(&root).unwrap();
    let dest_group = Group::start_with(
        1,
        &[
            "--store",
            &store,
            "--store-key-file",
            key.to_str().unwrap(),
            "--volume-root",
            root.to_str().unwrap(),
        ],
    );
    let dest_node = dest_group.leader(Duration::from_secs(30));
    let source_group = Group::start_with(
        1,
        &[
            "--kubeconfig",
            source_config.to_str().unwrap(),
            "--store",
            &store,
            "--store-key-file",
            key.to_str().unwrap(),
            "--workers",
            "1",
        ],
    );
    let node = source_group.leader(Duration::from_secs(30));
    let ctl = |args: &[&str]| source_group.ctl(node, args);

    let (_, port) = dest_group.nodes[&dest_node].api.rsplit_once(':').unwrap();
    let options = format!("ip=127.0.0.1,port={port},token={ADMIN_TOKEN}");
    let (ok, pair, err) = ctl(&[
        "generate",
        "clusterpair",
        "remote",
        "-n",
        "mysql",
        "--kubeconfig",
        dest_config.to_str().unwrap(),
        "-s",
        &options,
    ]);
    assert!(ok, "{err}");
    let pair_file = dir.path().join("pair.yaml");
    std::fs::write(&pair_file, pair).unwrap();
    let (ok, out, err) = ctl(&["apply", "-f", pair_file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = ctl(&[
        "create",
        "migration",
        "now",
        "-n",
        "mysql",
        "-c",
        "remote",
        "--namespaces",
        "mysql",
        "--startApplications",
        "false",
    ]);
    assert!(ok, "{out}{err}");

    let migration: Value =
        source_group.eventually(Duration::from_secs(60), "the migration ends", || {
            let (ok, out, _) = ctl(&["get", "migration", "now", "-n", "mysql", "-o", "json"]);
            let value: Value = if ok { serde_json::from_str(&out).ok()? } else { None? };
            let status = value["status"]["status"].as_str().unwrap_or_default().to_owned();
            matches!(status.as_str(), "Successful" | "Failed" | "PartialSuccess").then_some(value)
        });
    assert_eq!(migration["status"]["status"], "Successful", "{migration:#}");
    let volumes = migration["status"]["volumes"].as_array().cloned().unwrap_or_default();
    assert_eq!(volumes.len(), 1, "{migration:#}");
    assert_eq!(volumes[0]["persistentVolumeClaim"], "data");
    assert_eq!(volumes[0]["bytesTotal"], 800_000);

    let restored = root.join("mysql.data");
    let diff = Command::new("diff").arg("-r").arg(&data).arg(&restored).status().unwrap();
    assert!(diff.success(), "the destination holds the source's data");
    let (ok, out, err) = kubectl(&dest_config, &["get", "pv", "pv-mysql", "-o", "json"]);
    assert!(ok, "{err}");
    let pv: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pv["spec"]["hostPath"]["path"], restored.to_str().unwrap());
    let (ok, out, err) =
        kubectl(&dest_config, &["get", "deployment", "mysql", "-n", "mysql", "-o", "json"]);
    assert!(ok, "{err}");
    let deployment: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 0, "a standby is scaled to 0");
}
