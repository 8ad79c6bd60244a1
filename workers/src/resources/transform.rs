//! The standby transforms (reference §4.4) and provenance, with Stork's annotation and label
//! keys so that Stork's tooling reads Avocet's standby as its own.
//!
//! Better than Stork (§7.2): DaemonSets are held off the standby (a nodeSelector no node
//! matches, the original kept in an annotation) instead of running there at once, and CronJobs
//! remember whether they were suspended on the source, so activation restores exactly that.

use std::collections::BTreeMap;

use avocet_types::registration::{ApplicationResource, SuspendOptions};
use serde_json::{Value, json};

use super::kinds;
use super::select::Item;

/// Marks every migrated object (annotation) and every scaled-down workload (label).
pub const MIGRATED: &str = "stork.libopenstorage.org/migrated";
/// The migration that copied the object.
pub const MIGRATION_NAME: &str = "stork.libopenstorage.org/migrationName";
/// The migration's namespace (how activation finds the schedule).
pub const MIGRATION_NAMESPACE: &str = "stork.libopenstorage.org/migrationNamespace";
/// When, as `2006-01-02-150405`.
pub const MIGRATION_TIME: &str = "stork.libopenstorage.org/migrationTime";
/// Hash of the prepared object; an equal hash on the destination means nothing to do.
pub const RESOURCE_HASH: &str = "stork.libopenstorage.org/resource-hash";
/// A workload's replica count on the source, restored by activation.
pub const MIGRATION_REPLICAS: &str = "stork.libopenstorage.org/migrationReplicas";
/// A PV's reclaim policy on the source (the copy is Retain).
pub const RECLAIM_POLICY: &str = "stork.libopenstorage.org/reclaimPolicy";
/// A PV's StorageClass on the source (the copy is collected with none).
pub const CURRENT_STORAGE_CLASS: &str = "stork.libopenstorage.org/current-storage-class-name";
/// On a Service: keep its IPs as they are.
pub const SKIP_MODIFY_RESOURCE: &str = "stork.libopenstorage.org/skip-modify-resource";
/// A held DaemonSet's node selector on the source, as JSON (Avocet's own key).
pub const ORIGINAL_NODE_SELECTOR: &str = "avocet.dev/original-node-selector";
/// The node label a held DaemonSet selects; no node carries it.
pub const HELD_NODE_LABEL: &str = "avocet.dev/standby-hold";
/// A CronJob's `suspend` on the source, `true` or `false` (Avocet's own key).
pub const ORIGINAL_SUSPEND: &str = "avocet.dev/original-suspend";
/// The prefix of the annotation recording a custom resource's suspended path.
pub const SUSPEND_PATH_PREFIX: &str = "stork.libopenstorage.org/";

/// What a migration says about the standby it builds.
#[derive(Debug, Clone)]
pub struct Standby<'a> {
    /// `startApplications`: leave workloads running on the destination.
    pub start_applications: bool,
    /// `skipServiceUpdate`: keep Services' IPs.
    pub skip_service_update: bool,
    /// The migration's name.
    pub migration_name: &'a str,
    /// The migration's namespace.
    pub migration_namespace: &'a str,
    /// The migration's time, `2006-01-02-150405`.
    pub migration_time: &'a str,
    /// Where the destination restored each migrated volume: PersistentVolume name → the
    /// directory its `hostPath`/`local` path becomes on the destination.
    pub volume_paths: &'a std::collections::BTreeMap<String, String>,
}

fn annotate(obj: &mut Value, key: &str, value: impl Into<String>) {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][key] = Value::String(value.into());
}

