//! The Kubernetes controller: Stork's custom resources on the source cluster are the user's
//! interface, as with Stork.
//!
//! While this node leads, reflectors (kube-runtime watchers feeding caches) on the seven Stork
//! kinds wake a reconcile pass over the caches, which also runs every [`RESYNC`]:
//! - **specs in**: each custom resource whose generation it has not mirrored yet goes through
//!   the same path as `avocetctl apply` (validated, then one `Put`), marked with
//!   `avocet.dev/source: kubernetes`; an invalid one gets a Warning event naming every bad field,
//!   and nothing is stored. Catalog objects that came from the cluster and whose resource is gone
//!   are deleted.
//! - **migrations out**: each migration the scheduler fired becomes a Migration resource, owned
//!   by its MigrationSchedule's resource.
//! - **status out**: MigrationSchedule, Migration and ClusterPair resources get the catalog's
//!   status (`status.items`, `status.resources`, `summary`, pair statuses) through `/status`.
//! - **events out**: the catalog's events become `v1` Events on the resources they concern.
//! - **deletes**: a MigrationSchedule resource carries the `avocet.dev/migrations` finalizer;
//!   deleting it deletes the schedule and its Migrations (catalog and cluster), then lets it go.
//!
//! Everything is idempotent: a pass after a leader change redoes what is not done yet (events
//! have deterministic names, so a repeated one is refused as existing).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use avocet_proto::api::ApplyRequest;
use avocet_proto::api::catalog_server::Catalog as _;
use avocet_scheduler::apply::SCHEDULE_NAME_ANNOTATION;
use avocet_scheduler::{Clock, Command, ObjectKey};
use avocet_types::Kind;
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::catalog_api::{CatalogApi, keys_of, object_json};
use crate::machine::SchedulerNode;

/// Marks catalog objects mirrored from the cluster.
pub const SOURCE_ANNOTATION: &str = "avocet.dev/source";
/// Marks Migration resources Avocet created for fired migrations.
pub const CREATED_BY_ANNOTATION: &str = "avocet.dev/created-by";
/// The finalizer on MigrationSchedule resources.
pub const FINALIZER: &str = "avocet.dev/migrations";
/// A pass runs at least this often.
pub const RESYNC: Duration = Duration::from_secs(5);

const KINDS: [(Kind, &str, bool); 7] = [
    (Kind::SchedulePolicy, "schedulepolicies", false),
    (Kind::NamespacedSchedulePolicy, "namespacedschedulepolicies", true),
    (Kind::ClusterPair, "clusterpairs", true),
    (Kind::Rule, "rules", true),
    (Kind::ApplicationRegistration, "applicationregistrations", false),
    (Kind::MigrationSchedule, "migrationschedules", true),
    (Kind::Migration, "migrations", true),
];

fn resource(kind: Kind, plural: &str) -> ApiResource {
    ApiResource {
        group: avocet_types::API_GROUP.to_owned(),
        version: avocet_types::API_VERSION.to_owned(),
        api_version: avocet_types::meta::API_GROUP_VERSION.to_owned(),
        kind: kind.as_str().to_owned(),
        plural: plural.to_owned(),
    }
}

/// Holds what the controller needs.
pub struct Controller {
    /// The node.
    pub node: Arc<SchedulerNode>,
    /// The same apply path `avocetctl apply` takes.
    pub catalog: CatalogApi,
    /// The group's clock.
    pub clock: Arc<dyn Clock>,
    /// The source cluster.
    pub client: Client,
}

/// What a leader remembers between passes (rebuilt after a leader change).
#[derive(Default)]
struct Memory {
    /// uid → generation already mirrored (or reported invalid).
    mirrored: HashMap<String, i64>,
    /// The last catalog event written as a Kubernetes Event.
    last_event: u64,
}

