//! Resource copy against two clusters through the kube crate: collect from the source (discovery,
//! paged lists, Stork's selectors), prepare and transform with the pure functions of this module,
//! and apply to the destination in dependency order with server-side apply under one field
//! manager, skipping objects whose resource hash is unchanged. Optionally purge what an earlier
//! migration copied and the source no longer has.

use std::collections::{BTreeSet, HashMap};

use avocet_types::migration::{MigrationResourceInfo, MigrationSpec, MigrationStatusType};
use avocet_types::registration::ApplicationResource;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope, verbs};
use serde_json::{Value, json};

use super::kinds::{self, Rank};
use super::registrations;
use super::select::{self, Item};
use super::transform::{self, MIGRATED, RESOURCE_HASH, Standby};

/// The field manager Avocet applies with on destinations.
pub const FIELD_MANAGER: &str = "avocet";

/// One resource copy.
#[derive(Debug, Clone)]
pub struct CopyRequest<'a> {
    /// The migration's spec (namespaces, selectors, transforms, purge).
    pub spec: &'a MigrationSpec,
    /// The migration's name.
    pub migration_name: &'a str,
    /// The migration's namespace.
    pub migration_namespace: &'a str,
    /// The migration's time (provenance; `2006-01-02-150405` in annotations).
    pub time: chrono::DateTime<chrono::Utc>,
    /// ApplicationRegistrations the user created (built-in ones are always known).
    pub registrations: &'a [ApplicationResource],
    /// Where the destination restored each migrated volume (PersistentVolume name → path).
    pub volume_paths: &'a std::collections::BTreeMap<String, String>,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyReport {
    /// One entry per object: Successful, Failed or Purged, with the reason.
    pub resources: Vec<MigrationResourceInfo>,
    /// Successful when every object is; Failed when a PersistentVolume failed; else
    /// PartialSuccess.
    pub status: MigrationStatusType,
    /// Namespaces skipped because they no longer exist (skipDeletedNamespaces).
    pub skipped_namespaces: Vec<String>,
    /// Objects written to the destination.
    pub applied: usize,
    /// Objects whose hash matched, left alone.
    pub unchanged: usize,
}

/// Why a copy could not run at all (per-object failures are in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed.
    #[error("cannot read the source cluster: {0}")]
    Source(String),
    /// Writing the destination failed before any object was applied.
    #[error("cannot write the destination cluster: {0}")]
    Destination(String),
    /// A listed namespace does not exist and skipDeletedNamespaces is false.
    #[error("namespace {0:?} does not exist on the source (skipDeletedNamespaces is false)")]
    NamespaceMissing(String),
    /// Nothing to migrate.
    #[error("no valid namespace found based on the provided 'Namespaces' and 'NamespaceSelectors'")]
    NoNamespaces,
}

fn source_err(e: kube::Error) -> CopyError {
    CopyError::Source(e.to_string())
}

/// A collected type and how to reach it.
#[derive(Debug, Clone)]
struct Type {
    resource: ApiResource,
    rank: Rank,
}

