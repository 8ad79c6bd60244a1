//! The worker pool end to end on two sandbox clusters: a migration's volumes (a hostPath PV's
//! directory) go through the transfer crate into a local store and are restored for the
//! destination, its objects are copied, progress is reported stage by stage; a refused claim
//! fails the migration by name; a destination that fails once is retried; dropping the run
//! (a lost lease) aborts what was running. Pre- and post-exec rules run in the source's pods
//! (exec runs local processes in the sandbox): a background command holds across the volume
//! copy; a failing or missing rule fails the migration by name.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use avocet_sandbox::{Sandbox, SandboxConfig};
use avocet_transfer::repo::Repository;
use avocet_transfer::restore;
use avocet_transfer::seal::Key;
use avocet_transfer::store::local::LocalStore;
use avocet_types::clusterpair::ClusterPair;
use avocet_types::migration::{Migration, MigrationStage, MigrationStatusType};
use avocet_workers::pairing;
use avocet_workers::pool::{
    Boxed, Destination, JobReport, MigrationJob, PoolConfig, Stores, WorkerPool,
};
use avocet_workers::rules::RuleSettings;
use avocet_workers::volumes::{DirectoryVolumes, Volume};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

fn key() -> Key {
    Key::derive(b"the pair's secret key material, 32+ bytes").unwrap()
}

/// A local store per test.
struct LocalStores(std::path::PathBuf);

impl Stores for LocalStores {
    fn open<'a>(&'a self, _: &'a MigrationJob) -> Boxed<'a, Repository> {
        Box::pin(async move {
            Repository::open(Arc::new(LocalStore::new(self.0.clone())), key(), true)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Restores into `<root>/<store name>`, failing the first `fail_first` calls; or, when
/// `hang`, never finishes (and records being dropped).
struct Restorer {
    store: std::path::PathBuf,
    root: std::path::PathBuf,
    fail_first: u32,
    calls: AtomicU32,
    hang: bool,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Destination for Restorer {
    fn restore<'a>(
        &'a self,
        _: &'a MigrationJob,
        volume: &'a Volume,
        run: u64,
    ) -> Boxed<'a, String> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang {
                let _guard = SetOnDrop(self.dropped.clone());
                std::future::pending::<()>().await;
            }
            if call < self.fail_first {
                return Err("the destination is not reachable".to_owned());
            }
            let repo =
                Repository::open(Arc::new(LocalStore::new(self.store.clone())), key(), false)
                    .await
                    .map_err(|e| e.to_string())?;
            let target = self.root.join(volume.store_name());
            restore::restore(&repo, &volume.store_name(), Some(run), &target, Arc::default())
                .await
                .map(|_| target.display().to_string())
                .map_err(|e| e.to_string())
        })
    }
}

struct World {
    source: Sandbox,
    destination: Sandbox,
    work: tempfile::TempDir,
    pair: ClusterPair,
}

async fn create<K>(client: &kube::Client, namespace: Option<&str>, value: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + serde::de::DeserializeOwned
        + serde::Serialize
        + Clone
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace.unwrap_or("default"));
    api.create(&PostParams::default(), &serde_json::from_value(value).unwrap()).await.unwrap();
}

