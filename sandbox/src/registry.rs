//! Which resources the sandbox serves: the built-in kinds Avocet touches, and every custom
//! resource whose CustomResourceDefinition has been created. Discovery documents come from here.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// One served resource at one group/version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceType {
    /// API group; `""` for the core group.
    pub(crate) group: String,
    /// API version within the group.
    pub(crate) version: String,
    /// Kind (`Deployment`).
    pub(crate) kind: String,
    /// Plural resource name used in paths (`deployments`).
    pub(crate) plural: String,
    /// Singular name (`deployment`).
    pub(crate) singular: String,
    /// Short names kubectl accepts (`deploy`).
    pub(crate) short_names: Vec<String>,
    /// Categories (`all`).
    pub(crate) categories: Vec<String>,
    /// Whether objects live in a namespace.
    pub(crate) namespaced: bool,
    /// Whether `/status` is a subresource (and the main resource ignores status writes).
    pub(crate) status: bool,
    /// Whether `/scale` is a subresource (`spec.replicas`).
    pub(crate) scale: bool,
    /// Whether a CustomResourceDefinition defined it.
    pub(crate) custom: bool,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `configmaps` in the core group: how errors name the resource.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage identity: one object set per group and plural, whatever the version.
    pub(crate) fn storage(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    fn discovery_entry(&self) -> Vec<Value> {
        let verbs =
            ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut entries = vec![main];
        if self.status {
            entries.push(json!({
                "name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if self.scale {
            entries.push(json!({
                "name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// A compact row of the built-in table.
struct Builtin {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    flags: u8,
}

/// Namespaced (otherwise cluster-scoped).
const NS: u8 = 1;
/// Has a `/status` subresource.
const STATUS: u8 = 2;
/// Has a `/scale` subresource.
const SCALE: u8 = 4;
/// In the `all` category.
const ALL: u8 = 8;

const fn row(
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    flags: u8,
) -> Builtin {
    Builtin { api_version, kind, plural, short, flags }
}

/// The built-in kinds: those the seed lists, plus the ones kubectl and controllers reach for.
const BUILTINS: &[Builtin] = &[
    row("v1", "Namespace", "namespaces", &["ns"], STATUS),
    row("v1", "ConfigMap", "configmaps", &["cm"], NS),
    row("v1", "Secret", "secrets", &[], NS),
    row("v1", "Service", "services", &["svc"], NS | STATUS | ALL),
    row("v1", "ServiceAccount", "serviceaccounts", &["sa"], NS),
    row("v1", "PersistentVolume", "persistentvolumes", &["pv"], STATUS),
    row("v1", "PersistentVolumeClaim", "persistentvolumeclaims", &["pvc"], NS | STATUS),
    row("v1", "Event", "events", &["ev"], NS),
    row("v1", "Pod", "pods", &["po"], NS | STATUS | ALL),
    row("v1", "Node", "nodes", &["no"], STATUS),
    row("v1", "Endpoints", "endpoints", &["ep"], NS),
    row("apps/v1", "Deployment", "deployments", &["deploy"], NS | STATUS | SCALE | ALL),
    row("apps/v1", "StatefulSet", "statefulsets", &["sts"], NS | STATUS | SCALE | ALL),
    row("apps/v1", "DaemonSet", "daemonsets", &["ds"], NS | STATUS | ALL),
    row("apps/v1", "ReplicaSet", "replicasets", &["rs"], NS | STATUS | SCALE | ALL),
    row("apps/v1", "ControllerRevision", "controllerrevisions", &[], NS),
    row("batch/v1", "Job", "jobs", &[], NS | STATUS | ALL),
    row("batch/v1", "CronJob", "cronjobs", &["cj"], NS | STATUS | ALL),
    row("rbac.authorization.k8s.io/v1", "Role", "roles", &[], NS),
    row("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", &[], NS),
    row("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", &[], 0),
    row("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", &[], 0),
    row("networking.k8s.io/v1", "Ingress", "ingresses", &["ing"], NS | STATUS),
    row("storage.k8s.io/v1", "StorageClass", "storageclasses", &["sc"], 0),
    row("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", &["pdb"], NS | STATUS),
    row("coordination.k8s.io/v1", "Lease", "leases", &[], NS),
    row(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        STATUS,
    ),
];

/// Every served resource type.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        let types = BUILTINS
            .iter()
            .map(|b| {
                let (group, version) = split_api_version(b.api_version);
                ResourceType {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    kind: b.kind.to_owned(),
                    plural: b.plural.to_owned(),
                    singular: b.kind.to_lowercase(),
                    short_names: b.short.iter().map(|s| (*s).to_owned()).collect(),
                    categories: if b.flags & ALL != 0 {
                        vec!["all".to_owned()]
                    } else {
                        Vec::new()
                    },
                    namespaced: b.flags & NS != 0,
                    status: b.flags & STATUS != 0,
                    scale: b.flags & SCALE != 0,
                    custom: false,
                }
            })
            .collect();
        Self { types }
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

impl Registry {
    /// The type served at this group, version and plural.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type of this apiVersion and kind, for objects read back from disk.
    pub(crate) fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types.iter().find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Every type served under this storage identity (all versions of one custom resource).
    pub(crate) fn versions_of(
        &self,
        group: &str,
        plural: &str,
    ) -> impl Iterator<Item = &ResourceType> {
        self.types.iter().filter(move |t| t.group == group && t.plural == plural)
    }

    /// Registers (or re-registers) the versions a CustomResourceDefinition serves.
    pub(crate) fn install_crd(&mut self, crd: &Value) -> ApiResult<()> {
        let types = crd_types(crd)?;
        if let Some(first) = types.first() {
            let (group, plural) = first.storage();
            self.types.retain(|t| !(t.custom && t.group == group && t.plural == plural));
        }
        self.types.extend(types);
        Ok(())
    }

    /// Forgets a custom resource when its definition is deleted.
    pub(crate) fn remove_crd(&mut self, group: &str, plural: &str) {
        self.types.retain(|t| !(t.custom && t.group == group && t.plural == plural));
    }

    /// Whether some type already claims this group and plural (a second CRD for it is refused).
    pub(crate) fn builtin_claims(&self, group: &str, plural: &str) -> bool {
        self.types.iter().any(|t| !t.custom && t.group == group && t.plural == plural)
    }

    /// Groups in discovery order (built-ins first, then custom ones in creation order),
    /// excluding the core group.
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    /// `GET /apis`.
    pub(crate) fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
                    .collect();
                let preferred = versions[0].clone();
                json!({ "name": group, "versions": versions, "preferredVersion": preferred })
            })
            .collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// `GET /apis/{group}`.
    pub(crate) fn api_group(&self, group: &str) -> Option<Value> {
        let list = self.api_group_list();
        let found = list["groups"].as_array()?.iter().find(|g| g["name"] == group)?.clone();
        let mut found = found;
        found["kind"] = json!("APIGroup");
        found["apiVersion"] = json!("v1");
        Some(found)
    }

    /// `GET /api/v1` or `GET /apis/{group}/{version}`.
    pub(crate) fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources: Vec<Value> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .flat_map(ResourceType::discovery_entry)
            .collect();
        if resources.is_empty() {
            return None;
        }
        let group_version =
            if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
        Some(json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources,
        }))
    }

    /// Every type, for the OpenAPI index.
    pub(crate) fn all(&self) -> &[ResourceType] {
        &self.types
    }
}

/// The resource types a CustomResourceDefinition declares, one per served version; the storage
/// version first. Errors name the field and the bad value.
pub(crate) fn crd_types(crd: &Value) -> ApiResult<Vec<ResourceType>> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let invalid = |field: &str, problem: &str| {
        ApiError::invalid("CustomResourceDefinition", name, field, problem)
    };
    let group = spec["group"]
        .as_str()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| invalid("spec.group", "Required value"))?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("spec.names.plural", "Required value"))?;
    let kind = names["kind"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid("spec.names.kind", "Required value"))?;
    let expected = format!("{plural}.{group}");
    if name != expected {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            let shown = other.unwrap_or("");
            return Err(invalid(
                "spec.scope",
                &format!(
                    "Unsupported value: \"{shown}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
    };
    let versions = spec["versions"].as_array().filter(|v| !v.is_empty()).ok_or_else(|| {
        invalid(
            "spec.versions",
            "Invalid value: []: must have exactly one version marked as storage version",
        )
    })?;
    let storage_count = versions.iter().filter(|v| v["storage"] == true).count();
    if storage_count != 1 {
        return Err(invalid(
            "spec.versions",
            &format!(
                "Invalid value: {storage_count}: must have exactly one version marked as storage version"
            ),
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut types: Vec<ResourceType> = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let version = v["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(&format!("spec.versions[{i}].name"), "Required value"))?;
        if v["served"] != true {
            continue;
        }
        let rt = ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: names["singular"].as_str().map_or_else(|| kind.to_lowercase(), str::to_owned),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced,
            status: v["subresources"]["status"].is_object(),
            scale: v["subresources"]["scale"].is_object(),
            custom: true,
        };
        if v["storage"] == true { types.insert(0, rt) } else { types.push(rt) }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_apps_are_discoverable() {
        let r = Registry::default();
        let core = r.resource_list("", "v1").expect("core group");
        assert!(
            core["resources"].as_array().expect("list").iter().any(|e| e["name"] == "configmaps")
        );
        let apps = r.resource_list("apps", "v1").expect("apps");
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments/scale") && names.contains(&"statefulsets/status"));
        assert!(
            r.api_group_list()["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .any(|g| g["name"] == "apps")
        );
    }

    #[test]
    fn a_crd_serves_its_versions_with_the_storage_version_first() {
        let mut r = Registry::default();
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}
        });
        r.install_crd(&crd).expect("valid");
        let v1 = r.find("example.com", "v1", "widgets").expect("served");
        assert!(v1.status && v1.namespaced && v1.custom);
        assert_eq!(
            r.versions_of("example.com", "widgets").next().map(|t| t.version.as_str()),
            Some("v1")
        );
        r.remove_crd("example.com", "widgets");
        assert!(r.find("example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn a_crd_with_a_bad_name_is_refused_naming_the_field() {
        let crd = json!({
            "metadata": {"name": "wrong"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        let err = crd_types(&crd).expect_err("bad name");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("metadata.name"), "{}", err.message);
    }
}