/// Copies the migration's namespaces from `source` to `destination`.
pub async fn copy(
    source: &Client,
    destination: &Client,
    req: &CopyRequest<'_>,
) -> Result<CopyReport, CopyError> {
    let spec = req.spec;
    let mut report = CopyReport::default();
    let namespaces = resolve_namespaces(source, spec, &mut report).await?;
    let built_in = registrations::built_in();
    let registration =
        |group: &str, kind: &str| registrations::find(req.registrations, &built_in, group, kind);

    // Discovery: the kinds to collect, at the source's preferred versions.
    let mut unavailable = Vec::new();
    let discovered = discover(source, &mut unavailable).await.map_err(source_err)?;
    for group in unavailable {
        tracing::warn!(group = %group, "skipping an API group the source cannot describe");
    }
    let mut namespaced: Vec<Type> = Vec::new();
    let mut cluster: HashMap<(String, String), ApiResource> = HashMap::new();
    {
        for (resource, caps) in discovered {
            if !listable(&caps) || select::kind_excluded(spec, &resource.kind) {
                continue;
            }
            let rank = kinds::built_in_rank(&resource.group, &resource.kind)
                .or_else(|| registration(&resource.group, &resource.kind).map(|_| Rank::Custom));
            let Some(rank) = rank else { continue };
            if !spec.include_resources()
                && !matches!(resource.kind.as_str(), "PersistentVolume" | "PersistentVolumeClaim")
            {
                continue;
            }
            match caps.scope {
                Scope::Namespaced => namespaced.push(Type { resource, rank }),
                Scope::Cluster
                    if kinds::cluster_scoped_collected(&resource.group, &resource.kind) =>
                {
                    cluster.insert((resource.group.clone(), resource.kind.clone()), resource);
                }
                Scope::Cluster => {}
            }
        }
    }

    // Collect the namespaced objects.
    let selector = select::label_selector(spec);
    let mut items: Vec<(Item, Rank)> = Vec::new();
    for t in &namespaced {
        for ns in &namespaces {
            let api = Api::<DynamicObject>::namespaced_with(source.clone(), ns, &t.resource);
            let objects = match list_all(&api, selector.as_deref()).await {
                Ok(objects) => objects,
                // As Stork does: a kind this identity may not list is skipped, not fatal.
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    tracing::warn!(kind = %t.resource.kind, namespace = %ns, "not allowed to list; skipped");
                    continue;
                }
                Err(e) => return Err(source_err(e)),
            };
            for object in objects {
                let item = item_of(&t.resource, true, object);
                if select::skip_reason(spec, &item).is_none() {
                    items.push((item, t.rank));
                }
            }
        }
    }
    let ranks: HashMap<String, Rank> =
        items.iter().map(|(i, r)| (i.uid().to_owned(), *r)).collect();
    let kept = select::prune_owned(spec, items.into_iter().map(|(i, _)| i).collect());
    let mut collected: Vec<(Item, Rank)> = kept
        .into_iter()
        .map(|i| {
            let rank = ranks.get(i.uid()).copied().unwrap_or(Rank::Custom);
            (i, rank)
        })
        .collect();

    // Cluster-scoped objects that serve the namespaces.
    collect_cluster_scoped(source, spec, &namespaces, &cluster, &mut collected).await?;

    // Definitions of the registered kinds being copied.
    let custom: BTreeSet<(String, String)> = collected
        .iter()
        .filter(|(_, rank)| *rank == Rank::Custom)
        .map(|(i, _)| (i.group.clone(), i.plural.clone()))
        .collect();
    let crd_type = ApiResource {
        group: "apiextensions.k8s.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "apiextensions.k8s.io/v1".to_owned(),
        kind: "CustomResourceDefinition".to_owned(),
        plural: "customresourcedefinitions".to_owned(),
    };
    let crds = Api::<DynamicObject>::all_with(source.clone(), &crd_type);
    for (group, plural) in &custom {
        if let Some(crd) = crds.get_opt(&format!("{plural}.{group}")).await.map_err(source_err)? {
            collected.push((item_of(&crd_type, false, crd), Rank::Definitions));
        }
    }

    // Prepare and transform.
    let time = req.time.format("%Y-%m-%d-%H%M%S").to_string();
    let standby = Standby {
        start_applications: spec.start_applications(),
        skip_service_update: spec.skip_service_update(),
        migration_name: req.migration_name,
        migration_namespace: req.migration_namespace,
        migration_time: &time,
        volume_paths: req.volume_paths,
    };
    let mut planned: Vec<(Item, Rank, Value)> = collected
        .into_iter()
        .map(|(item, rank)| {
            let reg = registration(&item.group, &item.kind);
            let keep_status = reg.is_some_and(|r| r.keep_status) && rank == Rank::Custom;
            let travelling = select::travelling(&item, keep_status);
            let out = if rank == Rank::Definitions {
                transform::with_hash(travelling)
            } else {
                transform::for_standby(&item, travelling, reg, &standby)
            };
            (item, rank, out)
        })
        .collect();
    planned.sort_by(|a, b| {
        (a.1, &a.0.kind, a.0.namespace(), a.0.name()).cmp(&(
            b.1,
            &b.0.kind,
            b.0.namespace(),
            b.0.name(),
        ))
    });

    // The destination: namespaces first (created when missing, never updated), then objects.
    ensure_namespaces(source, destination, &namespaces).await?;
    let mut hashes: HashMap<(String, String, String), HashMap<String, String>> = HashMap::new();
    let mut volumes: Vec<(usize, ApiResource, Value)> = Vec::new();
    for (item, _rank, obj) in &planned {
        let resource = api_resource(item);
        let cache_key = (item.group.clone(), item.plural.clone(), item.namespace().to_owned());
        if !hashes.contains_key(&cache_key) {
            let existing = destination_hashes(destination, &resource, item).await;
            hashes.insert(cache_key.clone(), existing);
        }
        if *_rank == Rank::Definitions {
            // A definition the destination already has is its own (installed by Helm, an
            // operator…, maybe newer); Avocet only creates missing ones.
            let (status, reason) = match create_definition(destination, &resource, item, obj).await
            {
                Ok(true) => {
                    report.applied += 1;
                    (MigrationStatusType::Successful, "Resource migrated successfully".to_owned())
                }
                Ok(false) => {
                    report.unchanged += 1;
                    (
                        MigrationStatusType::Successful,
                        "Definition already present on the destination".to_owned(),
                    )
                }
                Err(e) => (
                    MigrationStatusType::Failed,
                    format!("Error applying resource: {}: {e}", item.describe()),
                ),
            };
            report.resources.push(info(item, status, reason));
            continue;
        }
        let new_hash = obj["metadata"]["annotations"][RESOURCE_HASH].as_str().unwrap_or_default();
        let unchanged =
            hashes.get(&cache_key).and_then(|h| h.get(item.name())).is_some_and(|h| h == new_hash);
        let (status, reason) = if unchanged {
            report.unchanged += 1;
            (
                MigrationStatusType::Successful,
                "Resource unchanged since the last migration".to_owned(),
            )
        } else {
            match apply(destination, &resource, item, obj, &namespaces).await {
                Ok(()) => {
                    report.applied += 1;
                    (MigrationStatusType::Successful, "Resource migrated successfully".to_owned())
                }
                Err(e) => (
                    MigrationStatusType::Failed,
                    format!("Error applying resource: {}: {e}", item.describe()),
                ),
            }
        };
        if item.kind == "PersistentVolume"
            && item.group.is_empty()
            && status == MigrationStatusType::Successful
        {
            volumes.push((report.resources.len(), resource.clone(), obj.clone()));
        }
        report.resources.push(info(item, status, reason));
    }

    // PVs travel without a class (so nothing provisions for them); give it back, on every run
    // until it holds, and say so when it cannot.
    for (at, resource, obj) in volumes {
        if let Err(e) =
            restore_volume_class(destination, &resource, &obj, spec.include_volumes()).await
        {
            let entry = &mut report.resources[at];
            entry.status = MigrationStatusType::Failed;
            entry.reason =
                format!("Error restoring the StorageClass of PersistentVolume {}: {e}", entry.name);
        }
    }

    if spec.purge_deleted_resources() {
        purge(
            destination,
            spec,
            req.migration_namespace,
            &namespaces,
            &namespaced,
            &planned,
            &mut report,
        )
        .await;
    }

    let pv_failed = report
        .resources
        .iter()
        .any(|r| r.kind == "PersistentVolume" && r.status == MigrationStatusType::Failed);
    let any_failed = report.resources.iter().any(|r| r.status == MigrationStatusType::Failed);
    report.status = if pv_failed {
        MigrationStatusType::Failed
    } else if any_failed {
        MigrationStatusType::PartialSuccess
    } else {
        MigrationStatusType::Successful
    };
    Ok(report)
}

