//! The StatefulSet in `deploy/base/avocet/statefulset.yaml`, run as Kubernetes would run it:
//! each pod `avocet-N` a process in a network namespace of its own, with host name `avocet-N`
//! (`HOSTNAME`), the container's own arguments and environment read from the manifest (the
//! downward API's namespace, the Secrets' tokens, `$(VAR)` expanded), its peers found by the
//! headless Service's DNS names (`/etc/hosts` of each namespace), its volume and Secret mounts
//! mapped to folders, and `--kubeconfig in-cluster` pointed at a sandbox API server in the hub.
//! The only flags added are the test clock's (an hour a second). A rolling update restarts the
//! pods in reverse ordinal order, each waiting for the last to be ready, while schedules fire;
//! a scale from 3 to 5 adds pods that join as learners and are promoted.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use avocet_chaos_tests::harness::{ADMIN_TOKEN, BUSY_SCHEDULE, Cluster, Pod};
use avocet_chaos_tests::netns::Net;
use avocet_chaos_tests::scenario;

const NAMESPACE: &str = "avocet";
const DOMAIN: &str = "avocet-peers.avocet.svc.cluster.local";
const SANDBOX: &str = "10.77.0.254:6443";

/// The container of the committed StatefulSet.
fn container() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/avocet/statefulset.yaml");
    let manifest: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest["spec"]["template"]["spec"]["containers"][0].clone()
}

/// Pod `ordinal`'s command line as the kubelet would make it from the manifest, with mounts
/// under `dir`, `replicas` as AVOCET_REPLICAS, and the test clock.
fn pod(dir: &Path, ordinal: u64, replicas: u64, epoch: chrono::DateTime<chrono::Utc>) -> Pod {
    let container = container();
    let secret = |key: &str| match key {
        "admin-token" => ADMIN_TOKEN.to_owned(),
        other => format!("{other}-for-the-statefulset-test"),
    };
    let mut env: Vec<(String, String)> = vec![("HOSTNAME".into(), format!("avocet-{ordinal}"))];
    for variable in container["env"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap().to_owned();
        let value = if name == "AVOCET_REPLICAS" {
            replicas.to_string()
        } else if let Some(value) = variable["value"].as_str() {
            value.to_owned()
        } else if variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            NAMESPACE.to_owned()
        } else if let Some(key) = variable["valueFrom"]["secretKeyRef"]["key"].as_str() {
            secret(key)
        } else {
            panic!("env {name}: no value the test knows how to give: {variable}");
        };
        env.push((name, value));
    }
    // The mounts: the pod's volume and the keys Secret.
    let data = dir.join(format!("avocet-{ordinal}"));
    let keys = dir.join("keys");
    let mut args: Vec<String> = Vec::new();
    for arg in container["args"].as_array().unwrap() {
        let mut arg = arg.as_str().unwrap().to_owned();
        for (name, value) in &env {
            arg = arg.replace(&format!("$({name})"), value);
        }
        let arg = if arg == "in-cluster" {
            dir.join("sandbox.kubeconfig").to_string_lossy().into_owned()
        } else if let Some(rest) = arg.strip_prefix("/var/lib/avocet") {
            format!("{}{rest}", data.display())
        } else if let Some(rest) = arg.strip_prefix("/etc/avocet/keys") {
            format!("{}{rest}", keys.display())
        } else {
            arg
        };
        args.push(arg);
    }
    args.extend(["--clock-scale", "3600", "--clock-epoch"].map(str::to_owned));
    args.push(epoch.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Pod { args, env }
}

/// The sandbox API server process; killed and reaped when dropped.
struct SandboxProcess(std::process::Child);

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a test holds: the pods, their folder, the epoch of their clock, and the sandbox.
type World = (Cluster, tempfile::TempDir, chrono::DateTime<chrono::Utc>, SandboxProcess);

