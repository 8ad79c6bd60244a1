//! Collection rules (reference §4.3): which objects of the migrated namespaces are copied, which
//! owned objects are left to their owners, and what of each object's metadata travels.

use std::collections::{BTreeMap, BTreeSet};

use avocet_types::migration::MigrationSpec;
use serde_json::{Map, Value, json};

/// Annotation that keeps an object out of every migration.
pub const SKIP_RESOURCE: &str = "stork.libopenstorage.org/skip-resource";
/// The deprecated spelling of [`SKIP_RESOURCE`].
const SKIP_RESOURCE_OLD: &str = "stork.libopenstorage.org/skipresource";
/// Annotation that collects an object even though its owner is collected.
const SKIP_OWNER_REF_CHECK: &str = "stork.libopenstorage.org/skip-owner-ref-check";
/// Annotation that forces an Endpoints object to be collected.
const INCLUDE_RESOURCE: &str = "stork.libopenstorage.org/include-resource";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One collected source object and the type it was read through.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// API group (`""` for core).
    pub group: String,
    /// API version it was read at.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// The object as read from the source.
    pub object: Value,
}

impl Item {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace` (empty for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"].as_str().unwrap_or_default()
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.object["metadata"]["uid"].as_str().unwrap_or_default()
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Deployment mysql/web`, how reports name an object.
    pub fn describe(&self) -> String {
        if self.namespace().is_empty() {
            format!("{} {}", self.kind, self.name())
        } else {
            format!("{} {}/{}", self.kind, self.namespace(), self.name())
        }
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.object["metadata"]["annotations"][key].as_str()
    }

    fn owners(&self) -> Vec<(&str, &str)> {
        self.object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (r["kind"].as_str().unwrap_or_default(), r["uid"].as_str().unwrap_or_default())
            })
            .collect()
    }
}