/// Every resource at its group's preferred version. A group that cannot be described (an
/// aggregated API whose backend is down, say) is skipped and named in `unavailable`, as a
/// cluster with a broken metrics API must still be migratable.
pub(crate) async fn discover(
    client: &Client,
    unavailable: &mut Vec<String>,
) -> Result<Vec<(ApiResource, ApiCapabilities)>, kube::Error> {
    let mut names = vec![String::new()];
    names.extend(client.list_api_groups().await?.groups.into_iter().map(|g| g.name));
    let mut all = Vec::new();
    for name in names {
        match kube::discovery::oneshot::group(client, &name).await {
            Ok(group) => all.extend(group.recommended_resources()),
            Err(e) => {
                unavailable.push(format!("{}: {e}", if name.is_empty() { "core" } else { &name }))
            }
        }
    }
    Ok(all)
}

fn listable(caps: &ApiCapabilities) -> bool {
    caps.supports_operation(verbs::LIST)
}

fn item_of(resource: &ApiResource, namespaced: bool, object: DynamicObject) -> Item {
    let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
    value["apiVersion"] = json!(resource.api_version);
    value["kind"] = json!(resource.kind);
    Item {
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        plural: resource.plural.clone(),
        namespaced,
        object: value,
    }
}

fn api_resource(item: &Item) -> ApiResource {
    ApiResource {
        group: item.group.clone(),
        version: item.version.clone(),
        api_version: item.api_version(),
        kind: item.kind.clone(),
        plural: item.plural.clone(),
    }
}