fn label(obj: &mut Value, key: &str, value: &str) {
    if !obj["metadata"]["labels"].is_object() {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"][key] = json!(value);
}

fn annotation<'v>(obj: &'v Value, key: &str) -> Option<&'v str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// Applies the standby transforms for the item's kind to its travelling form `obj`, then
/// provenance and the resource hash.
pub fn for_standby(
    item: &Item,
    mut obj: Value,
    registration: Option<&ApplicationResource>,
    s: &Standby<'_>,
) -> Value {
    let start = s.start_applications;
    match (item.group.as_str(), item.kind.as_str()) {
        (g, k) if kinds::scaled(g, k) => scale_down(&mut obj, start),
        ("batch", "CronJob") if !start => {
            let suspended = obj["spec"]["suspend"].as_bool().unwrap_or(false);
            // A held standby of a standby carries the first cluster's value forward; anything
            // else is recorded as it is on the source.
            if !(suspended && annotation(&obj, ORIGINAL_SUSPEND).is_some()) {
                annotate(&mut obj, ORIGINAL_SUSPEND, suspended.to_string());
            }
            obj["spec"]["suspend"] = json!(true);
        }
        ("batch", "Job") => {
            for path in [
                &["metadata", "labels"][..],
                &["spec", "selector", "matchLabels"],
                &["spec", "template", "metadata", "labels"],
            ] {
                if let Some(labels) = path
                    .iter()
                    .try_fold(&mut obj, |at, seg| at.get_mut(*seg))
                    .and_then(Value::as_object_mut)
                {
                    labels.remove("controller-uid");
                    labels.remove("batch.kubernetes.io/controller-uid");
                    labels.remove("batch.kubernetes.io/job-name");
                    labels.remove("job-name");
                }
            }
            // The destination generates its own selector for the Job it creates.
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("selector");
                spec.remove("manualSelector");
            }
        }
        ("apps", "DaemonSet") if !start => {
            let original = obj["spec"]["template"]["spec"]["nodeSelector"].clone();
            let held = original.get(HELD_NODE_LABEL).is_some();
            if !(held && annotation(&obj, ORIGINAL_NODE_SELECTOR).is_some()) {
                let text = if original.is_null() { "{}".to_owned() } else { original.to_string() };
                annotate(&mut obj, ORIGINAL_NODE_SELECTOR, text);
            }
            if obj["spec"]["template"]["spec"].is_object() {
                obj["spec"]["template"]["spec"]["nodeSelector"] =
                    json!({ HELD_NODE_LABEL: "true" });
            }
            label(&mut obj, MIGRATED, "true");
        }
        ("", "Service") => {
            let keep = s.skip_service_update || annotation(&obj, SKIP_MODIFY_RESOURCE).is_some();
            if !keep && let Some(spec) = obj["spec"].as_object_mut() {
                // Left out rather than emptied, so that the destination allocates its own and
                // server-side apply never claims the field.
                if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                spec.remove("loadBalancerIP");
            }
        }
        ("", "PersistentVolume") => {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if let Some(spec) = obj["spec"].as_object_mut() {
                if let Some(path) = s.volume_paths.get(&name) {
                    for source in ["hostPath", "local"] {
                        if let Some(source) = spec.get_mut(source).and_then(Value::as_object_mut) {
                            source.insert("path".to_owned(), json!(path));
                        }
                    }
                }
                spec.remove("claimRef");
                let class = spec
                    .get("storageClassName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let policy = spec
                    .get("persistentVolumeReclaimPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("Retain")
                    .to_owned();
                spec.insert("storageClassName".to_owned(), json!(""));
                spec.insert("persistentVolumeReclaimPolicy".to_owned(), json!("Retain"));
                annotate(&mut obj, CURRENT_STORAGE_CLASS, class);
                annotate(&mut obj, RECLAIM_POLICY, policy);
            }
        }
        _ => {}
    }
    if let Some(registration) = registration.filter(|_| !start) {
        for option in std::iter::once(&registration.suspend_options)
            .chain(&registration.custom_suspend_options)
        {
            suspend_path(&mut obj, option);
        }
    }
    annotate(&mut obj, MIGRATED, "true");
    annotate(&mut obj, MIGRATION_NAME, s.migration_name);
    annotate(&mut obj, MIGRATION_NAMESPACE, s.migration_namespace);
    annotate(&mut obj, MIGRATION_TIME, s.migration_time);
    let hash = resource_hash(&obj);
    annotate(&mut obj, RESOURCE_HASH, hash);
    obj
}

fn scale_down(obj: &mut Value, start: bool) {
    if !obj["spec"].is_object() {
        return;
    }
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    // Multi-hop DR: a standby of a standby carries the first cluster's count forward.
    let carried =
        annotation(obj, MIGRATION_REPLICAS).and_then(|r| r.parse::<i64>().ok()).filter(|r| *r > 0);
    let original = if replicas == 0 { carried.unwrap_or(0) } else { replicas };
    if start {
        obj["spec"]["replicas"] = json!(original);
        return;
    }
    annotate(obj, MIGRATION_REPLICAS, original.to_string());
    obj["spec"]["replicas"] = json!(0);
    label(obj, MIGRATED, "true");
}

/// Reads a dotted path (`spec.stopped`).
pub fn at_path<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(obj, |at, seg| at.get(seg))
}