async fn world(pv_source: serde_json::Value) -> World {
    let work = tempfile::tempdir().unwrap();
    // Exec in the source's pods runs as local processes in work/pods/NAMESPACE/POD.
    let config =
        SandboxConfig { exec_root: Some(work.path().join("pods")), ..SandboxConfig::local() };
    let source = Sandbox::start(config).await.unwrap();
    let destination = Sandbox::start_local().await.unwrap();
    let data = work.path().join("mysql-data");
    std::fs::create_dir_all(data.join("db")).unwrap();
    for i in 0..20u32 {
        let bytes: Vec<u8> = (0..50_000u32).map(|n| (n ^ i).to_le_bytes()[0]).collect();
        std::fs::write(data.join(format!("db/t{i}.ibd")), bytes).unwrap();
    }
    let client = source.client().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "mysql"}})).unwrap(),
        )
        .await
        .unwrap();
    let mut pv = json!({
        "metadata": {"name": "pv-mysql"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual"}
    });
    let spec = pv["spec"].as_object_mut().unwrap();
    for (k, v) in pv_source.as_object().unwrap() {
        let v = if v == "DATA" { json!({"path": data.to_str().unwrap()}) } else { v.clone() };
        spec.insert(k.clone(), v);
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(&PostParams::default(), &serde_json::from_value(pv).unwrap()).await.unwrap();
    create::<PersistentVolumeClaim>(&client, Some("mysql"), json!({
        "metadata": {"name": "data", "namespace": "mysql"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": "pv-mysql",
                 "resources": {"requests": {"storage": "1Gi"}}}
    })).await;
    create::<ConfigMap>(&client, Some("mysql"), json!({
        "metadata": {"name": "mysql-config", "namespace": "mysql"}, "data": {"my.cnf": "[mysqld]\n"}
    })).await;
    create::<Deployment>(
        &client,
        Some("mysql"),
        json!({
            "metadata": {"name": "mysql", "namespace": "mysql"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "mysql"}},
                     "template": {"metadata": {"labels": {"app": "mysql"}},
                                  "spec": {"containers": [{"name": "mysql", "image": "mysql:8"}]}}}
        }),
    )
    .await;
    let kubeconfig: kube::config::Kubeconfig = serde_saphyr_free(&destination.kubeconfig());
    let pair =
        pairing::generate(&kubeconfig, None, None, "remote", "mysql", Default::default()).unwrap();
    World { source, destination, work, pair }
}

/// Reads a kubeconfig the way kube does.
fn serde_saphyr_free(text: &str) -> kube::config::Kubeconfig {
    kube::config::Kubeconfig::from_yaml(text).unwrap()
}

fn migration() -> Migration {
    serde_json::from_value(json!({
        "apiVersion": "stork.libopenstorage.org/v1alpha1",
        "kind": "Migration",
        "metadata": {"name": "mysql-now", "namespace": "mysql", "creationTimestamp": "2026-12-06T00:00:00Z"},
        "spec": {"clusterPair": "remote", "namespaces": ["mysql"], "includeResources": true,
                 "includeVolumes": true, "startApplications": false}
    }))
    .unwrap()
}

fn pool(world: &World, destination: Arc<Restorer>) -> WorkerPool {
    WorkerPool::start(PoolConfig {
        source: futures_block(world.source.client()),
        stores: Arc::new(LocalStores(world.work.path().join("store"))),
        destination,
        volumes: Arc::new(DirectoryVolumes),
        migrations_at_once: 2,
        volumes_at_once: 2,
        report_every: Duration::from_millis(200),
        volume_attempts: 3,
        rules: RuleSettings {
            attempts: 2,
            retry_after: Duration::from_millis(20),
            ..RuleSettings::default()
        },
        runtime: tokio::runtime::Handle::current(),
    })
    .unwrap()
}

fn futures_block(
    client: impl std::future::Future<Output = anyhow::Result<kube::Client>>,
) -> kube::Client {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(client)).unwrap()
}

fn restorer(world: &World, fail_first: u32, hang: bool) -> Arc<Restorer> {
    Arc::new(Restorer {
        store: world.work.path().join("store"),
        root: world.work.path().join("destination"),
        fail_first,
        calls: AtomicU32::new(0),
        hang,
        dropped: Arc::new(AtomicBool::new(false)),
    })
}

