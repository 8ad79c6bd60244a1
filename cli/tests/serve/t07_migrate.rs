//! A migration end to end through real processes: a source `avocet serve` whose in-process
//! worker pool leases the migration, pushes the PVC's directory through the local-directory
//! store and has the destination `avocet serve` restore it into `--volume-root`, then copies
//! the namespace's objects to the destination cluster with the standby PV pointing at the
//! restored folder; the migration ends Successful with its volume listed. In the first test the
//! migration names a pre- and a post-exec Rule applied to the catalog: the lease carries them
//! and the worker runs them in the source's Running pod (the sandbox runs exec as a local
//! process in its exec root), the background command holding while the volume is read.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use avocet_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use avocet_transfer::testing::{ACCESS_KEY, S3Server, SECRET_KEY};

use crate::group::{ADMIN_TOKEN, Group, kubectl};

/// Two sandbox clusters, the source holding a namespace with a hostPath volume.
struct World {
    _runtime: tokio::runtime::Runtime,
    _clusters: (Sandbox, Sandbox),
    dir: tempfile::TempDir,
    source_config: std::path::PathBuf,
    dest_config: std::path::PathBuf,
    data: std::path::PathBuf,
}

fn world() -> World {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exec_root = Some(dir.path().join("pods"));
    let source =
        runtime.block_on(Sandbox::start(SandboxConfig { exec_root, ..SandboxConfig::local() }));
    let source = source.unwrap();
    let destination = runtime.block_on(Sandbox::start_local()).unwrap();
    let (source_config, dest_config) =
        (dir.path().join("source.kubeconfig"), dir.path().join("dest.kubeconfig"));
    source.write_kubeconfig(&source_config).unwrap();
    destination.write_kubeconfig(&dest_config).unwrap();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/crds");
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
    // The app's pod, Running (status is set the way a kubelet would, through /status).
    runtime.block_on(async {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, Patch, PatchParams, PostParams};
        let pods: Api<Pod> = Api::namespaced(source.client().await.unwrap(), "mysql");
        let pod = json!({"metadata": {"name": "mysql-0", "labels": {"app": "mysql"}},
                         "spec": {"containers": [{"name": "mysql", "image": "mysql:8"}]}});
        pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
        let running = json!({"status": {"phase": "Running"}});
        pods.patch_status("mysql-0", &PatchParams::default(), &Patch::Merge(&running))
            .await
            .unwrap();
    });
    World {
        _runtime: runtime,
        _clusters: (source, destination),
        dir,
        source_config,
        dest_config,
        data,
    }
}