/// A sandbox API server in the hub (the pods' "in-cluster" API), with the CRDs, namespace
/// `apps` and the schedule applied through it with kubectl.
fn cluster_with_pods(total: u64, replicas: u64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("store.key"), "a store key of the statefulset test, 32+ bytes")
        .unwrap();
    std::fs::write(keys.join("master.key"), "a master key of the statefulset test, 32+ bytes")
        .unwrap();
    let ids: Vec<u64> = (1..=total).collect();
    let net = Net::create(&ids).unwrap();
    let hosts: Vec<(String, String)> = ids
        .iter()
        .map(|id| {
            let ordinal = id - 1;
            (net.address(*id), format!("avocet-{ordinal}.{DOMAIN} avocet-{ordinal}"))
        })
        .collect();
    net.write_hosts(&hosts).unwrap();
    let epoch = scenario::epoch_now();
    let pods: BTreeMap<u64, Pod> =
        (1..=replicas).map(|id| (id, pod(dir.path(), id - 1, replicas, epoch))).collect();
    // The sandbox first: the pods' controllers and workers reach it at start.
    let kubeconfig = dir.path().join("sandbox.kubeconfig");
    let hub = net.exec_in_hub();
    let avocet = avocet_chaos_tests::harness::Binaries::locate().unwrap().avocet;
    let log = std::fs::File::create(dir.path().join("sandbox.log")).unwrap();
    let sandbox = SandboxProcess(
        std::process::Command::new(&hub[0])
            .args(&hub[1..])
            .arg(&avocet)
            .args(["sandbox", "--listen", SANDBOX, "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if kubeconfig.is_file() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cluster = Cluster::start_pods(net, pods, 9001).unwrap();
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend(args);
        let (ok, out, err) = cluster.run_beside(Path::new("kubectl"), &all);
        assert!(ok, "kubectl {args:?}: {out}{err}");
    };
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/crds");
    kubectl(&["apply", "-f", crds.to_str().unwrap()]);
    kubectl(&["create", "namespace", "apps"]);
    let objects = dir.path().join("objects.yaml");
    std::fs::write(&objects, BUSY_SCHEDULE).unwrap();
    cluster.leader(Duration::from_secs(30)).unwrap();
    kubectl(&["apply", "-f", objects.to_str().unwrap()]);
    let leader = cluster.leader(Duration::from_secs(30)).unwrap();
    cluster
        .eventually(Duration::from_secs(30), "the controller mirroring the schedule", || {
            cluster.ctl_json(leader, &["get", "migrationschedule", "app", "-n", "apps"])
        })
        .unwrap();
    (cluster, dir, epoch, sandbox)
}

/// Asks pod `id`'s readiness probe, as the kubelet would.
fn ready(cluster: &Cluster, id: u64) -> bool {
    let url = format!("http://{}:9002/readyz", cluster.net().unwrap().address(id));
    let probe = format!(
        "import urllib.request,sys\ntry:\n  sys.exit(0 if urllib.request.urlopen('{url}', timeout=2).status == 200 else 1)\nexcept Exception:\n  sys.exit(1)"
    );
    cluster.run_beside(Path::new("python3"), &["-c", &probe]).0
}

/// Restarts every running pod in reverse ordinal order (a StatefulSet's rolling update), each
/// with `template(id)`, waiting for each to be ready before the next.
fn rolling_update(cluster: &mut Cluster, ids: &[u64], template: impl Fn(u64) -> Pod) {
    for id in ids.iter().rev() {
        assert!(cluster.terminate(*id), "pod {} exits cleanly on SIGTERM", id - 1);
        cluster.set_pod(*id, template(*id));
        cluster.spawn(*id).unwrap();
        cluster
            .eventually(Duration::from_secs(30), "the restarted pod ready", || {
                ready(cluster, *id).then_some(())
            })
            .unwrap();
    }
}

/// Suspends the schedule on the sandbox (the controller mirrors it), then judges.
fn judge(cluster: &Cluster, dir: &Path) {
    let kubeconfig = dir.join("sandbox.kubeconfig");
    let (ok, out, err) = cluster.run_beside(
        Path::new("kubectl"),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "patch",
            "migrationschedule",
            "app",
            "-n",
            "apps",
            "--type",
            "merge",
            "-p",
            "{\"spec\":{\"suspend\":true}}",
        ],
    );
    assert!(ok, "{out}{err}");
    let leader = cluster.leader(Duration::from_secs(30)).unwrap();
    cluster
        .eventually(Duration::from_secs(30), "the suspension mirrored", || {
            let schedule =
                cluster.ctl_json(leader, &["get", "migrationschedule", "app", "-n", "apps"])?;
            (schedule["spec"]["suspend"] == true).then_some(())
        })
        .unwrap();
    // At least four interval slots fell due, and none was missed, doubled or early.
    if let Err(violations) = scenario::judge_at_least(cluster, 4) {
        panic!("{violations:#?}");
    }
}

fn pod_template(
    dir: PathBuf,
    replicas: u64,
    epoch: chrono::DateTime<chrono::Utc>,
) -> impl Fn(u64) -> Pod {
    move |id| pod(&dir, id - 1, replicas, epoch)
}

#[test]
fn the_statefulset_keeps_firing_through_a_rolling_update() {
    let (mut cluster, dir, epoch, _sandbox) = cluster_with_pods(3, 3);
    for id in 1..=3 {
        cluster
            .eventually(Duration::from_secs(30), "every pod ready", || {
                ready(&cluster, id).then_some(())
            })
            .unwrap();
    }
    let status = cluster.ctl_json(1, &["cluster", "status"]).unwrap();
    let addresses: Vec<&str> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["address"].as_str())
        .collect();
    assert_eq!(
        addresses,
        [0, 1, 2].map(|i| format!("avocet-{i}.{DOMAIN}:9010")),
        "peers by DNS name"
    );
    std::thread::sleep(Duration::from_secs(2));
    rolling_update(&mut cluster, &[1, 2, 3], pod_template(dir.path().to_path_buf(), 3, epoch));
    // Slots come every 2 s: at least four fall due across the test.
    std::thread::sleep(Duration::from_secs(4));
    judge(&cluster, dir.path());
}

#[test]
fn scaling_from_three_to_five_adds_learners_and_promotes_them() {
    let (mut cluster, dir, epoch, _sandbox) = cluster_with_pods(5, 3);
    let template = pod_template(dir.path().to_path_buf(), 5, epoch);
    // The StatefulSet controller: the new pods start, and the old ones roll to the new template.
    for id in [4, 5] {
        cluster.set_pod(id, template(id));
        cluster.spawn(id).unwrap();
    }
    rolling_update(&mut cluster, &[1, 2, 3], &template);
    let voters = cluster
        .eventually(Duration::from_secs(60), "five voters", || {
            let leader = cluster.leader(Duration::from_secs(5)).ok()?;
            let status = cluster.ctl_json(leader, &["cluster", "status"])?;
            let members = status["members"].as_array()?.clone();
            let voters = members.iter().filter(|m| m["role"] != "Learner").count();
            (members.len() == 5 && voters == 5).then_some(members)
        })
        .unwrap();
    assert_eq!(voters.len(), 5);
    for id in [4, 5] {
        cluster
            .eventually(Duration::from_secs(30), "the new pod ready", || {
                ready(&cluster, id).then_some(())
            })
            .unwrap();
    }
    judge(&cluster, dir.path());
}