fn job(world: &World) -> MigrationJob {
    MigrationJob {
        namespace: "mysql".to_owned(),
        name: "mysql-now".to_owned(),
        migration: migration(),
        pair: world.pair.clone(),
        store: None,
        pre_exec_rule: None,
        post_exec_rule: None,
        token: 7,
        source: "group-under-test".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_copies_its_volume_and_objects_and_reports_each_stage() {
    let world = world(json!({"hostPath": "DATA"})).await;
    std::fs::create_dir(world.work.path().join("destination")).unwrap();
    let destination = restorer(&world, 1, false);
    let pool = pool(&world, destination.clone());
    let (tx, mut rx) = mpsc::channel::<JobReport>(64);
    let outcome = pool.run(job(&world), tx).await;
    assert_eq!(outcome.status, MigrationStatusType::Successful, "{outcome:?}");
    assert_eq!(destination.calls.load(Ordering::SeqCst), 2, "the failed restore was retried");
    assert_eq!(outcome.volumes.len(), 1);
    assert_eq!(outcome.volumes[0].status, MigrationStatusType::Successful);
    assert_eq!(outcome.volumes[0].bytes_total, 20 * 50_000);
    // The first restore failed; the retry restores the same run 1 (the source is not read
    // again), which was the volume's first run, so full.
    assert!(outcome.volumes[0].reason.contains("(full run 1: 20 files changed"), "{outcome:?}");
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(world.work.path().join("mysql-data"))
        .arg(world.work.path().join("destination/mysql.data"))
        .status()
        .unwrap();
    assert!(diff.success(), "the destination volume equals the source");

    let dest = world.destination.client().await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(dest.clone(), "mysql");
    let copied = deployments.get("mysql").await.unwrap();
    assert_eq!(copied.spec.unwrap().replicas, Some(0), "a standby is scaled to 0");
    let pvs: Api<PersistentVolume> = Api::all(dest.clone());
    let pv = pvs.get("pv-mysql").await.unwrap();
    let path = pv.spec.unwrap().host_path.unwrap().path;
    assert_eq!(
        path,
        world.work.path().join("destination/mysql.data").display().to_string(),
        "the standby PV points at the restored folder"
    );
    let maps: Api<ConfigMap> = Api::namespaced(dest, "mysql");
    assert!(maps.get_opt("mysql-config").await.unwrap().is_some());

    let mut stages = Vec::new();
    while let Ok(report) = rx.try_recv() {
        if stages.last() != Some(&report.stage) {
            stages.push(report.stage);
        }
    }
    assert!(
        stages.contains(&MigrationStage::Volumes) && stages.contains(&MigrationStage::Applications),
        "{stages:?}"
    );
    assert_eq!(stages.last(), Some(&MigrationStage::Final));
    let last = outcome.last.unwrap();
    assert_eq!(last.bytes, (1_000_000, 1_000_000));
    assert!(last.bytes_per_second > 0 && last.eta_seconds == 0, "{last:?}");
    assert!(last.objects.0 >= 4 && last.objects.0 == last.objects.1, "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_a_volume_that_is_not_a_directory_fails_the_migration_by_name() {
    let world = world(json!({"csi": {"driver": "pxd.portworx.com", "volumeHandle": "123"}})).await;
    let pool = pool(&world, restorer(&world, 0, false));
    let (tx, _rx) = mpsc::channel(64);
    let outcome = pool.run(job(&world), tx).await;
    assert_eq!(outcome.status, MigrationStatusType::Failed);
    assert!(
        outcome.reason.contains("mysql/data")
            && outcome.reason.contains("neither hostPath nor local"),
        "{}",
        outcome.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_aborts_its_volume_copy() {
    let world = world(json!({"hostPath": "DATA"})).await;
    let destination = restorer(&world, 0, true);
    let pool = pool(&world, destination.clone());
    let (tx, mut rx) = mpsc::channel(64);
    let mut run = Box::pin(pool.run(job(&world), tx));
    let started = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                _ = &mut run => panic!("the run cannot finish: its destination hangs"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if destination.calls.load(Ordering::SeqCst) > 0 {
                break;
            }
        }
    })
    .await;
    assert!(started.is_ok(), "the volume reached its destination");
    drop(run);
    let aborted = tokio::time::timeout(Duration::from_secs(5), async {
        while !destination.dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(aborted.is_ok(), "the hanging restore was dropped");
    while rx.try_recv().is_ok() {}
}

/// Creates a Running pod `mysql-0` (label app=mysql) in the source's namespace mysql.
async fn running_pod(world: &World) {
    let client = world.source.client().await.unwrap();
    create::<Pod>(
        &client,
        Some("mysql"),
        json!({
            "metadata": {"name": "mysql-0", "namespace": "mysql", "labels": {"app": "mysql"}},
            "spec": {"containers": [{"name": "mysql", "image": "mysql:8"}]}
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "mysql");
    let status = json!({"status": {"phase": "Running"}});
    pods.patch_status("mysql-0", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

fn rule(name: &str, actions: serde_json::Value) -> avocet_types::rule::Rule {
    serde_json::from_value(json!({
        "apiVersion": "stork.libopenstorage.org/v1alpha1", "kind": "Rule",
        "metadata": {"name": name, "namespace": "mysql"},
        "rules": [{"podSelector": {"app": "mysql"}, "actions": actions}]
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_exec_background_command_holds_across_the_volume_copy_and_the_post_rule_runs_after() {
    let world = world(json!({"hostPath": "DATA"})).await;
    running_pod(&world).await;
    std::fs::create_dir(world.work.path().join("destination")).unwrap();
    let data = world.work.path().join("mysql-data");
    let lock = data.join("lock.txt");
    let mut job = job(&world);
    job.migration.spec.pre_exec_rule = "freeze".to_owned();
    job.migration.spec.post_exec_rule = "thaw".to_owned();
    // Held: written before ${WAIT_CMD}; released: after it, so only the source has it.
    job.pre_exec_rule = Some(rule(
        "freeze",
        json!([{
            "type": "command", "background": true,
            "value": format!("echo held > {0}; ${{WAIT_CMD}}; echo released >> {0}", lock.display())
        }]),
    ));
    job.post_exec_rule = Some(rule(
        "thaw",
        json!([{
            "type": "command", "value": "cat /dev/null > post-ran.txt"
        }]),
    ));
    let pool = pool(&world, restorer(&world, 0, false));
    let (tx, mut rx) = mpsc::channel(256);
    let outcome = pool.run(job, tx).await;
    assert_eq!(outcome.status, MigrationStatusType::Successful, "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "held\nreleased\n");
    let copied = world.work.path().join("destination/mysql.data/lock.txt");
    assert_eq!(
        std::fs::read_to_string(copied).unwrap(),
        "held\n",
        "the volume was copied while the background command held"
    );
    assert!(world.work.path().join("pods/mysql/mysql-0/post-ran.txt").exists());
    let mut stages = Vec::new();
    while let Ok(report) = rx.try_recv() {
        if stages.last() != Some(&report.stage) {
            stages.push(report.stage);
        }
    }
    // The post-exec rule runs once the volume is pushed, while its restore may still run, so
    // its stage shows only when it outlasts the restores.
    let order = [
        MigrationStage::PreExecRule,
        MigrationStage::Volumes,
        MigrationStage::Applications,
        MigrationStage::Final,
    ];
    let seen: Vec<_> = stages.iter().filter(|s| order.contains(s)).copied().collect();
    assert_eq!(seen, order, "{stages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_missing_rule_fails_the_migration_by_name_before_any_volume_moves() {
    let world = world(json!({"hostPath": "DATA"})).await;
    running_pod(&world).await;
    let destination = restorer(&world, 0, false);
    let pool = pool(&world, destination.clone());
    let mut failing = job(&world);
    failing.migration.spec.pre_exec_rule = "freeze".to_owned();
    failing.pre_exec_rule =
        Some(rule("freeze", json!([{"type": "command", "value": "echo no lock >&2; exit 3"}])));
    failing.migration.spec.post_exec_rule = "thaw".to_owned();
    failing.post_exec_rule =
        Some(rule("thaw", json!([{"type": "command", "value": "touch thawed.txt"}])));
    let (tx, _rx) = mpsc::channel(256);
    let outcome = pool.run(failing, tx).await;
    assert_eq!(outcome.status, MigrationStatusType::Failed);
    for part in [
        "spec.preExecRule \"freeze\"",
        "mysql/mysql-0",
        "exit status 3",
        "no lock",
        "after 2 attempts",
    ] {
        assert!(outcome.reason.contains(part), "{part:?} in {:?}", outcome.reason);
    }
    assert_eq!(destination.calls.load(Ordering::SeqCst), 0, "no volume moved");
    // The pre-exec rule began, so its post-exec rule still runs (a thaw after a freeze).
    let thawed = world.work.path().join("pods/mysql/mysql-0/thawed.txt");
    let ran = tokio::time::timeout(Duration::from_secs(10), async {
        while !thawed.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(ran.await.is_ok(), "the post-exec rule ran after the failure");

    let mut missing = job(&world);
    missing.migration.spec.post_exec_rule = "thaw".to_owned();
    let (tx, _rx) = mpsc::channel(256);
    let outcome = pool.run(missing, tx).await;
    assert_eq!(outcome.status, MigrationStatusType::Failed);
    assert!(
        outcome
            .reason
            .contains("spec.postExecRule \"thaw\": there is no Rule thaw in namespace mysql"),
        "{}",
        outcome.reason
    );
    assert_eq!(destination.calls.load(Ordering::SeqCst), 0, "no volume moved");
}
