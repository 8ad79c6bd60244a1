//! The data plane under faults, with real processes on loopback: two sandbox clusters
//! (`avocet sandbox`), a source group of three `avocet serve` nodes that run no workers, two
//! `avocet worker` processes, a one-node destination Avocet restoring volumes, and a real S3
//! server (s3s-fs). The S3 server and the destination's API are reached through fault proxies
//! ([`crate::proxy`]), so a test can make S3 answer 503, stall or reset, and take the
//! destination down, while it kills workers mid-transfer.
//!
//! The source namespace `mysql` holds a Deployment and a PVC on a `hostPath` PV whose folder
//! the test changes between migrations. Every migration is judged by what it left: a
//! Successful one's destination volume must equal, byte for byte, the run of the store it
//! names (restored independently with `avocetctl snapshot restore`), and the standby objects
//! must be whole (the Deployment scaled to 0 with its replicas recorded, the PV pointing at the
//! restored folder). A failed one may leave the last good copy, never a half-written one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Binaries, Cluster, Stopwatch};
use crate::proxy::Proxy;

/// The namespace migrated.
pub const NAMESPACE: &str = "mysql";
/// The ClusterPair.
pub const PAIR: &str = "remote";
const BUCKET: &str = "avocet";
const ACCESS_KEY: &str = avocet_transfer::testing::ACCESS_KEY;
const SECRET_KEY: &str = avocet_transfer::testing::SECRET_KEY;