/// Pairs the source group with the destination group, waits for `ready` on the pair, runs a
/// one-off migration, and checks the destination holds the data and the standby objects.
fn migrate(
    world: &World,
    source_group: &Group,
    dest_group: &Group,
    root: &Path,
    ready: impl Fn(&Value) -> bool,
    rules: bool,
) {
    let node = source_group.leader(Duration::from_secs(30));
    let dest_node = dest_group.leader(Duration::from_secs(30));
    let ctl = |args: &[&str]| source_group.ctl(node, args);
    let (_, port) = dest_group.nodes[&dest_node].api.rsplit_once(':').unwrap();
    let options = format!("ip=127.0.0.1,port={port},token={ADMIN_TOKEN}");
    let dest_config = world.dest_config.to_str().unwrap();
    let (ok, pair, err) = ctl(&[
        "generate",
        "clusterpair",
        "remote",
        "-n",
        "mysql",
        "--kubeconfig",
        dest_config,
        "-s",
        &options,
    ]);
    assert!(ok, "{err}");
    let pair_file = world.dir.path().join("pair.yaml");
    std::fs::write(&pair_file, pair).unwrap();
    let (ok, out, err) = ctl(&["apply", "-f", pair_file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    source_group.eventually(Duration::from_secs(30), "the pair is ready", || {
        let (ok, out, _) = ctl(&["get", "clusterpair", "remote", "-n", "mysql", "-o", "json"]);
        let value: Value = if ok { serde_json::from_str(&out).ok()? } else { None? };
        ready(&value).then_some(())
    });
    let mut create = vec![
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
    ];
    let lock = world.data.join("lock.txt");
    if rules {
        let rules = format!(
            "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: Rule\nmetadata: {{name: freeze, namespace: mysql}}\nrules:\n- podSelector: {{app: mysql}}\n  actions:\n  - type: command\n    background: true\n    value: 'echo held > {0}; ${{WAIT_CMD}}; echo released >> {0}'\n---\napiVersion: stork.libopenstorage.org/v1alpha1\nkind: Rule\nmetadata: {{name: thaw, namespace: mysql}}\nrules:\n- podSelector: {{app: mysql}}\n  actions:\n  - type: command\n    value: echo thawed > thawed.txt\n",
            lock.display()
        );
        let rules_file = world.dir.path().join("rules.yaml");
        std::fs::write(&rules_file, rules).unwrap();
        let (ok, out, err) = ctl(&["apply", "-f", rules_file.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
        create.extend(["--preExecRule", "freeze", "--postExecRule", "thaw"]);
    }
    let (ok, out, err) = ctl(&create);
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
    // With the rules, the volume also holds lock.txt ("held\n") as read inside the hold.
    assert_eq!(volumes[0]["bytesTotal"], if rules { 800_005 } else { 800_000 });

    let restored = root.join("mysql.data");
    if rules {
        // The volume was read while the pre-exec rule held; the hold ended afterwards.
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), "held\nreleased\n");
        assert_eq!(std::fs::read_to_string(restored.join("lock.txt")).unwrap(), "held\n");
        std::fs::remove_file(&lock).unwrap();
        std::fs::remove_file(restored.join("lock.txt")).unwrap();
        let thawed = world.dir.path().join("pods/mysql/mysql-0/thawed.txt");
        assert_eq!(std::fs::read_to_string(thawed).unwrap(), "thawed\n");
    }
    let diff = Command::new("diff").arg("-r").arg(&world.data).arg(&restored).status().unwrap();
    assert!(diff.success(), "the destination holds the source's data");
    let (ok, out, err) = kubectl(&world.dest_config, &["get", "pv", "pv-mysql", "-o", "json"]);
    assert!(ok, "{err}");
    let pv: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pv["spec"]["hostPath"]["path"], restored.to_str().unwrap());
    let (ok, out, err) =
        kubectl(&world.dest_config, &["get", "deployment", "mysql", "-n", "mysql", "-o", "json"]);
    assert!(ok, "{err}");
    let deployment: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 0, "a standby is scaled to 0");
}

/// A local-directory store, a key file and a volume root shared by both sides: (store URL,
/// key file, volume root).
fn local_store(world: &World) -> (String, String, std::path::PathBuf) {
    let key = world.dir.path().join("pair.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef-pair").unwrap();
    let store = format!("file://{}", world.dir.path().join("store").display());
    let root = world.dir.path().join("volumes");
    std::fs::create_dir(&root).unwrap();
    (store, key.to_str().unwrap().to_owned(), root)
}

#[test]
fn a_migration_moves_a_volume_and_its_objects_between_two_avocets() {
    let world = world();
    let (store, key, root) = local_store(&world);
    let dest_group = Group::start_with(
        1,
        &["--store", &store, "--store-key-file", &key, "--volume-root", root.to_str().unwrap()],
    );
    let source_group = Group::start_with(
        1,
        &[
            "--kubeconfig",
            world.source_config.to_str().unwrap(),
            "--store",
            &store,
            "--store-key-file",
            &key,
            "--workers",
            "1",
            "--pair-check-interval",
            "1s",
        ],
    );
    migrate(
        &world,
        &source_group,
        &dest_group,
        &root,
        |pair| {
            pair["status"]["objectStore"]
                .as_str()
                .is_some_and(|s| s.starts_with("the internal store"))
        },
        true,
    );
}