/// The server-side label selector of a migration: `selectors` joined with commas (AND).
pub fn label_selector(spec: &MigrationSpec) -> Option<String> {
    if spec.selectors.is_empty() {
        return None;
    }
    Some(spec.selectors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

/// Whether `excludeSelectors` (and the older `excludeResources`) exclude these labels: any one
/// pair matching excludes (OR).
pub fn excluded_by_labels(spec: &MigrationSpec, labels: &Value) -> bool {
    spec.exclusion_labels().iter().any(|(k, v)| labels[k].as_str() == Some(v.as_str()))
}

/// Whether the migration lists this kind in `excludeResourceTypes` (case-insensitive).
pub fn kind_excluded(spec: &MigrationSpec, kind: &str) -> bool {
    spec.exclude_resource_types.iter().any(|k| k.eq_ignore_ascii_case(kind))
}

fn has_cidr(policy: &Value) -> bool {
    let peers = |section: &str, field: &str| {
        policy["spec"][section]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(move |rule| rule[field].as_array().into_iter().flatten())
            .any(|peer| peer["ipBlock"]["cidr"].is_string())
    };
    peers("ingress", "from") || peers("egress", "to")
}

/// Why a namespaced object of a collected kind is not copied, or `None` to copy it. Follows
/// Stork's per-kind rules, then the skip annotation and `excludeSelectors`.
pub fn skip_reason(spec: &MigrationSpec, item: &Item) -> Option<&'static str> {
    let name = item.name();
    let o = &item.object;
    if item.annotation(SKIP_RESOURCE) == Some("true")
        || item.annotation(SKIP_RESOURCE_OLD) == Some("true")
    {
        return Some("it carries the skip-resource annotation");
    }
    if kind_excluded(spec, &item.kind) {
        return Some("its kind is in excludeResourceTypes");
    }
    if excluded_by_labels(spec, &o["metadata"]["labels"]) {
        return Some("a label matches excludeSelectors");
    }
    let system = |n: &str| n.starts_with("system:");
    let reason = match (item.group.as_str(), item.kind.as_str()) {
        ("", "PersistentVolumeClaim") if o["status"]["phase"] != "Bound" => {
            "the claim is not Bound"
        }
        ("", "PersistentVolumeClaim") if !o["metadata"]["deletionTimestamp"].is_null() => {
            "the claim is being deleted"
        }
        ("", "Service") if name == "kubernetes" => "it is the API server's own Service",
        ("", "ServiceAccount") if matches!(name, "default" | "builder" | "deployer") => {
            let own_secret = |s: &Value| {
                s["name"].as_str().is_some_and(|n| !n.starts_with(&format!("{name}-dockercfg")))
            };
            if o["imagePullSecrets"].as_array().into_iter().flatten().any(own_secret) {
                return None;
            }
            "every namespace has its own"
        }
        ("", "Secret")
            if ["builder-", "default-", "deployer-"].iter().any(|p| name.starts_with(p))
                && (name.contains("-dockercfg-") || name.contains("-token-")) =>
        {
            "it is generated for a service account"
        }
        ("", "ConfigMap") if matches!(name, "kube-root-ca.crt" | "openshift-service-ca.crt") => {
            "every namespace has its own"
        }
        ("", "ResourceQuota") if name == "gke-resource-quotas" => "the platform manages it",
        ("rbac.authorization.k8s.io", "Role") if system(name) => "it is a system role",
        ("rbac.authorization.k8s.io", "RoleBinding")
            if system(name) && !name.starts_with("system:openshift:scc") =>
        {
            "it is a system binding"
        }
        ("", "Endpoints") => {
            let managed = o["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
                .any(|a| a["targetRef"].is_object());
            if name == "kubernetes" && item.namespace() == "default" {
                "it is the API server's own"
            } else if managed {
                "a Service's selector manages it"
            } else if item.annotation(LAST_APPLIED).is_none()
                && item.annotation(INCLUDE_RESOURCE) != Some("true")
            {
                "it was not created by hand (no last-applied annotation)"
            } else {
                return None;
            }
        }
        ("networking.k8s.io", "NetworkPolicy")
            if !spec.include_network_policy_with_cidr() && has_cidr(o) =>
        {
            "it names CIDRs (set includeNetworkPolicyWithCIDR to copy it)"
        }
        ("batch", "Job") if !spec.includes_jobs() => {
            "Jobs are copied only with includeOptionalResourceTypes: [job]"
        }
        _ => return None,
    };
    Some(reason)
}

/// Kinds dropped when their owner is collected (the owner recreates them).
fn dropped_with_owner(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet")
            | ("apps.openshift.io", "DeploymentConfig")
            | ("", "ServiceAccount" | "Service")
            | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
    )
}

/// Owner-reference pruning: objects owned by a Pod, and owned objects of the kinds above whose
/// owner is collected, are dropped (a ReplicaSet whose Deployment is collected always is);
/// everything else is kept. Returns the kept items.
pub fn prune_owned(spec: &MigrationSpec, items: Vec<Item>) -> Vec<Item> {
    let collected: BTreeSet<String> = items.iter().map(|i| i.uid().to_owned()).collect();
    let ignore_check = spec.ignore_owner_references_check();
    items
        .into_iter()
        .filter(|item| {
            let owners = item.owners();
            if owners.is_empty() || item.annotation(SKIP_OWNER_REF_CHECK) == Some("true") {
                return true;
            }
            let owner_collected = owners.iter().any(|(_, uid)| collected.contains(*uid));
            let replica_set_of_deployment = item.kind == "ReplicaSet"
                && owners
                    .iter()
                    .any(|(kind, uid)| *kind == "Deployment" && collected.contains(*uid));
            if replica_set_of_deployment {
                return false;
            }
            if ignore_check {
                return true;
            }
            let owned_by_pod = owners.iter().any(|(kind, _)| *kind == "Pod");
            !(owned_by_pod || owner_collected && dropped_with_owner(&item.group, &item.kind))
        })
        .collect()
}

/// The object as it travels: metadata reduced to name, namespace, labels and annotations
/// (uid, resourceVersion, ownerReferences, finalizers, managedFields and the rest belong to the
/// source cluster), and status dropped unless `keep_status`.
pub fn travelling(item: &Item, keep_status: bool) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".to_owned(), json!(item.api_version()));
    out.insert("kind".to_owned(), json!(item.kind));
    let meta = &item.object["metadata"];
    let mut m = Map::new();
    m.insert("name".to_owned(), meta["name"].clone());
    if item.namespaced {
        m.insert("namespace".to_owned(), meta["namespace"].clone());
    }
    for field in ["labels", "annotations"] {
        if let Some(map) = meta[field].as_object().filter(|m| !m.is_empty()) {
            m.insert(field.to_owned(), Value::Object(map.clone()));
        }
    }
    out.insert("metadata".to_owned(), Value::Object(m));
    if let Value::Object(obj) = &item.object {
        for (k, v) in obj {
            let dropped = matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                || (k == "status" && !keep_status);
            if !dropped {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether a cluster-scoped RBAC object is one the platform bootstraps (`system:` names, or
/// the `kubernetes.io/bootstrapping: rbac-defaults` label on admin, edit, view, cluster-admin…).
fn bootstrapped(item: &Item) -> bool {
    item.name().starts_with("system:")
        || item.object["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
}

/// The namespace an RBAC subject belongs to: a ServiceAccount's own, or the one a
/// `system:serviceaccount(s):NS…` user or group names.
fn subject_namespace(subject: &Value) -> Option<&str> {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str() {
        Some("ServiceAccount") => subject["namespace"].as_str(),
        Some("User" | "Group") => {
            name.strip_prefix("system:serviceaccounts:").or_else(|| name.split(':').nth(2))
        }
        _ => None,
    }
}

/// ClusterRoleBindings that bind a subject living in one of the namespaces (a ServiceAccount
/// other than `default` there, or the namespace's service-account group), with their subjects
/// cut down to those namespaces.
pub fn cluster_role_bindings(bindings: &[Item], namespaces: &BTreeSet<String>) -> Vec<Item> {
    bindings
        .iter()
        .filter(|b| !bootstrapped(b))
        .filter_map(|b| {
            let subjects: Vec<Value> = b.object["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| {
                    let default_account = s["kind"] == "ServiceAccount" && s["name"] == "default";
                    subject_namespace(s).is_some_and(|ns| namespaces.contains(ns))
                        && !default_account
                })
                .cloned()
                .collect();
            if subjects.is_empty() {
                return None;
            }
            let mut kept = b.clone();
            kept.object["subjects"] = Value::Array(subjects);
            Some(kept)
        })
        .collect()
}

/// The subjects a copied ClusterRoleBinding gets on a destination that has it already: the
/// destination's subjects outside the migrated namespaces, then the source's (trimmed to those
/// namespaces). Subjects of the namespaces that the source no longer lists are dropped.
pub fn merged_subjects(
    destination: &Value,
    source: &Value,
    namespaces: &BTreeSet<String>,
) -> Value {
    let ours = |s: &Value| subject_namespace(s).is_some_and(|ns| namespaces.contains(ns));
    let mut merged: Vec<Value> =
        destination.as_array().into_iter().flatten().filter(|s| !ours(s)).cloned().collect();
    for subject in source.as_array().into_iter().flatten() {
        if !merged.contains(subject) {
            merged.push(subject.clone());
        }
    }
    Value::Array(merged)
}

/// ClusterRoles referenced by the collected ClusterRoleBindings or by RoleBindings in the
/// namespaces, excluding system roles.
pub fn cluster_roles(roles: &[Item], bindings: &[&Item]) -> Vec<Item> {
    let wanted: BTreeSet<&str> = bindings
        .iter()
        .filter(|b| b.object["roleRef"]["kind"] == "ClusterRole")
        .filter_map(|b| b.object["roleRef"]["name"].as_str())
        .collect();
    roles
        .iter()
        .filter(|r| {
            wanted.contains(r.name())
                && !r.name().starts_with("system:")
                && !r.name().starts_with("rbac-defaults")
        })
        .cloned()
        .collect()
}

/// The PriorityClasses the collected workloads' pod templates name, except the platform's own.
pub fn priority_classes(items: &[&Item]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|i| {
            let spec = &i.object["spec"];
            spec["template"]["spec"]["priorityClassName"].as_str().or_else(|| {
                spec["jobTemplate"]["spec"]["template"]["spec"]["priorityClassName"].as_str()
            })
        })
        .filter(|name| !name.starts_with("system-") && *name != "openshift-user-critical")
        .map(str::to_owned)
        .collect()
}

/// Whether a webhook configuration calls a service in one of the namespaces.
pub fn webhook_serves(item: &Item, namespaces: &BTreeSet<String>) -> bool {
    item.object["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["clientConfig"]["service"]["namespace"].as_str())
        .any(|ns| namespaces.contains(ns))
}

/// The PersistentVolumes bound to the collected claims: (PV name → the claim's labels).
pub fn volumes_of_claims(claims: &[&Item]) -> BTreeMap<String, Value> {
    claims
        .iter()
        .filter_map(|c| {
            let volume = c.object["spec"]["volumeName"].as_str().filter(|v| !v.is_empty())?;
            Some((volume.to_owned(), c.object["metadata"]["labels"].clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(group: &str, kind: &str, object: Value) -> Item {
        Item {
            group: group.to_owned(),
            version: "v1".to_owned(),
            kind: kind.to_owned(),
            plural: format!("{}s", kind.to_lowercase()),
            namespaced: true,
            object,
        }
    }

    fn spec(extra: Value) -> MigrationSpec {
        serde_json::from_value(extra).expect("a MigrationSpec")
    }

    #[test]
    fn stork_per_kind_rules_and_exclusions() {
        let none = spec(json!({}));
        let cm = |name: &str| {
            item("", "ConfigMap", json!({"metadata": {"name": name, "namespace": "a"}}))
        };
        assert!(skip_reason(&none, &cm("kube-root-ca.crt")).is_some());
        assert!(skip_reason(&none, &cm("settings")).is_none());
        let pending = item(
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "d"}, "status": {"phase": "Pending"}}),
        );
        assert_eq!(skip_reason(&none, &pending), Some("the claim is not Bound"));
        let token = item("", "Secret", json!({"metadata": {"name": "default-token-abcde"}}));
        assert!(skip_reason(&none, &token).is_some());
        let job = item("batch", "Job", json!({"metadata": {"name": "j"}}));
        assert!(skip_reason(&none, &job).is_some());
        assert!(
            skip_reason(&spec(json!({"includeOptionalResourceTypes": ["Job"]})), &job).is_none()
        );
        let labelled = item(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "x", "labels": {"tier": "cache", "app": "a"}}}),
        );
        assert!(
            skip_reason(
                &spec(json!({"excludeSelectors": {"tier": "cache", "other": "y"}})),
                &labelled
            )
            .is_some()
        );
        assert!(
            skip_reason(&spec(json!({"excludeResourceTypes": ["configmap"]})), &labelled).is_some()
        );
        let skipped = item(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "x", "annotations": {SKIP_RESOURCE: "true"}}}),
        );
        assert!(skip_reason(&none, &skipped).is_some());
    }

    #[test]
    fn owned_objects_follow_their_owner_and_owner_refs_never_travel() {
        let deployment =
            item("apps", "Deployment", json!({"metadata": {"name": "web", "uid": "d1"}}));
        let rs = item(
            "apps",
            "ReplicaSet",
            json!({"metadata": {"name": "web-1", "uid": "r1",
            "ownerReferences": [{"kind": "Deployment", "uid": "d1"}]}}),
        );
        let cm = item(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "owned-cm", "namespace": "a", "uid": "c1",
            "ownerReferences": [{"kind": "Deployment", "uid": "d1"}]}}),
        );
        let kept = prune_owned(&spec(json!({})), vec![deployment, rs, cm]);
        let names: Vec<&str> = kept.iter().map(Item::name).collect();
        assert_eq!(names, ["web", "owned-cm"]);
        let travelling = travelling(&kept[1], false);
        assert_eq!(travelling["metadata"], json!({"name": "owned-cm", "namespace": "a"}));
    }

    #[test]
    fn a_shared_binding_keeps_other_namespaces_subjects() {
        let namespaces: BTreeSet<String> = ["mysql".to_owned()].into();
        let destination = json!([
            {"kind": "ServiceAccount", "name": "app", "namespace": "postgres"},
            {"kind": "ServiceAccount", "name": "old", "namespace": "mysql"},
            {"kind": "User", "name": "alice"}]);
        let source = json!([{"kind": "ServiceAccount", "name": "app", "namespace": "mysql"}]);
        assert_eq!(
            merged_subjects(&destination, &source, &namespaces),
            json!([
                {"kind": "ServiceAccount", "name": "app", "namespace": "postgres"},
                {"kind": "User", "name": "alice"},
                {"kind": "ServiceAccount", "name": "app", "namespace": "mysql"}])
        );
    }

    #[test]
    fn cluster_role_bindings_keep_only_subjects_in_the_namespaces() {
        let crb = item(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({
            "metadata": {"name": "reader"}, "roleRef": {"kind": "ClusterRole", "name": "read"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "mysql"},
                         {"kind": "ServiceAccount", "name": "app", "namespace": "other"}]}),
        );
        let namespaces: BTreeSet<String> = ["mysql".to_owned()].into();
        let kept = cluster_role_bindings(&[crb], &namespaces);
        assert_eq!(kept[0].object["subjects"].as_array().map(Vec::len), Some(1));
        let role =
            item("rbac.authorization.k8s.io", "ClusterRole", json!({"metadata": {"name": "read"}}));
        let unused = item(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "write"}}),
        );
        assert_eq!(cluster_roles(&[role, unused], &[&kept[0]]).len(), 1);
    }
}