/// A child process killed and reaped on drop.
#[derive(Debug)]
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everything a data-plane chaos test runs.
pub struct DataWorld {
    /// The source group.
    pub source: Cluster,
    /// The destination Avocet.
    pub destination: Cluster,
    /// The S3 server's proxy.
    pub s3_proxy: Proxy,
    /// The destination API's proxy (the ClusterPair names it).
    pub destination_proxy: Proxy,
    /// The source volume's folder.
    pub data: PathBuf,
    /// Where the destination restores the volume.
    pub restored: PathBuf,
    /// The destination cluster's kubeconfig.
    pub destination_kubeconfig: PathBuf,
    workers: Vec<Option<Owned>>,
    worker_args: Vec<Vec<String>>,
    s3_port: u16,
    key: PathBuf,
    binaries: Binaries,
    _sandboxes: Vec<Owned>,
    _s3: avocet_transfer::testing::S3Server,
    dir: tempfile::TempDir,
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let dir = kubeconfig.parent().unwrap_or(Path::new("."));
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", dir.join("kube-cache"))
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Starts `avocet sandbox` on a free port; returns it with its kubeconfig.
fn sandbox(binaries: &Binaries, dir: &Path, name: &str) -> Result<(Owned, PathBuf), String> {
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    let child = Command::new(&binaries.avocet)
        .args(["sandbox", "--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("avocet sandbox: {e}"))?;
    let owned = Owned(child);
    let waiting = Stopwatch::start();
    while !kubeconfig.is_file() {
        if waiting.elapsed() > Duration::from_secs(10) {
            return Err(format!("the {name} sandbox wrote no kubeconfig in 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((owned, kubeconfig))
}

/// Writes `mib` MiB of incompressible data into `dir` as eight files.
fn seed(dir: &Path, mib: usize) -> Result<(), String> {
    std::fs::create_dir_all(dir.join("db")).map_err(|e| e.to_string())?;
    for i in 0..8u64 {
        let bytes = avocet_transfer::testing::noise(mib * 1024 * 1024 / 8, i + 1);
        std::fs::write(dir.join(format!("db/t{i}.ibd")), bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl DataWorld {
    /// Starts everything with `mib` MiB of data in the source volume.
    pub fn start(mib: usize) -> Result<DataWorld, String> {
        let binaries = Binaries::locate()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (source_sandbox, source_kubeconfig) = sandbox(&binaries, dir.path(), "source")?;
        let (dest_sandbox, destination_kubeconfig) = sandbox(&binaries, dir.path(), "destination")?;
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/crds");
        kubectl(&source_kubeconfig, &["apply", "-f", &crds.to_string_lossy()])?;
        let data = dir.path().join("mysql-data");
        seed(&data, mib)?;
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-mysql"},
             "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                      "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": data.to_string_lossy()}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": NAMESPACE},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": "pv-mysql",
                      "resources": {"requests": {"storage": "1Gi"}}}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mysql", "namespace": NAMESPACE},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "mysql"}},
                      "template": {"metadata": {"labels": {"app": "mysql"}},
                                   "spec": {"containers": [{"name": "mysql", "image": "mysql:8.4"}]}}}}
        ]});
        let file = dir.path().join("app.json");
        std::fs::write(&file, objects.to_string()).map_err(|e| e.to_string())?;
        kubectl(&source_kubeconfig, &["apply", "-f", &file.to_string_lossy()])?;

        // S3 behind a proxy; every Avocet uses it as its store, with one key.
        let s3_data = dir.path().join("s3");
        std::fs::create_dir_all(s3_data.join(BUCKET)).map_err(|e| e.to_string())?;
        let s3 = avocet_transfer::testing::S3Server::start(&s3_data)?;
        let s3_proxy = Proxy::start(s3.port)?;
        let store =
            format!("s3://{BUCKET}?endpoint=http://127.0.0.1:{}&region=us-east-1", s3_proxy.port);
        let key = dir.path().join("store.key");
        std::fs::write(&key, "the data-plane chaos store key, 32+ bytes")
            .map_err(|e| e.to_string())?;
        let key_text = key.to_string_lossy().into_owned();
        let env = [("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)];
        let restored_root = dir.path().join("volumes");
        std::fs::create_dir_all(&restored_root).map_err(|e| e.to_string())?;
        let root_text = restored_root.to_string_lossy().into_owned();
        let timing = ["--heartbeat-ms", "50", "--election-timeout-ms", "300-600"];
        let mut flags =
            vec!["--store", &store, "--store-key-file", &key_text, "--volume-root", &root_text];
        flags.extend(timing);
        let destination = Cluster::start_with_env(binaries.clone(), 1, &flags, &env)?;
        destination.leader(Duration::from_secs(30))?;
        let destination_api = destination.nodes[&1].api.rsplit_once(':').map(|(_, p)| p.to_owned());
        let destination_proxy = Proxy::start(
            destination_api.and_then(|p| p.parse().ok()).ok_or("no destination port")?,
        )?;
        let source_kubeconfig_text = source_kubeconfig.to_string_lossy().into_owned();
        let mut flags = vec![
            "--kubeconfig",
            &source_kubeconfig_text,
            "--store",
            &store,
            "--store-key-file",
            &key_text,
            "--workers",
            "0",
            "--pair-check-interval",
            "1s",
        ];
        flags.extend(timing);
        let source = Cluster::start_with_env(binaries.clone(), 3, &flags, &env)?;
        let leader = source.leader(Duration::from_secs(30))?;

        // The pair, generated against the destination, its API reached through the proxy.
        let options = format!("ip=127.0.0.1,port={},token={ADMIN_TOKEN}", destination_proxy.port);
        let dest_kubeconfig_text = destination_kubeconfig.to_string_lossy().into_owned();
        let (ok, pair, err) = source.ctl(
            leader,
            &[
                "generate",
                "clusterpair",
                PAIR,
                "-n",
                NAMESPACE,
                "--kubeconfig",
                &dest_kubeconfig_text,
                "-s",
                &options,
            ],
        );
        if !ok {
            return Err(format!("generate clusterpair: {err}"));
        }
        let pair_file = dir.path().join("pair.yaml");
        std::fs::write(&pair_file, pair).map_err(|e| e.to_string())?;
        let (ok, out, err) = source.ctl(leader, &["apply", "-f", &pair_file.to_string_lossy()]);
        if !ok {
            return Err(format!("apply the pair: {out}{err}"));
        }
        source.eventually(Duration::from_secs(30), "the pair Ready", || {
            let pair = source.ctl_json(leader, &["get", "clusterpair", PAIR, "-n", NAMESPACE])?;
            (pair["status"]["schedulerStatus"] == "Ready").then_some(())
        })?;

        // Two worker processes, each leasing through a node of its own, with short leases.
        let worker_args: Vec<Vec<String>> = (1..=2u64)
            .map(|i| {
                let server = format!("http://{}", source.nodes[&i].api);
                [
                    "worker",
                    "--server",
                    &server,
                    "--token",
                    ADMIN_TOKEN,
                    "--kubeconfig",
                    &source_kubeconfig_text,
                    "--store",
                    &store,
                    "--store-key-file",
                    &key_text,
                    "--workers",
                    "1",
                    "--name",
                    &format!("w{i}"),
                    "--lease-ms",
                    "3000",
                ]
                .map(str::to_owned)
                .to_vec()
            })
            .collect();
        let mut world = DataWorld {
            source,
            destination,
            s3_proxy,
            destination_proxy,
            data,
            restored: restored_root.join(format!("{NAMESPACE}.data")),
            destination_kubeconfig,
            workers: vec![None, None],
            worker_args,
            s3_port: s3.port,
            key,
            binaries,
            _sandboxes: vec![source_sandbox, dest_sandbox],
            _s3: s3,
            dir,
        };
        for i in 0..2 {
            world.start_worker(i)?;
        }
        Ok(world)
    }

    /// Starts (or restarts) worker `i` (0 or 1).
    pub fn start_worker(&mut self, i: usize) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("worker-{i}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&self.binaries.avocet)
            .args(&self.worker_args[i])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("avocet worker: {e}"))?;
        self.workers[i] = Some(Owned(child));
        Ok(())
    }

    /// Kills worker `i` with SIGKILL.
    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i] = None;
    }

    /// How many worker slots there are (running or not).
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Keeps only worker `keep` (renumbered as worker 0) and starts a second beside it.
    pub fn retire_to(&mut self, keep: usize) -> Result<(), String> {
        let args = self.worker_args[keep].clone();
        let running = self.workers.get_mut(keep).and_then(Option::take);
        self.workers = vec![running, None];
        self.worker_args = vec![args.clone(), args];
        if let Some(at) = self.worker_args[1].iter().position(|a| a == "--name") {
            self.worker_args[1][at + 1] = format!("w{}", self.generation());
        }
        self.start_worker(1)
    }

    fn generation(&self) -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(10);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Pauses (`STOP`) or resumes (`CONT`) worker `i`.
    pub fn signal_worker(&self, i: usize, signal: &str) {
        if let Some(Some(worker)) = self.workers.get(i) {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &worker.0.id().to_string()])
                .status();
        }
    }