#[test]
fn with_credentials_for_the_pair_volumes_go_through_s3_with_the_pairs_own_key() {
    let world = world();
    let s3_data = world.dir.path().join("s3");
    std::fs::create_dir(&s3_data).unwrap();
    let s3 = S3Server::start(&s3_data).unwrap();
    let master = world.dir.path().join("master.key");
    std::fs::write(&master, b"the source's master key, 32 bytes or more").unwrap();
    let root = world.dir.path().join("volumes");
    std::fs::create_dir(&root).unwrap();
    // The destination has no store or key of its own: the source sends the pair's.
    let dest_group = Group::start_with(1, &["--volume-root", root.to_str().unwrap()]);
    let dest_node = dest_group.leader(Duration::from_secs(30));
    let (ok, out, err) = dest_group.ctl(dest_node, &["cluster", "status", "-o", "json"]);
    assert!(ok, "{err}");
    let dest_id =
        serde_json::from_str::<Value>(&out).unwrap()["clusterId"].as_str().unwrap().to_owned();
    let source_group = Group::start_with(
        1,
        &[
            "--kubeconfig",
            world.source_config.to_str().unwrap(),
            "--master-key-file",
            master.to_str().unwrap(),
            "--workers",
            "1",
            "--pair-check-interval",
            "1s",
        ],
    );
    let node = source_group.leader(Duration::from_secs(30));
    let name = format!("clusterPair_{dest_id}");
    let endpoint = format!("127.0.0.1:{}", s3.port);
    let (ok, _, err) = source_group.ctl(
        node,
        &[
            "credentials",
            "create",
            "--provider",
            "s3",
            "--s3-access-key",
            ACCESS_KEY,
            "--s3-secret-key",
            SECRET_KEY,
            "--s3-region",
            "us-east-1",
            "--s3-endpoint",
            &endpoint,
            "--disable-ssl",
            &name,
        ],
    );
    assert!(ok, "{err}");
    migrate(
        &world,
        &source_group,
        &dest_group,
        &root,
        |pair| {
            pair["status"]["remoteStorageId"].as_str() == Some(dest_id.as_str())
                && pair["status"]["objectStore"].as_str().is_some_and(|s| s.contains(&name))
        },
        false,
    );
    let bucket = format!("avocet-{}", dest_id.to_ascii_lowercase());
    assert!(s3_data.join(&bucket).join("mysql.remote").is_dir(), "the pair's folder in its bucket");
}

#[test]
fn an_avocet_worker_process_runs_the_migration_when_the_nodes_run_none() {
    let world = world();
    let (store, key, root) = local_store(&world);
    let dest_group = Group::start_with(
        1,
        &["--store", &store, "--store-key-file", &key, "--volume-root", root.to_str().unwrap()],
    );
    let source_group = Group::start_with(
        1,
        &["--kubeconfig", world.source_config.to_str().unwrap(), "--workers", "0"],
    );
    let node = source_group.leader(Duration::from_secs(30));
    let log = std::fs::File::create(world.dir.path().join("worker.log")).unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(["worker", "--server", &format!("http://{}", source_group.nodes[&node].api)])
        .args(["--kubeconfig", world.source_config.to_str().unwrap()])
        .args(["--store", &store, "--store-key-file", &key, "--workers", "1", "--name", "w1"])
        .env("AVOCET_WORKER_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    migrate(&world, &source_group, &dest_group, &root, |_| true, false);
    let _ = worker.kill();
    let _ = worker.wait();
    let log = std::fs::read_to_string(world.dir.path().join("worker.log")).unwrap();
    assert!(
        log.contains("completed") && log.contains("migration=now"),
        "the worker process ran it: {log}"
    );
}