fn info(item: &Item, status: MigrationStatusType, reason: String) -> MigrationResourceInfo {
    MigrationResourceInfo {
        name: item.name().to_owned(),
        namespace: item.namespace().to_owned(),
        group: if item.group.is_empty() { "core".to_owned() } else { item.group.clone() },
        version: item.version.clone(),
        kind: item.kind.clone(),
        status,
        reason,
        transformed_by: String::new(),
    }
}

/// Every object of a list, page by page.
async fn list_all(
    api: &Api<DynamicObject>,
    selector: Option<&str>,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut params = ListParams::default().limit(500);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let mut all = Vec::new();
    loop {
        let page = api.list(&params).await?;
        all.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(all),
        }
    }
}

async fn resolve_namespaces(
    source: &Client,
    spec: &MigrationSpec,
    report: &mut CopyReport,
) -> Result<Vec<String>, CopyError> {
    let api: Api<Namespace> = Api::all(source.clone());
    let mut names: BTreeSet<String> = BTreeSet::new();
    for ns in &spec.namespaces {
        if api.get_opt(ns).await.map_err(source_err)?.is_some() {
            names.insert(ns.clone());
        } else if spec.skip_deleted_namespaces() {
            report.skipped_namespaces.push(ns.clone());
        } else {
            return Err(CopyError::NamespaceMissing(ns.clone()));
        }
    }
    for (k, v) in &spec.namespace_selectors {
        let listed = api
            .list(&ListParams::default().labels(&format!("{k}={v}")))
            .await
            .map_err(source_err)?;
        names.extend(listed.items.into_iter().filter_map(|n| n.metadata.name));
    }
    if names.is_empty() {
        return Err(CopyError::NoNamespaces);
    }
    Ok(names.into_iter().collect())
}