    /// Adds a worker (named `w<n>`) leasing through node 3; returns its index.
    pub fn add_worker(&mut self) -> Result<usize, String> {
        let i = self.workers.len();
        let mut args = self.worker_args[0].clone();
        if let Some(at) = args.iter().position(|a| a == "--server") {
            args[at + 1] = format!("http://{}", self.source.nodes[&3].api);
        }
        if let Some(at) = args.iter().position(|a| a == "--name") {
            args[at + 1] = format!("w{}", self.generation());
        }
        self.worker_args.push(args);
        self.workers.push(None);
        self.start_worker(i)?;
        Ok(i)
    }

    /// Rewrites `files` of the source volume (a new version of each) and adds one file.
    pub fn change_data(&self, generation: u64, files: u64) -> Result<(), String> {
        for i in 0..files.min(8) {
            let path = self.data.join(format!("db/t{i}.ibd"));
            let mut bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
            let page = avocet_transfer::testing::noise(16 * 1024, generation * 100 + i);
            let pages = (bytes.len() / (16 * 1024)).max(1) as u64;
            let at =
                usize::try_from((generation * 7919 + i * 104_729) % pages).unwrap_or(0) * 16 * 1024;
            let end = (at + page.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&page[..end - at]);
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        }
        std::fs::write(
            self.data.join(format!("binlog.{generation:06}")),
            format!("generation {generation}\n"),
        )
        .map_err(|e| e.to_string())
    }

