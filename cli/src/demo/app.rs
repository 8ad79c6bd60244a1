//! The sample stateful app the demo migrates: namespace `mysql` with a Deployment, a PVC bound
//! to a `hostPath` PV whose directory holds the data, a Service, a ConfigMap and a Secret; and
//! a writer that keeps changing that data (pages rewritten in place, a binlog appended), as a
//! database would between scheduled migrations.

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// The app's namespace, as in the reference's examples.
pub(super) const NAMESPACE: &str = "mysql";

/// A page, the unit the writer rewrites.
const PAGE: u64 = 16 * 1024;
/// [`PAGE`] as a buffer length.
const PAGE_LEN: usize = 16 * 1024;

/// The source cluster's objects of the app, the PV's `hostPath` at `data`.
pub(super) fn objects(data: &Path) -> Vec<Value> {
    let labels = json!({"app": "mysql"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-mysql"},
               "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "manual", "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": data.to_string_lossy()}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "mysql-data", "namespace": NAMESPACE},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                        "volumeName": "pv-mysql", "resources": {"requests": {"storage": "2Gi"}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "mysql-config", "namespace": NAMESPACE},
               "data": {"my.cnf": "[mysqld]\ninnodb_buffer_pool_size=256M\nbinlog_format=ROW\n"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "mysql-credentials", "namespace": NAMESPACE},
               "type": "Opaque", "stringData": {"MYSQL_ROOT_PASSWORD": "demo-only-password"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mysql", "namespace": NAMESPACE},
               "spec": {"selector": labels, "ports": [{"name": "mysql", "port": 3306}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "mysql", "namespace": NAMESPACE, "labels": labels},
               "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": {
                            "containers": [{"name": "mysql", "image": "mysql:8.4",
                                "envFrom": [{"secretRef": {"name": "mysql-credentials"}}],
                                "ports": [{"containerPort": 3306}],
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/var/lib/mysql"},
                                    {"name": "config", "mountPath": "/etc/mysql/conf.d"}]}],
                            "volumes": [
                                {"name": "data", "persistentVolumeClaim": {"claimName": "mysql-data"}},
                                {"name": "config", "configMap": {"name": "mysql-config"}}]}}}}),
    ]
}

/// A small, fast pseudo-random generator (xorshift64*): the data must not compress, so that
/// bytes sent measure what changed, and must be the same for a given seed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The table files, with their share of the data.
const TABLES: [&str; 6] = [
    "ibdata1",
    "shop/orders.ibd",
    "shop/order_items.ibd",
    "shop/customers.ibd",
    "shop/products.ibd",
    "shop/payments.ibd",
];

/// Writes `mib` MiB of data into `dir` (the PV's folder): six table files of whole pages and a
/// binlog.
pub(super) fn seed_data(dir: &Path, mib: u32) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir.join("shop"))?;
    let total = u64::from(mib) * 1024 * 1024;
    let per_table = (total / TABLES.len() as u64 / PAGE).max(1) * PAGE;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut page = vec![0u8; PAGE_LEN];
    for table in TABLES {
        let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join(table))?);
        for _ in 0..per_table / PAGE {
            noise.fill(&mut page);
            file.write_all(&page)?;
        }
        file.flush()?;
    }
    std::fs::write(dir.join("binlog.000001"), b"")?;
    Ok(per_table * TABLES.len() as u64)
}

/// The writer: every 250 ms it rewrites one page of a table in place and appends an event to
/// the binlog, until stopped.
pub(super) struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts writing into `dir`.
    pub(super) fn start(dir: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let (stopped, counted) = (Arc::clone(&stop), Arc::clone(&writes));
        let thread = std::thread::spawn(move || {
            let mut noise = Noise(0xD1B5_4A32_D192_ED03);
            let mut page = vec![0u8; PAGE_LEN];
            while !stopped.load(Ordering::Relaxed) {
                let pick = usize::try_from(noise.next() % TABLES.len() as u64).unwrap_or_default();
                let table = dir.join(TABLES[pick]);
                let pages = std::fs::metadata(&table).map(|m| m.len() / PAGE).unwrap_or(0);
                if pages > 0 {
                    noise.fill(&mut page);
                    let at = (noise.next() % pages) * PAGE;
                    let written = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&table)
                        .and_then(|file| file.write_at(&page, at));
                    let event = format!(
                        "UPDATE {} page {} #{}\n",
                        table.file_name().unwrap_or_default().to_string_lossy(),
                        at / PAGE,
                        counted.load(Ordering::Relaxed)
                    );
                    let logged = std::fs::OpenOptions::new()
                        .append(true)
                        .open(dir.join("binlog.000001"))
                        .and_then(|mut log| log.write_all(event.as_bytes()));
                    if written.is_ok() && logged.is_ok() {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Writer { stop, writes, thread: Some(thread) }
    }

    /// Stops writing and waits for the last write to finish; returns how many were made.
    pub(super) fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.writes.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Compares two directory trees byte for byte: `Ok((files, bytes))` when they hold the same
/// files with the same contents, else the first difference.
pub(super) fn compare_trees(left: &Path, right: &Path) -> Result<(u64, u64), String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(root, &path, out)?;
            } else {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        Ok(())
    }
    let list = |root: &Path| -> Result<Vec<PathBuf>, String> {
        let mut files = Vec::new();
        walk(root, root, &mut files).map_err(|e| format!("{}: {e}", root.display()))?;
        files.sort();
        Ok(files)
    };
    let (ours, theirs) = (list(left)?, list(right)?);
    if ours != theirs {
        let only =
            ours.iter().find(|f| !theirs.contains(f)).or(theirs.iter().find(|f| !ours.contains(f)));
        return Err(format!(
            "the trees hold different files ({} and {}; first difference: {})",
            ours.len(),
            theirs.len(),
            only.map_or_else(String::new, |f| f.display().to_string())
        ));
    }
    let mut bytes = 0;
    for file in &ours {
        let read = |root: &Path| {
            std::fs::read(root.join(file)).map_err(|e| format!("{}: {e}", file.display()))
        };
        let (a, b) = (read(left)?, read(right)?);
        if a != b {
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            return Err(format!("{} differs at byte {at}", file.display()));
        }
        bytes += a.len() as u64;
    }
    Ok((ours.len() as u64, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_data_is_whole_pages_and_the_writer_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (data, copy) = (dir.path().join("data"), dir.path().join("copy"));
        let bytes = seed_data(&data, 1).unwrap();
        assert_eq!(bytes % PAGE, 0);
        seed_data(&copy, 1).unwrap();
        assert_eq!(compare_trees(&data, &copy), Ok((7, bytes)));
        let mut writer = Writer::start(data.clone());
        std::thread::sleep(Duration::from_millis(600));
        assert!(writer.stop() >= 1);
        let differs = compare_trees(&data, &copy).unwrap_err();
        assert!(differs.contains("differs at byte"), "{differs}");
        std::fs::remove_file(copy.join("ibdata1")).unwrap();
        assert!(compare_trees(&data, &copy).unwrap_err().contains("different files"));
    }
}