/// Sets a dotted path, creating maps on the way; false when a non-map is in the way.
pub fn set_path(obj: &mut Value, path: &str, value: Value) -> bool {
    let mut segs: Vec<&str> = path.split('.').collect();
    let Some(last) = segs.pop() else { return false };
    let mut at = obj;
    for seg in segs {
        if at.get(seg).is_none() && at.is_object() {
            at[seg] = json!({});
        }
        match at.get_mut(seg) {
            Some(next) if next.is_object() => at = next,
            _ => return false,
        }
    }
    match at.as_object_mut() {
        Some(m) => {
            m.insert(last.to_owned(), value);
            true
        }
        None => false,
    }
}

/// A value as `stork.libopenstorage.org/<path>` records it: strings bare, others as JSON,
/// absent as nothing.
pub(crate) fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What a registered path is set to on a held standby: 0 (int), the boolean (default true),
/// or the string.
pub(crate) fn suspended_value(option: &SuspendOptions) -> Value {
    match option.value_type.as_str() {
        "int" => json!(0),
        "bool" => json!(option.value.parse::<bool>().unwrap_or(true)),
        _ => json!(option.value),
    }
}

/// Suspends one registered path: records `"<current>,<suspendValue>"` in
/// `stork.libopenstorage.org/<path>` and sets the path to 0, the boolean, or the string.
fn suspend_path(obj: &mut Value, option: &SuspendOptions) {
    if option.path.is_empty() {
        return;
    }
    let current = text_of(at_path(obj, &option.path));
    let suspended = suspended_value(option);
    let suspended_text = text_of(Some(&suspended));
    let key = format!("{SUSPEND_PATH_PREFIX}{}", option.path);
    // Refreshing a standby keeps the source's value, never the suspended one.
    if annotation(obj, &key).is_none() || current != suspended_text {
        annotate(obj, &key, format!("{current},{suspended_text}"));
    }
    set_path(obj, &option.path, suspended);
}

/// Adds only the resource hash (definitions travel otherwise untouched).
pub fn with_hash(mut obj: Value) -> Value {
    let hash = resource_hash(&obj);
    annotate(&mut obj, RESOURCE_HASH, hash);
    obj
}