async fn collect_cluster_scoped(
    source: &Client,
    spec: &MigrationSpec,
    namespaces: &[String],
    cluster: &HashMap<(String, String), ApiResource>,
    collected: &mut Vec<(Item, Rank)>,
) -> Result<(), CopyError> {
    let in_scope: BTreeSet<String> = namespaces.iter().cloned().collect();
    // PersistentVolumes of the collected claims, judged by their claim's labels.
    if let Some(pv_type) = cluster.get(&(String::new(), "PersistentVolume".to_owned())) {
        let claims: Vec<&Item> = collected
            .iter()
            .map(|(i, _)| i)
            .filter(|i| i.kind == "PersistentVolumeClaim" && i.group.is_empty())
            .collect();
        let volumes = select::volumes_of_claims(&claims);
        let api = Api::<DynamicObject>::all_with(source.clone(), pv_type);
        for (name, claim_labels) in volumes {
            if select::excluded_by_labels(spec, &claim_labels) {
                continue;
            }
            if let Some(pv) = api.get_opt(&name).await.map_err(source_err)? {
                let item = item_of(pv_type, false, pv);
                if item.object["metadata"]["annotations"][select::SKIP_RESOURCE] != "true" {
                    collected.push((item, Rank::Volumes));
                }
            }
        }
    }
    // PriorityClasses the collected workloads use.
    if let Some(pc_type) =
        cluster.get(&("scheduling.k8s.io".to_owned(), "PriorityClass".to_owned()))
    {
        let names = select::priority_classes(&collected.iter().map(|(i, _)| i).collect::<Vec<_>>());
        let api = Api::<DynamicObject>::all_with(source.clone(), pc_type);
        for name in names {
            if let Some(class) = api.get_opt(&name).await.map_err(source_err)? {
                collected.push((item_of(pc_type, false, class), Rank::Configuration));
            }
        }
    }
    // Webhook configurations that call a service in the namespaces.
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        if let Some(t) = cluster.get(&("admissionregistration.k8s.io".to_owned(), kind.to_owned()))
        {
            let api = Api::<DynamicObject>::all_with(source.clone(), t);
            for object in list_all(&api, None).await.map_err(source_err)? {
                let item = item_of(t, false, object);
                if select::webhook_serves(&item, &in_scope) {
                    collected.push((item, Rank::Edges));
                }
            }
        }
    }
    // ClusterRoleBindings with subjects here, and the ClusterRoles they or RoleBindings use.
    let rbac = "rbac.authorization.k8s.io".to_owned();
    let mut bindings: Vec<Item> = Vec::new();
    if let Some(crb_type) = cluster.get(&(rbac.clone(), "ClusterRoleBinding".to_owned())) {
        let api = Api::<DynamicObject>::all_with(source.clone(), crb_type);
        let all: Vec<Item> = list_all(&api, None)
            .await
            .map_err(source_err)?
            .into_iter()
            .map(|o| item_of(crb_type, false, o))
            .collect();
        bindings = select::cluster_role_bindings(&all, &in_scope);
    }
    if let Some(cr_type) = cluster.get(&(rbac, "ClusterRole".to_owned())) {
        let api = Api::<DynamicObject>::all_with(source.clone(), cr_type);
        let all: Vec<Item> = list_all(&api, None)
            .await
            .map_err(source_err)?
            .into_iter()
            .map(|o| item_of(cr_type, false, o))
            .collect();
        let role_bindings: Vec<&Item> = collected
            .iter()
            .map(|(i, _)| i)
            .filter(|i| i.kind == "RoleBinding")
            .chain(bindings.iter())
            .collect();
        for role in select::cluster_roles(&all, &role_bindings) {
            collected.push((role, Rank::Identity));
        }
    }
    for binding in bindings {
        collected.push((binding, Rank::Identity));
    }
    Ok(())
}

/// Creates each namespace on the destination if it is missing, with the source's labels and
/// annotations; an existing namespace is never changed.
async fn ensure_namespaces(
    source: &Client,
    destination: &Client,
    namespaces: &[String],
) -> Result<(), CopyError> {
    let src: Api<Namespace> = Api::all(source.clone());
    let dst: Api<Namespace> = Api::all(destination.clone());
    for name in namespaces {
        if dst.get_opt(name).await.map_err(|e| CopyError::Destination(e.to_string()))?.is_some() {
            continue;
        }
        let original = src.get(name).await.map_err(source_err)?;
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = original.metadata.labels;
        ns.metadata.annotations = original.metadata.annotations;
        dst.create(&PostParams::default(), &ns)
            .await
            .map_err(|e| CopyError::Destination(format!("creating namespace {name}: {e}")))?;
    }
    Ok(())
}

/// The resource hashes of the destination's objects of one type in one namespace; empty when
/// the type is not served there yet (its definition is applied in this run).
async fn destination_hashes(
    destination: &Client,
    resource: &ApiResource,
    item: &Item,
) -> HashMap<String, String> {
    let api = if item.namespaced {
        Api::<DynamicObject>::namespaced_with(destination.clone(), item.namespace(), resource)
    } else {
        Api::<DynamicObject>::all_with(destination.clone(), resource)
    };
    let Ok(objects) = list_all(&api, None).await else { return HashMap::new() };
    objects
        .into_iter()
        .filter_map(|o| {
            let hash = o.metadata.annotations.as_ref()?.get(RESOURCE_HASH)?.clone();
            Some((o.metadata.name?, hash))
        })
        .collect()
}

