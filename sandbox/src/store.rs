//! The sandbox's state: every object by resource, namespace and name; one resourceVersion counter
//! for all of them (as etcd's revision); the recent change history that watches resume from; and,
//! when a data directory is given, an append-only journal that survives a restart.
//!
//! Durability: journal lines are written and flushed to the operating system on every commit but
//! not fsynced, so a killed sandbox process loses nothing while a power loss may. It is a test and
//! demo component.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::registry::Registry;

/// Where one object lives: (group, plural, namespace or "", name). Sorted as etcd keys are.
pub(crate) type Key = (String, String, String, String);

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    /// Created.
    Added,
    /// Changed (including deletionTimestamp being set).
    Modified,
    /// Gone.
    Deleted,
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The resourceVersion the change was committed at.
    pub(crate) rv: u64,
    /// What happened.
    pub(crate) kind: EventType,
    /// Where.
    pub(crate) key: Key,
    /// The object after the change (before it, for deletions, with the deletion's version).
    pub(crate) object: Value,
    /// The object before the change (none for an addition), so that selector watches can
    /// report an object leaving their selection.
    pub(crate) previous: Option<Value>,
}

/// What a watch resumes with: the changes it missed and a receiver for the rest.
pub(crate) type Resume = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// How many changes a watch can resume across.
const HISTORY: usize = 50_000;

/// Everything the sandbox holds.
#[derive(Debug)]
pub(crate) struct Store {
    /// Served resource types.
    pub(crate) registry: Registry,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    changes: broadcast::Sender<Arc<Change>>,
    journal: Option<BufWriter<File>>,
    /// The data directory, when journalling.
    dir: Option<PathBuf>,
    /// Journal lines written since the last compaction.
    journal_lines: usize,
    /// The last journal write failure, until a request reports it.
    journal_error: Option<String>,
}

const JOURNAL: &str = "objects.jsonl";

/// Journal lines after which the journal is rewritten (or four per live object, if more).
const COMPACT_AFTER: usize = 20_000;

/// A journal line for a stored object: the storage key travels with it, so an object stays
/// readable whatever happens to the version or kind it was written through.
fn put_line(key: &Key, obj: &Value) -> Value {
    let (group, plural, namespace, name) = key;
    json!({ "put": obj, "key": { "group": group, "plural": plural, "namespace": namespace, "name": name } })
}