impl Controller {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let wake = Arc::new(Notify::new());
        // One reflector per kind: a watch-fed cache the passes read, ready once its first
        // listing is in (a kind whose definition is not installed never becomes ready, and a
        // pass leaves it alone).
        let mut caches = Vec::new();
        let mut watchers = Vec::new();
        for (kind, plural, namespaced) in KINDS {
            let ar = resource(kind, plural);
            let api = Api::<DynamicObject>::all_with(self.client.clone(), &ar);
            let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
            let reader = writer.as_reader();
            let ready = Arc::new(AtomicBool::new(false));
            let (wake, became_ready) = (Arc::clone(&wake), Arc::clone(&ready));
            watchers.push(tokio::spawn(async move {
                let mut events =
                    reflector(writer, watcher(api, watcher::Config::default()).default_backoff())
                        .boxed();
                while let Some(event) = events.next().await {
                    match event {
                        Ok(watcher::Event::InitDone) => {
                            became_ready.store(true, Ordering::Release);
                            wake.notify_one();
                        }
                        Ok(_) => wake.notify_one(),
                        Err(_) => {}
                    }
                }
            }));
            caches.push(Cache { kind, plural, namespaced, reader, ready });
        }
        let _abort = AbortOnDrop(watchers);
        let mut memory = Memory::default();
        let mut led = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(RESYNC) => {}
                () = wake.notified() => {}
            }
            let leading = self.node.status().leader_id == Some(self.node.id());
            if !leading {
                led = false;
                continue;
            }
            if !led {
                memory = Memory::default();
                led = true;
            }
            tracing::debug!("controller pass");
            if let Err(error) = self.pass(&caches, &mut memory).await {
                tracing::warn!(%error, "controller pass failed; retrying");
            }
        }
    }

    async fn pass(&self, caches: &[Cache], memory: &mut Memory) -> Result<(), kube::Error> {
        let mut present: HashMap<Kind, Vec<Value>> = HashMap::new();
        for cache in caches.iter().filter(|c| c.ready.load(Ordering::Acquire)) {
            let mut values = Vec::new();
            for item in cache.reader.state() {
                let value = serde_json::to_value(&*item).unwrap_or(Value::Null);
                self.mirror(cache.kind, cache.plural, cache.namespaced, &value, memory).await?;
                values.push(value);
            }
            present.insert(cache.kind, values);
        }
        self.delete_gone(&present).await;
        self.migrations_out(&present).await?;
        self.status_out(&present).await;
        self.events_out(&present, memory).await;
        Ok(())
    }

    /// Specs in: one resource.
    async fn mirror(
        &self,
        kind: Kind,
        plural: &str,
        namespaced: bool,
        cr: &Value,
        memory: &mut Memory,
    ) -> Result<(), kube::Error> {
        let meta = &cr["metadata"];
        let (name, namespace) = (
            meta["name"].as_str().unwrap_or_default(),
            meta["namespace"].as_str().unwrap_or_default(),
        );
        let uid = meta["uid"].as_str().unwrap_or_default().to_owned();
        let api = if namespaced {
            Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                namespace,
                &resource(kind, plural),
            )
        } else {
            Api::<DynamicObject>::all_with(self.client.clone(), &resource(kind, plural))
        };
        let finalizers: Vec<String> = meta["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        if !meta["deletionTimestamp"].is_null() {
            if kind == Kind::MigrationSchedule && finalizers.iter().any(|f| f == FINALIZER) {
                self.schedule_deleted(namespace, name).await?;
                let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": rest}})),
                )
                .await?;
            }
            return Ok(());
        }
        if kind == Kind::MigrationSchedule && !finalizers.iter().any(|f| f == FINALIZER) {
            let mut all = finalizers.clone();
            all.push(FINALIZER.to_owned());
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": all}})),
            )
            .await?;
        }
        let annotations = &meta["annotations"];
        if kind == Kind::Migration
            && (annotations[CREATED_BY_ANNOTATION] == "avocet"
                || annotations[SCHEDULE_NAME_ANNOTATION].is_string())
        {
            return Ok(());
        }
        let generation = meta["generation"].as_i64().unwrap_or(0);
        if memory.mirrored.get(&uid) == Some(&generation) {
            return Ok(());
        }
        let mut document = serde_json::Map::new();
        for (k, v) in cr.as_object().into_iter().flatten() {
            if !matches!(k.as_str(), "metadata" | "status") {
                document.insert(k.clone(), v.clone());
            }
        }
        let mut annotations = annotations.as_object().cloned().unwrap_or_default();
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        annotations.insert(SOURCE_ANNOTATION.to_owned(), json!("kubernetes"));
        let mut metadata = json!({ "name": name, "annotations": annotations });
        if namespaced {
            metadata["namespace"] = json!(namespace);
        }
        if let Some(labels) = meta["labels"].as_object() {
            metadata["labels"] = Value::Object(labels.clone());
        }
        document.insert("metadata".to_owned(), metadata);
        let text = Value::Object(document).to_string();
        let request = tonic::Request::new(ApplyRequest {
            text,
            namespace: namespace.to_owned(),
            dry_run: false,
        });
        match self.catalog.apply(request).await {
            Ok(_) => {
                memory.mirrored.insert(uid, generation);
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                memory.mirrored.insert(uid.clone(), generation);
                let message = status.message().trim_start_matches("nothing applied:\n").to_owned();
                self.event(
                    kind,
                    namespace,
                    name,
                    &uid,
                    "Warning",
                    "Invalid",
                    &message,
                    &format!("invalid-{generation}"),
                )
                .await;
            }
            Err(status) => {
                tracing::warn!(kind = kind.as_str(), name, error = %status.message(), "cannot mirror; retrying next pass")
            }
        }
        Ok(())
    }

    /// A MigrationSchedule resource is being deleted: its schedule and Migrations go.
    async fn schedule_deleted(&self, namespace: &str, name: &str) -> Result<(), kube::Error> {
        let key = ObjectKey::new(namespace, name);
        let _ = self
            .node
            .write(Command::Delete { kind: Kind::MigrationSchedule, key, at: self.clock.now() })
            .await;
        let migrations = Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            namespace,
            &resource(Kind::Migration, "migrations"),
        );
        for migration in migrations.list(&ListParams::default()).await?.items {
            let owner = migration
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SCHEDULE_NAME_ANNOTATION));
            if owner.is_some_and(|o| o == name) {
                let _ = migrations
                    .delete(
                        &migration.metadata.name.unwrap_or_default(),
                        &DeleteParams::background(),
                    )
                    .await;
            }
        }
        Ok(())
    }

    /// Catalog objects mirrored from the cluster whose resource is gone are deleted.
    async fn delete_gone(&self, present: &HashMap<Kind, Vec<Value>>) {
        for (kind, values) in present {
            let here: BTreeSet<(String, String)> = values
                .iter()
                .map(|v| {
                    let m = &v["metadata"];
                    (
                        m["namespace"].as_str().unwrap_or_default().to_owned(),
                        m["name"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let gone: Vec<ObjectKey> = self.node.read_local(|s| {
                keys_of(&s.0, *kind, None)
                    .into_iter()
                    .filter(|key| !here.contains(&(key.namespace.clone(), key.name.clone())))
                    .filter(|key| {
                        object_json(&s.0, *kind, key)
                            .ok()
                            .flatten()
                            .and_then(|j| serde_json::from_str::<Value>(&j).ok())
                            .is_some_and(|o| {
                                // Mirrored objects only: a fired migration copies its
                                // schedule's annotations but is the scheduler's own.
                                let annotations = &o["metadata"]["annotations"];
                                annotations[SOURCE_ANNOTATION] == "kubernetes"
                                    && !annotations[SCHEDULE_NAME_ANNOTATION].is_string()
                            })
                    })
                    .collect()
            });
            for key in gone {
                tracing::info!(kind = kind.as_str(), object = %key, "deleting: its resource is gone from the cluster");
                let _ = self
                    .node
                    .write(Command::Delete { kind: *kind, key, at: self.clock.now() })
                    .await;
            }
        }
    }

    /// Migrations the scheduler fired become Migration resources owned by their schedule's.
    async fn migrations_out(&self, present: &HashMap<Kind, Vec<Value>>) -> Result<(), kube::Error> {
        let Some(existing) = present.get(&Kind::Migration) else { return Ok(()) };
        let existing: BTreeSet<(String, String)> = existing
            .iter()
            .map(|v| {
                (
                    v["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
                    v["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let schedules: HashMap<(String, String), String> = present
            .get(&Kind::MigrationSchedule)
            .into_iter()
            .flatten()
            .filter(|v| v["metadata"]["deletionTimestamp"].is_null())
            .map(|v| {
                let m = &v["metadata"];
                (
                    (
                        m["namespace"].as_str().unwrap_or_default().to_owned(),
                        m["name"].as_str().unwrap_or_default().to_owned(),
                    ),
                    m["uid"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let fired: Vec<Value> = self.node.read_local(|s| {
            keys_of(&s.0, Kind::Migration, None)
                .into_iter()
                .filter(|key| !existing.contains(&(key.namespace.clone(), key.name.clone())))
                .filter_map(|key| object_json(&s.0, Kind::Migration, &key).ok().flatten())
                .filter_map(|j| serde_json::from_str::<Value>(&j).ok())
                .filter(|o| o["metadata"]["annotations"][SCHEDULE_NAME_ANNOTATION].is_string())
                .collect()
        });
        tracing::debug!(fired = fired.len(), "migrations out");
        for migration in fired {
            let meta = &migration["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or_default().to_owned();
            let schedule = meta["annotations"][SCHEDULE_NAME_ANNOTATION]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            // Only for schedules the cluster holds: the CLI's own schedules stay in the catalog.
            let Some(owner_uid) = schedules.get(&(namespace.clone(), schedule.clone())) else {
                continue;
            };
            let mut annotations = meta["annotations"].clone();
            if let Some(map) = annotations.as_object_mut() {
                map.remove(SOURCE_ANNOTATION);
            }
            annotations[CREATED_BY_ANNOTATION] = json!("avocet");
            let body = json!({
                "apiVersion": avocet_types::meta::API_GROUP_VERSION,
                "kind": "Migration",
                "metadata": {
                    "name": meta["name"], "namespace": namespace, "labels": meta["labels"], "annotations": annotations,
                    "ownerReferences": [{"apiVersion": avocet_types::meta::API_GROUP_VERSION, "kind": "MigrationSchedule",
                        "name": schedule, "uid": owner_uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": migration["spec"],
            });
            let api = Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &namespace,
                &resource(Kind::Migration, "migrations"),
            );
            let object: DynamicObject =
                serde_json::from_value(body).map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The catalog's status onto the resources that show it.
    async fn status_out(&self, present: &HashMap<Kind, Vec<Value>>) {
        for (kind, plural) in [
            (Kind::MigrationSchedule, "migrationschedules"),
            (Kind::Migration, "migrations"),
            (Kind::ClusterPair, "clusterpairs"),
        ] {
            for cr in present.get(&kind).into_iter().flatten() {
                let meta = &cr["metadata"];
                let key = ObjectKey::new(
                    meta["namespace"].as_str().unwrap_or_default(),
                    meta["name"].as_str().unwrap_or_default(),
                );
                let status = self.node.read_local(|s| {
                    object_json(&s.0, kind, &key)
                        .ok()
                        .flatten()
                        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
                });
                let Some(status) = status.map(|o| o["status"].clone()).filter(|s| !s.is_null())
                else {
                    continue;
                };
                if cr["status"] == status {
                    continue;
                }
                let api = Api::<DynamicObject>::namespaced_with(
                    self.client.clone(),
                    &key.namespace,
                    &resource(kind, plural),
                );
                // The whole status, replaced (a merge patch could not drop keys).
                let mut updated = cr.clone();
                updated["status"] = status;
                let written = match serde_json::from_value::<DynamicObject>(updated) {
                    Ok(object) => api
                        .replace_status(&key.name, &PostParams::default(), &object)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(kube::Error::SerdeError(e)),
                };
                if let Err(error) = written {
                    tracing::debug!(%error, kind = kind.as_str(), name = %key.name, "cannot write status");
                }
            }
        }
    }

    /// The catalog's events onto the resources they concern.
    async fn events_out(&self, present: &HashMap<Kind, Vec<Value>>, memory: &mut Memory) {
        let events: Vec<avocet_scheduler::catalog::Event> =
            self.node.read_local(|s| s.0.events_after(memory.last_event).cloned().collect());
        for event in events {
            memory.last_event = event.seq;
            let Some(kind) = Kind::from_any_name(&event.kind) else { continue };
            let uid = present.get(&kind).into_iter().flatten().find_map(|cr| {
                let m = &cr["metadata"];
                (m["name"] == event.object.name.as_str()
                    && m["namespace"].as_str().unwrap_or_default() == event.object.namespace)
                    .then(|| m["uid"].as_str().unwrap_or_default().to_owned())
            });
            let Some(uid) = uid else { continue };
            let kind_type =
                if event.event_type.as_str() == "Warning" { "Warning" } else { "Normal" };
            self.event(
                kind,
                &event.object.namespace,
                &event.object.name,
                &uid,
                kind_type,
                &event.reason,
                &event.message,
                &format!("{:016x}", event.seq),
            )
            .await;
        }
    }

    /// Writes one `v1` Event about a resource; its name is deterministic, so a repeat is refused.
    #[allow(clippy::too_many_arguments)]
    async fn event(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        uid: &str,
        event_type: &str,
        reason: &str,
        message: &str,
        suffix: &str,
    ) {
        let event_namespace = if namespace.is_empty() { "default" } else { namespace };
        let now = self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let event: k8s_openapi::api::core::v1::Event = match serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.{suffix}"), "namespace": event_namespace},
            "involvedObject": {"apiVersion": avocet_types::meta::API_GROUP_VERSION, "kind": kind.as_str(),
                "name": name, "namespace": namespace, "uid": uid},
            "reason": reason, "message": message, "type": event_type,
            "source": {"component": "avocet"}, "reportingComponent": "avocet",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })) {
            Ok(event) => event,
            Err(_) => return,
        };
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), event_namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => tracing::debug!(%error, "cannot write an event"),
        }
    }
}

/// One kind's watch-fed cache.
struct Cache {
    kind: Kind,
    plural: &'static str,
    namespaced: bool,
    reader: reflector::Store<DynamicObject>,
    ready: Arc<AtomicBool>,
}

/// Aborts the watcher tasks when the controller stops.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