async fn apply(
    destination: &Client,
    resource: &ApiResource,
    item: &Item,
    obj: &Value,
    namespaces: &[String],
) -> Result<(), kube::Error> {
    let api = if item.namespaced {
        Api::<DynamicObject>::namespaced_with(destination.clone(), item.namespace(), resource)
    } else {
        Api::<DynamicObject>::all_with(destination.clone(), resource)
    };
    let mut obj = obj.clone();
    // A ClusterRoleBinding's subjects are one list on the server; keep the destination's
    // subjects from elsewhere (other namespaces' migrations, the standby's own) beside ours.
    if item.kind == "ClusterRoleBinding"
        && let Some(existing) = api.get_opt(item.name()).await?
    {
        let in_scope: BTreeSet<String> = namespaces.iter().cloned().collect();
        obj["subjects"] =
            select::merged_subjects(&existing.data["subjects"], &obj["subjects"], &in_scope);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(item.name(), &params, &Patch::Apply(&obj)).await?;
    Ok(())
}

/// Gives a copied PV its StorageClass back and, when data is copied, its reclaim policy (a
/// no-op when they already hold).
async fn restore_volume_class(
    destination: &Client,
    resource: &ApiResource,
    obj: &Value,
    include_volumes: bool,
) -> Result<(), kube::Error> {
    let annotations = &obj["metadata"]["annotations"];
    let class = annotations[transform::CURRENT_STORAGE_CLASS].as_str().unwrap_or_default();
    let policy = if include_volumes {
        annotations[transform::RECLAIM_POLICY].as_str().unwrap_or("Retain")
    } else {
        "Retain"
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api = Api::<DynamicObject>::all_with(destination.clone(), resource);
    let live = api.get(name).await?;
    let spec = &live.data["spec"];
    if spec["storageClassName"].as_str().unwrap_or_default() == class
        && spec["persistentVolumeReclaimPolicy"].as_str() == Some(policy)
    {
        return Ok(());
    }
    let patch =
        json!({"spec": {"storageClassName": class, "persistentVolumeReclaimPolicy": policy}});
    let params =
        PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Creates a definition when the destination lacks it; `false` when it already has one.
async fn create_definition(
    destination: &Client,
    resource: &ApiResource,
    item: &Item,
    obj: &Value,
) -> Result<bool, kube::Error> {
    let api = Api::<DynamicObject>::all_with(destination.clone(), resource);
    if api.get_opt(item.name()).await?.is_some() {
        return Ok(false);
    }
    let object: DynamicObject =
        serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    match api
        .create(
            &PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() },
            &object,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes destination objects an earlier migration copied (annotation `migrated=true`) that
/// the source no longer has, in the migrated namespaces and the collected types. ServiceAccounts
/// and cluster-scoped objects are never purged.
async fn purge(
    destination: &Client,
    spec: &MigrationSpec,
    migration_namespace: &str,
    namespaces: &[String],
    types: &[Type],
    planned: &[(Item, Rank, Value)],
    report: &mut CopyReport,
) {
    let present: BTreeSet<(String, String, String, String)> = planned
        .iter()
        .map(|(i, _, _)| {
            (i.group.clone(), i.kind.clone(), i.namespace().to_owned(), i.name().to_owned())
        })
        .collect();
    let selector = select::label_selector(spec);
    for t in types.iter().filter(|t| t.resource.kind != "ServiceAccount") {
        for ns in namespaces {
            let api = Api::<DynamicObject>::namespaced_with(destination.clone(), ns, &t.resource);
            let Ok(objects) = list_all(&api, selector.as_deref()).await else { continue };
            for object in objects {
                let item = item_of(&t.resource, true, object);
                let annotations = &item.object["metadata"]["annotations"];
                // Only what Avocet applied itself: its copies carry no owner (controllers copy
                // annotations onto what they create, a Deployment's ReplicaSets for one), and
                // were written by a migration of this namespace.
                let owned = item.object["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty());
                let ours = annotations[transform::MIGRATION_NAMESPACE]
                    .as_str()
                    .is_none_or(|ns| ns == migration_namespace);
                let migrated = annotations[MIGRATED] == "true" && !owned && ours;
                let key = (
                    item.group.clone(),
                    item.kind.clone(),
                    item.namespace().to_owned(),
                    item.name().to_owned(),
                );
                if !migrated || present.contains(&key) {
                    continue;
                }
                let (status, reason) =
                    match api.delete(item.name(), &DeleteParams::background()).await {
                        Ok(_) => (
                            MigrationStatusType::Purged,
                            "Resource was deleted from the source".to_owned(),
                        ),
                        Err(e) => (
                            MigrationStatusType::Failed,
                            format!("Error purging resource: {}: {e}", item.describe()),
                        ),
                    };
                report.resources.push(info(&item, status, reason));
            }
        }
    }
}