impl Store {
    /// An empty store, or the one journalled in `data_dir`.
    pub(crate) fn open(data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let (changes, _) = broadcast::channel(4096);
        let mut store = Self {
            registry: Registry::default(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            changes,
            journal: None,
            dir: data_dir.map(Path::to_path_buf),
            journal_lines: 0,
            journal_error: None,
        };
        let fresh = data_dir.is_none_or(|dir| !dir.join(JOURNAL).exists());
        if fresh {
            store.seed();
        }
        if let Some(dir) = data_dir {
            fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            let path = dir.join(JOURNAL);
            if path.exists() {
                store.replay(&path)?;
            }
            store.compact_and_reopen()?;
        }
        Ok(store)
    }

    /// The namespaces every cluster starts with.
    fn seed(&mut self) {
        let now = crate::ops::now();
        for (i, name) in
            ["default", "kube-node-lease", "kube-public", "kube-system"].into_iter().enumerate()
        {
            let ns = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {
                    "name": name, "uid": format!("00000000-0000-4000-8000-00000000000{i}"),
                    "creationTimestamp": now, "labels": { "kubernetes.io/metadata.name": name },
                },
                "spec": { "finalizers": ["kubernetes"] },
                "status": { "phase": "Active" },
            });
            self.put((String::new(), "namespaces".to_owned(), String::new(), name.to_owned()), ns);
        }
    }

    fn replay(&mut self, path: &Path) -> anyhow::Result<()> {
        let file = File::open(path)
            .with_context(|| format!("cannot read the journal {}", path.display()))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line =
                line.with_context(|| format!("cannot read line {} of {}", i + 1, path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                // A torn last line from a killed process: everything before it stands.
                tracing::warn!(line = i + 1, journal = %path.display(), "ignoring an unreadable journal line");
                continue;
            };
            if let Some(rv) = entry["resourceVersion"].as_u64() {
                self.rv = self.rv.max(rv);
            }
            if let Some(obj) = entry.get("put") {
                let rv =
                    obj["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse::<u64>().ok());
                self.rv = self.rv.max(rv.unwrap_or(0));
                let stored = &entry["key"];
                let field = |f: &str| stored[f].as_str().map(str::to_owned);
                let recorded =
                    match (field("group"), field("plural"), field("namespace"), field("name")) {
                        (Some(g), Some(p), Some(ns), Some(n)) => Some((g, p, ns, n)),
                        _ => None,
                    };
                let Some(key) = recorded.or_else(|| self.key_of(obj)) else {
                    tracing::warn!(
                        line = i + 1,
                        "ignoring a journalled object of a kind no longer served"
                    );
                    continue;
                };
                if key.0 == "apiextensions.k8s.io" {
                    self.registry.install_crd(obj).ok();
                }
                self.objects.insert(key, obj.clone());
            } else if let Some(gone) = entry.get("delete") {
                let s = |f: &str| gone[f].as_str().unwrap_or_default().to_owned();
                let key = (s("group"), s("plural"), s("namespace"), s("name"));
                if key.0 == "apiextensions.k8s.io"
                    && let Some(crd) = self.objects.get(&key)
                {
                    let (g, p) =
                        (crd["spec"]["group"].as_str(), crd["spec"]["names"]["plural"].as_str());
                    if let (Some(g), Some(p)) = (g, p) {
                        self.registry.remove_crd(g, p);
                    }
                }
                self.objects.remove(&key);
            }
        }
        Ok(())
    }

    /// Rewrites the journal and appends to the new one from here on.
    fn compact_and_reopen(&mut self) -> anyhow::Result<()> {
        let Some(dir) = self.dir.clone() else { return Ok(()) };
        self.journal = None;
        self.compact(&dir)?;
        let path = dir.join(JOURNAL);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        self.journal = Some(BufWriter::new(file));
        self.journal_lines = self.objects.len();
        Ok(())
    }

    /// Rewrites the journal as one line per live object (definitions first) and the version.
    fn compact(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(JOURNAL);
        let tmp: PathBuf = dir.join(format!("{JOURNAL}.tmp"));
        let mut out = BufWriter::new(
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
        );
        writeln!(out, "{}", json!({ "resourceVersion": self.rv }))?;
        let crds = self.objects.iter().filter(|(k, _)| k.0 == "apiextensions.k8s.io");
        let rest = self.objects.iter().filter(|(k, _)| k.0 != "apiextensions.k8s.io");
        for (key, obj) in crds.chain(rest) {
            writeln!(out, "{}", put_line(key, obj))?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    /// The storage key of an object, from its apiVersion, kind and metadata.
    pub(crate) fn key_of(&self, obj: &Value) -> Option<Key> {
        let rt = self.registry.find_kind(obj["apiVersion"].as_str()?, obj["kind"].as_str()?)?;
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str()?;
        Some((rt.group.clone(), rt.plural.clone(), ns.to_owned(), name.to_owned()))
    }

    /// The current resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub(crate) fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource in key order, optionally in one namespace.
    pub(crate) fn range<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start = (
            group.to_owned(),
            plural.to_owned(),
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        self.objects.range(start..).take_while(move |(k, _)| {
            k.0 == group && k.1 == plural && namespace.is_none_or(|ns| k.2 == ns)
        })
    }

    /// Every object in a namespace, of every resource.
    pub(crate) fn in_namespace(&self, namespace: &str) -> Vec<Key> {
        self.objects.keys().filter(|k| k.2 == namespace).cloned().collect()
    }

    /// Every object (for ownerReference lookups).
    pub(crate) fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// Commits a new or changed object: stamps the next resourceVersion, records the change for
    /// watches and the journal. Returns the stored object.
    pub(crate) fn put(&mut self, key: Key, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.journal_line(&put_line(&key, &obj));
        let previous = self.objects.insert(key.clone(), obj.clone());
        let kind = if previous.is_some() { EventType::Modified } else { EventType::Added };
        self.record(kind, key, obj.clone(), previous);
        obj
    }

    /// Removes an object; the DELETED event carries it with the deletion's resourceVersion.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let (group, plural, namespace, name) = key;
        self.journal_line(&json!({
            "delete": { "group": group, "plural": plural, "namespace": namespace, "name": name },
            "resourceVersion": self.rv,
        }));
        self.record(EventType::Deleted, key.clone(), obj.clone(), None);
        Some(obj)
    }

    fn journal_line(&mut self, line: &Value) {
        let Some(journal) = self.journal.as_mut() else { return };
        let written = writeln!(journal, "{line}").and_then(|()| journal.flush());
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot append to the sandbox journal; the change is kept in memory only");
            self.journal_error = Some(e.to_string());
            return;
        }
        self.journal_lines += 1;
        // Keep the journal within a small multiple of the live set.
        if self.journal_lines > COMPACT_AFTER.max(4 * self.objects.len())
            && let Err(e) = self.compact_and_reopen()
        {
            tracing::error!(error = %e, "cannot compact the sandbox journal");
            self.journal_error = Some(e.to_string());
        }
    }

    /// The journal failure since the last call, if any (the request that hit it reports it).
    pub(crate) fn take_journal_error(&mut self) -> Option<String> {
        self.journal_error.take()
    }

    fn record(&mut self, kind: EventType, key: Key, object: Value, previous: Option<Value>) {
        let change = Arc::new(Change { rv: self.rv, kind, key, object, previous });
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Arc::clone(&change));
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Changes after `rv` still in memory, and a receiver for the ones to come, taken together so
    /// none falls between. `None` when `rv` is older than the history reaches.
    pub(crate) fn watch_from(&self, rv: u64) -> Option<Resume> {
        let oldest_known = self.history.front().map_or(self.rv, |c| c.rv.saturating_sub(1));
        if rv < oldest_known {
            return None;
        }
        let past = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Some((past, self.changes.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn versions_grow_and_watches_resume_from_history() {
        let mut store = Store::open(None).expect("in memory");
        let seeded = store.rv();
        assert_eq!(seeded, 4, "the four namespaces every cluster starts with");
        let key = store.key_of(&cm("a")).expect("configmaps");
        let first = store.put(key.clone(), cm("a"));
        assert_eq!(first["metadata"]["resourceVersion"], (seeded + 1).to_string());
        store.put(key.clone(), cm("a"));
        let (past, _rx) = store.watch_from(seeded + 1).expect("in history");
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].kind, EventType::Modified);
        store.remove(&key);
        assert_eq!(store.rv(), seeded + 3);
    }

    #[test]
    fn a_journal_survives_reopening_and_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = Store::open(Some(dir.path())).expect("open");
            let (a, b) =
                (store.key_of(&cm("a")).expect("key"), store.key_of(&cm("b")).expect("key"));
            store.put(a, cm("a"));
            store.put(b.clone(), cm("b"));
            store.remove(&b);
        }
        let mut journal =
            OpenOptions::new().append(true).open(dir.path().join(JOURNAL)).expect("journal");
        write!(journal, "{{\"put\": {{\"apiVer").expect("torn line");
        let store = Store::open(Some(dir.path())).expect("reopen");
        assert_eq!(store.rv(), 4 + 3);
        let names: Vec<&str> =
            store.range("", "configmaps", None).map(|(k, _)| k.3.as_str()).collect();
        assert_eq!(names, ["a"]);
    }
}