    /// Rewrites every file of the source volume with new data (a migration must send it all).
    pub fn rewrite_all(&self, generation: u64) -> Result<(), String> {
        for i in 0..8u64 {
            let path = self.data.join(format!("db/t{i}.ibd"));
            let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
            let bytes = avocet_transfer::testing::noise(
                usize::try_from(len).unwrap_or(0),
                generation * 1000 + i,
            );
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Creates one-off migration `name` through the leader.
    pub fn create_migration(&self, name: &str) -> Result<(), String> {
        let leader = self.source.leader(Duration::from_secs(30))?;
        let (ok, out, err) = self.source.ctl(
            leader,
            &[
                "create",
                "migration",
                name,
                "-n",
                NAMESPACE,
                "-c",
                PAIR,
                "--namespaces",
                NAMESPACE,
                "--startApplications",
                "false",
            ],
        );
        if ok { Ok(()) } else { Err(format!("create migration {name}: {out}{err}")) }
    }

    /// Migration `name` as the source group shows it.
    pub fn migration(&self, name: &str) -> Option<Value> {
        let leader = self.source.leader(Duration::from_secs(10)).ok()?;
        self.source.ctl_json(leader, &["get", "migration", name, "-n", NAMESPACE])
    }

    /// The reasons of the events about `target` (`migration/NAME`), oldest first.
    pub fn event_reasons(&self, target: &str) -> Vec<String> {
        let Ok(leader) = self.source.leader(Duration::from_secs(10)) else { return Vec::new() };
        let events =
            self.source.ctl_json(leader, &["get", "events", "-n", NAMESPACE, "--for", target]);
        let items = events.and_then(|e| e["items"].as_array().cloned()).unwrap_or_default();
        items.iter().filter_map(|e| e["reason"].as_str().map(str::to_owned)).collect()
    }

    /// Every event of the migrated namespace, in commit order (for W-1, see
    /// [`crate::oracle::stale_leases`]).
    pub fn events(&self) -> Result<Vec<Value>, String> {
        let leader = self.source.leader(Duration::from_secs(10))?;
        let events = self
            .source
            .ctl_json(leader, &["get", "events", "-n", NAMESPACE])
            .ok_or("the events cannot be read")?;
        Ok(events["items"].as_array().cloned().unwrap_or_default())
    }

    /// Waits (at most 30 s) until a worker has leased migration `name` (its status is no longer
    /// Pending).
    pub fn wait_leased(&self, name: &str) -> Result<(), String> {
        self.source.eventually(Duration::from_secs(30), "the migration leased", || {
            let status = self.migration(name)?["status"]["status"].as_str()?.to_owned();
            (status != "Pending" && !status.is_empty()).then_some(())
        })
    }

    /// Waits (at most `timeout`) for migration `name` to end; returns it.
    pub fn wait_ended(&self, name: &str, timeout: Duration) -> Result<Value, String> {
        self.source.eventually(timeout, &format!("migration {name} ended"), || {
            let migration = self.migration(name)?;
            let status = migration["status"]["status"].as_str().unwrap_or_default().to_owned();
            matches!(status.as_str(), "Successful" | "Failed" | "PartialSuccess")
                .then_some(migration)
        })
    }

    /// Checks what a Successful migration left on the destination: the restored folder equals
    /// the run of the store its volume names, byte for byte, and the standby objects are whole.
    pub fn check_successful(&self, migration: &Value) -> Result<(), String> {
        let volumes = migration["status"]["volumes"].as_array().cloned().unwrap_or_default();
        let [volume] = volumes.as_slice() else {
            return Err(format!("one volume expected: {volumes:?}"));
        };
        let reason = volume["reason"].as_str().unwrap_or_default();
        let sent = avocet_workers::volumes::VolumeSent::parse(reason)
            .ok_or_else(|| format!("unreadable volume reason {reason:?}"))?
            .run;
        let snapshot = self.dir.path().join(format!("check-run-{sent}"));
        let store = format!(
            "s3://{BUCKET}/{NAMESPACE}.{PAIR}?endpoint=http://127.0.0.1:{}&region=us-east-1",
            self.s3_port
        );
        let out = Command::new(&self.binaries.avocetctl)
            .args([
                "snapshot",
                "restore",
                "--store",
                &store,
                "--volume",
                &format!("{NAMESPACE}.data"),
            ])
            .args(["--run", &sent.to_string(), "--key-file"])
            .arg(&self.key)
            .arg("--target")
            .arg(&snapshot)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "snapshot restore of run {sent}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let same = Command::new("diff")
            .arg("-r")
            .arg(&snapshot)
            .arg(&self.restored)
            .output()
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&snapshot);
        if !same.status.success() {
            return Err(format!(
                "the destination's volume differs from run {sent} of the store: {}",
                String::from_utf8_lossy(&same.stdout)
                    .lines()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        self.check_objects()
    }

    /// Checks the standby objects are whole: the Deployment scaled to 0 with its replicas
    /// recorded, the PV pointing at the restored folder.
    pub fn check_objects(&self) -> Result<(), String> {
        let text = kubectl(
            &self.destination_kubeconfig,
            &["get", "deployment", "mysql", "-n", NAMESPACE, "-o", "json"],
        )?;
        let deployment: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let recorded = deployment
            .pointer("/metadata/annotations/stork.libopenstorage.org~1migrationReplicas")
            .and_then(Value::as_str);
        if deployment["spec"]["replicas"] != 0 || recorded != Some("2") {
            return Err(format!(
                "the standby Deployment is not whole: replicas {}, recorded {recorded:?}",
                deployment["spec"]["replicas"]
            ));
        }
        let text = kubectl(&self.destination_kubeconfig, &["get", "pv", "pv-mysql", "-o", "json"])?;
        let pv: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if pv["spec"]["hostPath"]["path"].as_str() != Some(&*self.restored.to_string_lossy()) {
            return Err(format!(
                "the standby PV does not point at the restored folder: {}",
                pv["spec"]["hostPath"]
            ));
        }
        Ok(())
    }

    /// The last lines of every log of the world.
    pub fn logs(&self) -> String {
        let mut text = self.source.log_tails(40);
        for i in 0..self.workers.len() {
            let log = std::fs::read_to_string(self.dir.path().join(format!("worker-{i}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!(
                "\n---- worker {i}:\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            ));
        }
        text.push_str(&format!("\n---- destination:\n{}", self.destination.log_tails(40)));
        text
    }
}