/// FNV-1a over the object's canonical JSON (keys sorted), leaving out what changes every run
/// (the migration's name and time) and the hash itself; Stork's form, a decimal `u64`.
pub fn resource_hash(obj: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, &Value> = m.iter().collect();
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut hashed = obj.clone();
    if let Some(annotations) = hashed["metadata"]["annotations"].as_object_mut() {
        for volatile in [MIGRATION_NAME, MIGRATION_TIME, RESOURCE_HASH] {
            annotations.remove(volatile);
        }
    }
    let mut text = String::new();
    canonical(&hashed, &mut text);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby() -> Standby<'static> {
        Standby {
            start_applications: false,
            skip_service_update: false,
            migration_name: "m1",
            migration_namespace: "mysql",
            migration_time: "2026-11-29-101500",
            volume_paths: &NO_PATHS,
        }
    }

    static NO_PATHS: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

    fn item(group: &str, kind: &str, object: Value) -> Item {
        Item {
            group: group.to_owned(),
            version: "v1".to_owned(),
            kind: kind.to_owned(),
            plural: String::new(),
            namespaced: true,
            object,
        }
    }

    fn run(group: &str, kind: &str, object: Value) -> Value {
        let i = item(group, kind, object.clone());
        for_standby(&i, object, None, &standby())
    }

    #[test]
    fn workloads_scale_to_zero_remembering_their_replicas() {
        let out = run(
            "apps",
            "Deployment",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}}),
        );
        assert_eq!(out["spec"]["replicas"], 0);
        assert_eq!(out["metadata"]["annotations"][MIGRATION_REPLICAS], "3");
        assert_eq!(out["metadata"]["labels"][MIGRATED], "true");
        let defaulted = run("apps", "StatefulSet", json!({"metadata": {"name": "db"}, "spec": {}}));
        assert_eq!(defaulted["metadata"]["annotations"][MIGRATION_REPLICAS], "1");
        let hop = run(
            "apps",
            "Deployment",
            json!({"metadata": {"name": "web", "annotations": {MIGRATION_REPLICAS: "4"}}, "spec": {"replicas": 0}}),
        );
        assert_eq!(
            hop["metadata"]["annotations"][MIGRATION_REPLICAS], "4",
            "multi-hop carries the count"
        );
    }

    #[test]
    fn services_lose_their_ips_and_volumes_their_claims() {
        let svc = run(
            "",
            "Service",
            json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"], "ports": [{"port": 3306, "nodePort": 30001}]}}),
        );
        assert!(svc["spec"].get("clusterIP").is_none() && svc["spec"].get("clusterIPs").is_none());
        assert_eq!(
            svc["spec"]["ports"][0]["nodePort"], 30001,
            "node ports are kept, as Stork does"
        );
        let headless =
            run("", "Service", json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}}));
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let pv = run(
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv"}, "spec": {"claimRef": {"name": "c"},
            "storageClassName": "fast", "persistentVolumeReclaimPolicy": "Delete"}}),
        );
        assert!(pv["spec"].get("claimRef").is_none());
        assert_eq!(pv["spec"]["storageClassName"], "");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["metadata"]["annotations"][CURRENT_STORAGE_CLASS], "fast");
        assert_eq!(pv["metadata"]["annotations"][RECLAIM_POLICY], "Delete");
    }

    #[test]
    fn cron_jobs_suspend_and_daemon_sets_are_held() {
        let cj = run(
            "batch",
            "CronJob",
            json!({"metadata": {"name": "backup"}, "spec": {"schedule": "* * * * *"}}),
        );
        assert_eq!(cj["spec"]["suspend"], true);
        assert_eq!(cj["metadata"]["annotations"][ORIGINAL_SUSPEND], "false");
        let ds = run(
            "apps",
            "DaemonSet",
            json!({"metadata": {"name": "agent"}, "spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}),
        );
        assert_eq!(
            ds["spec"]["template"]["spec"]["nodeSelector"],
            json!({HELD_NODE_LABEL: "true"})
        );
        assert_eq!(ds["metadata"]["annotations"][ORIGINAL_NODE_SELECTOR], r#"{"disk":"ssd"}"#);
        // A standby of a standby (A → B → C) keeps A's values, not B's held ones.
        let hop = run("apps", "DaemonSet", ds.clone());
        assert_eq!(hop["metadata"]["annotations"][ORIGINAL_NODE_SELECTOR], r#"{"disk":"ssd"}"#);
        let cj_hop = run("batch", "CronJob", cj.clone());
        assert_eq!(cj_hop["metadata"]["annotations"][ORIGINAL_SUSPEND], "false");
    }

    #[test]
    fn registered_paths_are_suspended_and_recorded() {
        let registration: ApplicationResource = serde_json::from_value(json!({"group": "cassandra.datastax.com",
            "version": "v1beta1", "kind": "CassandraDatacenter", "suspendOptions": {"path": "spec.stopped", "type": "bool"}}))
        .expect("registration");
        let obj = json!({"metadata": {"name": "dc1"}, "spec": {"stopped": false, "size": 3}});
        let i = item("cassandra.datastax.com", "CassandraDatacenter", obj.clone());
        let out = for_standby(&i, obj, Some(&registration), &standby());
        assert_eq!(out["spec"]["stopped"], true);
        assert_eq!(
            out["metadata"]["annotations"]["stork.libopenstorage.org/spec.stopped"],
            "false,true"
        );
    }

    #[test]
    fn the_hash_ignores_the_run_and_key_order_but_not_content() {
        let a =
            run("", "ConfigMap", json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}));
        let mut other_run = standby();
        other_run.migration_name = "m2";
        other_run.migration_time = "2026-11-29-111500";
        let reordered = json!({"data": {"b": "2", "a": "1"}, "metadata": {"name": "c"}});
        let b = for_standby(&item("", "ConfigMap", reordered.clone()), reordered, None, &other_run);
        assert_eq!(
            a["metadata"]["annotations"][RESOURCE_HASH],
            b["metadata"]["annotations"][RESOURCE_HASH]
        );
        let changed =
            run("", "ConfigMap", json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "3"}}));
        assert_ne!(
            a["metadata"]["annotations"][RESOURCE_HASH],
            changed["metadata"]["annotations"][RESOURCE_HASH]
        );
    }
}
