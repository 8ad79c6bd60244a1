//! `avocet.api.v1.Catalog` and `avocet.api.v1.Workers`: thin adapters from messages to
//! commands and reads, with every refusal turned into a gRPC status in one place
//! ([`rejection_status`]).
//!
//! Writes go through the consensus node (forwarded to the leader). Reads are linearizable when
//! this node leads; on a follower they come from its own copy, which trails the leader by at
//! most the replication delay.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::Notify;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

use avocet_consensus::RequestError;
use avocet_proto::api::catalog_server::Catalog as CatalogService;
use avocet_proto::api::workers_server::Workers as WorkersService;
use avocet_proto::api::{
    AppliedObject, ApplyRequest, ApplyResponse, CancelMigrationRequest, CancelMigrationResponse,
    CompleteRequest, CompleteResponse, DeleteRequest, DeleteResponse, Event, GetRequest,
    LeaseRequest, LeaseResponse, ListEventsRequest, ListEventsResponse, ListRequest, ListResponse,
    Object, RenewRequest, RenewResponse, ReportRequest, ReportResponse, SetSuspendRequest,
    SetSuspendResponse,
};
use avocet_scheduler::catalog::{PolicyObject, Progress};
use avocet_scheduler::command::Outcome;
use avocet_scheduler::{Catalog, CatalogObject, Clock, Command, ObjectKey, Rejection};
use avocet_types::Kind;
use avocet_types::meta::Scope;
use avocet_types::migration::{MigrationStage, MigrationStatusType};

use crate::api::status_of;
use crate::machine::SchedulerNode;

/// Maps a refusal of `apply` to a gRPC status, for every handler.
pub fn rejection_status(rejection: Rejection) -> Status {
    let message = rejection.to_string();
    match rejection {
        Rejection::NotFound { .. } | Rejection::NoCredential { .. } => Status::not_found(message),
        Rejection::CredentialExists { .. } => Status::already_exists(message),
        Rejection::Invalid { .. } => Status::invalid_argument(message),
        _ => Status::failed_precondition(message),
    }
}

/// Returns the kind a user named, in any spelling kubectl accepts.
pub fn parse_kind(text: &str) -> Result<Kind, Status> {
    Kind::from_any_name(text).ok_or_else(|| {
        Status::invalid_argument(format!(
            "kind: {text:?} is not a kind Avocet stores (clusterpair, schedulepolicy, \
             namespacedschedulepolicy, migrationschedule, migration, rule, \
             applicationregistration)"
        ))
    })
}

pub(crate) fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Status> {
    serde_json::to_string(value)
        .map_err(|error| Status::internal(format!("cannot encode: {error}")))
}

/// Returns the object of `kind` at `key` as JSON, if the catalog holds it.
pub(crate) fn object_json(
    catalog: &Catalog,
    kind: Kind,
    key: &ObjectKey,
) -> Result<Option<String>, Status> {
    Ok(match kind {
        Kind::ClusterPair => catalog.cluster_pair(key).map(json).transpose()?,
        Kind::SchedulePolicy => match catalog.policy(&ObjectKey::cluster(&key.name)) {
            Some(entry) => match &entry.object {
                PolicyObject::Cluster(policy) => Some(json(policy)?),
                PolicyObject::Namespaced(_) => None,
            },
            None => None,
        },
        Kind::NamespacedSchedulePolicy => match catalog.policy(key) {
            Some(entry) if !key.namespace.is_empty() => match &entry.object {
                PolicyObject::Namespaced(policy) => Some(json(policy)?),
                PolicyObject::Cluster(_) => None,
            },
            _ => None,
        },
        Kind::MigrationSchedule => catalog.schedule(key).map(|e| json(&e.object)).transpose()?,
        Kind::Migration => catalog.migration(key).map(|e| json(&e.object)).transpose()?,
        Kind::Rule => catalog.rule(key).map(json).transpose()?,
        Kind::ApplicationRegistration => catalog.registration(&key.name).map(json).transpose()?,
    })
}

/// Lists the keys of `kind` in `namespace` (every namespace when `None`).
pub(crate) fn keys_of(catalog: &Catalog, kind: Kind, namespace: Option<&str>) -> Vec<ObjectKey> {
    let matches = |key: &ObjectKey| namespace.is_none_or(|ns| key.namespace == ns);
    match kind {
        Kind::ClusterPair => {
            catalog.cluster_pairs().map(|(k, _)| k).filter(|k| matches(k)).cloned().collect()
        }
        Kind::SchedulePolicy => {
            catalog.policies().map(|(k, _)| k).filter(|k| k.namespace.is_empty()).cloned().collect()
        }
        Kind::NamespacedSchedulePolicy => catalog
            .policies()
            .map(|(k, _)| k)
            .filter(|k| !k.namespace.is_empty() && matches(k))
            .cloned()
            .collect(),
        Kind::MigrationSchedule => {
            catalog.schedules().map(|(k, _)| k).filter(|k| matches(k)).cloned().collect()
        }
        Kind::Migration => {
            catalog.migrations().map(|(k, _)| k).filter(|k| matches(k)).cloned().collect()
        }
        Kind::Rule => catalog.rules().map(|(k, _)| k).filter(|k| matches(k)).cloned().collect(),
        Kind::ApplicationRegistration => catalog.registrations().map(|(k, _)| k).cloned().collect(),
    }
}

fn event_message(event: &avocet_scheduler::catalog::Event) -> Event {
    Event {
        seq: event.seq,
        time: rfc3339(event.time),
        kind: event.kind.clone(),
        namespace: event.object.namespace.clone(),
        name: event.object.name.clone(),
        r#type: event.event_type.as_str().to_owned(),
        reason: event.reason.clone(),
        message: event.message.clone(),
    }
}

fn select_events(catalog: &Catalog, request: &ListEventsRequest) -> Vec<Event> {
    catalog
        .events_after(request.after_seq)
        .filter(|event| {
            (request.all_namespaces || event.object.namespace == request.namespace)
                && (request.kind.is_empty() || event.kind.eq_ignore_ascii_case(&request.kind))
                && (request.name.is_empty() || event.object.name == request.name)
        })
        .map(event_message)
        .collect()
}

/// Returns `namespace`, or `default` when it is empty (kubectl's rule).
fn or_default(namespace: &str) -> &str {
    if namespace.is_empty() { "default" } else { namespace }
}

/// Returns the key of the `kind` object `name` in `namespace` (empty: `default`; ignored for
/// cluster-scoped kinds); the name is required.
fn object_key(kind: Kind, namespace: &str, name: &str) -> Result<ObjectKey, Status> {
    required("name", name)?;
    Ok(match kind.scope() {
        Scope::Cluster => ObjectKey::cluster(name),
        Scope::Namespaced => ObjectKey::new(or_default(namespace), name),
    })
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field}: is required")))
    } else {
        Ok(())
    }
}

/// Serves the catalog calls of one node.
#[derive(Clone)]
pub struct CatalogApi {
    node: Arc<SchedulerNode>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

impl CatalogApi {
    /// Reads the group's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Returns the service of `node`; `wake` is notified after each change this node commits.
    pub fn new(node: Arc<SchedulerNode>, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Self {
        CatalogApi { node, clock, wake }
    }

    /// Reads linearizably on the leader, else from this node's copy.
    pub(crate) async fn read<T>(&self, read: impl Fn(&Catalog) -> T) -> Result<T, Status> {
        match self.node.read(|s| read(&s.0)).await {
            Ok(value) => Ok(value),
            Err(RequestError::NotLeader { .. } | RequestError::NoLeader(_)) => {
                Ok(self.node.read_local(|s| read(&s.0)))
            }
            Err(error) => Err(status_of(error)),
        }
    }

    pub(crate) async fn write(
        &self,
        command: Command,
    ) -> Result<avocet_scheduler::Response, Status> {
        let response = self.node.write(command).await.map_err(status_of)?;
        self.wake.notify_one();
        match response {
            avocet_scheduler::Response::Rejected(rejection) => Err(rejection_status(rejection)),
            other => Ok(other),
        }
    }
}

impl std::fmt::Debug for CatalogApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogApi").field("node", &self.node.id()).finish()
    }
}

/// Streams events to one watcher.
pub struct EventStream(tokio::sync::mpsc::Receiver<Result<Event, Status>>);

impl Stream for EventStream {
    type Item = Result<Event, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Waits between polls of the catalog for new events.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(200);

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    type WatchEventsStream = EventStream;

    async fn apply(
        &self,
        request: Request<ApplyRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let request = request.into_inner();
        let namespace = or_default(&request.namespace);
        let documents = avocet_types::parse_documents(&request.text)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        if documents.is_empty() {
            return Err(Status::invalid_argument("text: holds no documents"));
        }
        let mut problems = Vec::new();
        let mut objects = Vec::new();
        for document in documents {
            match document {
                Err(error) => problems.push(error.to_string()),
                Ok(document) => {
                    let kind = document.object.kind();
                    let label =
                        format!("{kind}/{} (document {})", document.object.name(), document.index);
                    if let (Scope::Namespaced, Some(own)) =
                        (kind.scope(), document.object.namespace())
                        && !request.namespace.is_empty()
                        && own != request.namespace
                    {
                        problems.push(format!(
                            "{label}: metadata.namespace: {own:?} does not match the namespace {:?} \
                             given with -n",
                            request.namespace
                        ));
                        continue;
                    }
                    match CatalogObject::from_stork(document.object, namespace) {
                        Ok(object) => objects.push((object, document.warnings)),
                        Err(kind) => problems.push(format!(
                            "{label}: {kind} objects are not stored by the scheduler yet"
                        )),
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(Status::invalid_argument(format!(
                "nothing applied:\n{}",
                problems.join("\n")
            )));
        }
        let describe = |object: &CatalogObject| {
            let key = object.key();
            (object.kind().as_str().to_owned(), key.namespace, key.name)
        };
        if request.dry_run {
            let applied = objects
                .iter()
                .map(|(object, warnings)| {
                    let (kind, namespace, name) = describe(object);
                    AppliedObject {
                        kind,
                        namespace,
                        name,
                        action: "valid".to_owned(),
                        message: String::new(),
                        warnings: warnings.clone(),
                    }
                })
                .collect();
            return Ok(Response::new(ApplyResponse { objects: applied }));
        }
        let at = self.clock.now();
        let labels: Vec<_> =
            objects.iter().map(|(object, warnings)| (describe(object), warnings.clone())).collect();
        let commands = objects
            .into_iter()
            .map(|(object, _)| Command::Put { object: Box::new(object), at })
            .collect();
        let responses = self.node.write_batch(commands).await.map_err(status_of)?;
        self.wake.notify_one();
        let applied = labels
            .into_iter()
            .zip(responses)
            .map(|(((kind, namespace, name), warnings), response)| {
                let (action, message) = match response {
                    avocet_scheduler::Response::Put { created: true, .. } => {
                        ("created", String::new())
                    }
                    avocet_scheduler::Response::Put { changed: true, .. } => {
                        ("configured", String::new())
                    }
                    avocet_scheduler::Response::Put { .. } => ("unchanged", String::new()),
                    avocet_scheduler::Response::Rejected(rejection) => {
                        ("rejected", rejection.to_string())
                    }
                    other => ("rejected", format!("unexpected answer {other:?}")),
                };
                AppliedObject {
                    kind,
                    namespace,
                    name,
                    action: action.to_owned(),
                    message,
                    warnings,
                }
            })
            .collect();
        Ok(Response::new(ApplyResponse { objects: applied }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Object>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let key = object_key(kind, &request.namespace, &request.name)?;
        let found = self.read(|catalog| object_json(catalog, kind, &key)).await??;
        match found {
            Some(json) => Ok(Response::new(Object { kind: kind.as_str().to_owned(), json })),
            None => Err(Status::not_found(format!("{kind} {key} not found"))),
        }
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let namespace = match (kind.scope(), request.all_namespaces) {
            (Scope::Cluster, _) | (_, true) => None,
            (Scope::Namespaced, false) => Some(or_default(&request.namespace).to_owned()),
        };
        let objects = self
            .read(|catalog| {
                keys_of(catalog, kind, namespace.as_deref())
                    .iter()
                    .filter_map(|key| object_json(catalog, kind, key).transpose())
                    .map(|json| json.map(|json| Object { kind: kind.as_str().to_owned(), json }))
                    .collect::<Result<Vec<_>, Status>>()
            })
            .await??;
        Ok(Response::new(ListResponse { objects }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let key = object_key(kind, &request.namespace, &request.name)?;
        let response = self.write(Command::Delete { kind, key, at: self.clock.now() }).await?;
        let migrations_deleted = match response {
            avocet_scheduler::Response::Deleted { migrations, .. } => migrations,
            _ => 0,
        };
        Ok(Response::new(DeleteResponse { migrations_deleted }))
    }

    async fn set_suspend(
        &self,
        request: Request<SetSuspendRequest>,
    ) -> Result<Response<SetSuspendResponse>, Status> {
        let request = request.into_inner();
        let schedule = object_key(Kind::MigrationSchedule, &request.namespace, &request.name)?;
        let response = self
            .write(Command::SetSuspend { schedule, suspend: request.suspend, at: self.clock.now() })
            .await?;
        let changed = matches!(response, avocet_scheduler::Response::Suspended { changed: true });
        Ok(Response::new(SetSuspendResponse { changed }))
    }

    async fn cancel_migration(
        &self,
        request: Request<CancelMigrationRequest>,
    ) -> Result<Response<CancelMigrationResponse>, Status> {
        let request = request.into_inner();
        let migration = object_key(Kind::Migration, &request.namespace, &request.name)?;
        self.write(Command::Cancel { migration, at: self.clock.now() }).await?;
        Ok(Response::new(CancelMigrationResponse {}))
    }

    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let request = request.into_inner();
        let events = self.read(|catalog| select_events(catalog, &request)).await?;
        Ok(Response::new(ListEventsResponse { events }))
    }

    async fn watch_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let mut request = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        let node = Arc::clone(&self.node);
        tokio::spawn(async move {
            loop {
                let events = node.read_local(|s| select_events(&s.0, &request));
                for event in events {
                    request.after_seq = event.seq;
                    if sender.send(Ok(event)).await.is_err() {
                        return; // the watcher went away
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(WATCH_POLL) => {}
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(EventStream(receiver)))
    }
}

fn progress(message: Option<avocet_proto::api::Progress>) -> Progress {
    let message = message.unwrap_or_default();
    Progress {
        bytes_done: message.bytes_done,
        bytes_total: message.bytes_total,
        objects_done: message.objects_done,
        objects_total: message.objects_total,
        bytes_per_second: message.bytes_per_second,
        eta_seconds: message.eta_seconds,
    }
}

fn stage(text: &str) -> Result<MigrationStage, Status> {
    match text {
        "" => Ok(MigrationStage::Initial),
        "PreExecRule" => Ok(MigrationStage::PreExecRule),
        "PostExecRule" => Ok(MigrationStage::PostExecRule),
        "Volumes" => Ok(MigrationStage::Volumes),
        "Applications" => Ok(MigrationStage::Applications),
        other => Err(Status::invalid_argument(format!(
            "stage: {other:?} is not a stage (\"\", PreExecRule, PostExecRule, Volumes, Applications)"
        ))),
    }
}

fn json_list<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> Result<Vec<T>, Status> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
        .map_err(|error| Status::invalid_argument(format!("{field}: {error}")))
}

fn migration_key(namespace: &str, name: &str) -> Result<ObjectKey, Status> {
    required("name", name)?;
    required("namespace", namespace)?;
    Ok(ObjectKey::new(namespace, name))
}

/// Serves the worker calls of one node.
#[derive(Clone)]
pub struct WorkersApi {
    catalog: CatalogApi,
    master: Option<Arc<avocet_transfer::seal::Key>>,
}

impl WorkersApi {
    /// Returns the service of `node`; with the master key, leases carry the pair's store from
    /// its stored credentials.
    pub fn new(catalog: CatalogApi, master: Option<Arc<avocet_transfer::seal::Key>>) -> Self {
        WorkersApi { catalog, master }
    }
}

/// `text` escaped for a URL query value (the store URL reader decodes `%XX`).
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'&' | b'=' | b'%' | b'?' | b'#' | b' ' => format!("%{b:02X}"),
            _ => char::from(b).to_string(),
        })
        .collect()
}

/// The store of `pair` from credentials named `clusterPair_<status.remoteStorageId>`, if any.
fn store_spec(
    catalog: &Catalog,
    master: &avocet_transfer::seal::Key,
    pair: &avocet_types::ClusterPair,
) -> Result<Option<String>, Status> {
    let id = pair.status.as_ref().map(|s| s.remote_storage_id.as_str()).unwrap_or_default();
    if id.is_empty() {
        return Ok(None);
    }
    let Some(credential) = catalog.credential(&format!("clusterPair_{id}")) else {
        return Ok(None);
    };
    let secrets = crate::credentials::open_secrets(master, credential).map_err(Status::internal)?;
    let bucket = credential.bucket_for(id);
    let spec = avocet_transfer::store::StoreSpec {
        url: format!(
            "s3://{bucket}?endpoint={}&region={}",
            query_value(&credential.endpoint),
            query_value(&credential.region)
        ),
        access_key: secrets.access_key,
        secret_key: secrets.secret_key,
        key_hex: secrets.pair_key,
    };
    serde_json::to_string(&spec).map(Some).map_err(|e| Status::internal(e.to_string()))
}

impl std::fmt::Debug for WorkersApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkersApi").finish()
    }
}

#[tonic::async_trait]
impl WorkersService for WorkersApi {
    async fn lease(
        &self,
        request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        let request = request.into_inner();
        required("worker", &request.worker)?;
        let at = self.catalog.clock.now();
        let command =
            Command::Lease { worker: request.worker, duration_ms: request.duration_ms, at };
        match self.catalog.write(command).await? {
            avocet_scheduler::Response::Leased { migration, token, expires_at } => {
                let pair_key = ObjectKey::new(
                    migration.metadata.namespace.as_deref().unwrap_or_default(),
                    &migration.spec.cluster_pair,
                );
                let master = self.master.clone();
                let namespace = migration.metadata.namespace.clone().unwrap_or_default();
                let rule_key =
                    |name: &str| (!name.is_empty()).then(|| ObjectKey::new(&namespace, name));
                let (pre_key, post_key) = (
                    rule_key(&migration.spec.pre_exec_rule),
                    rule_key(&migration.spec.post_exec_rule),
                );
                let (cluster_pair_json, store_json, pre_exec_rule_json, post_exec_rule_json) = self
                    .catalog
                    .read(|catalog| {
                        let rule_json = |key: &Option<ObjectKey>| match key
                            .as_ref()
                            .and_then(|key| catalog.rule(key))
                        {
                            Some(rule) => json(rule),
                            None => Ok(String::new()),
                        };
                        let (pre, post) = (rule_json(&pre_key)?, rule_json(&post_key)?);
                        let Some(pair) = catalog.cluster_pair(&pair_key) else {
                            return Ok((String::new(), String::new(), pre, post));
                        };
                        let store = match &master {
                            Some(master) => store_spec(catalog, master, pair)?,
                            None => None,
                        };
                        Ok::<_, Status>((json(pair)?, store.unwrap_or_default(), pre, post))
                    })
                    .await??;
                Ok(Response::new(LeaseResponse {
                    cluster_pair_json,
                    store_json,
                    pre_exec_rule_json,
                    post_exec_rule_json,
                    leased: true,
                    namespace: migration.metadata.namespace.clone().unwrap_or_default(),
                    name: migration.metadata.name.clone().unwrap_or_default(),
                    migration_json: json(&migration)?,
                    token,
                    expires_at: rfc3339(expires_at),
                    source_id: self.catalog.node.group().map(|group| group.0).unwrap_or_default(),
                }))
            }
            _ => Ok(Response::new(LeaseResponse::default())),
        }
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let request = request.into_inner();
        let migration = migration_key(&request.namespace, &request.name)?;
        let at = self.catalog.clock.now();
        let command = Command::Renew {
            migration,
            token: request.token,
            duration_ms: request.duration_ms,
            at,
        };
        self.catalog.write(command).await?;
        Ok(Response::new(RenewResponse {}))
    }

    async fn report(
        &self,
        request: Request<ReportRequest>,
    ) -> Result<Response<ReportResponse>, Status> {
        let request = request.into_inner();
        let migration = migration_key(&request.namespace, &request.name)?;
        let command = Command::Report {
            migration,
            token: request.token,
            stage: stage(&request.stage)?,
            progress: progress(request.progress),
            at: self.catalog.clock.now(),
        };
        self.catalog.write(command).await?;
        Ok(Response::new(ReportResponse {}))
    }

    async fn complete(
        &self,
        request: Request<CompleteRequest>,
    ) -> Result<Response<CompleteResponse>, Status> {
        let request = request.into_inner();
        let migration = migration_key(&request.namespace, &request.name)?;
        let status = match request.status.as_str() {
            "Successful" => MigrationStatusType::Successful,
            "PartialSuccess" => MigrationStatusType::PartialSuccess,
            "Failed" => MigrationStatusType::Failed,
            other => {
                return Err(Status::invalid_argument(format!(
                    "status: {other:?} is not Successful, PartialSuccess or Failed"
                )));
            }
        };
        let command = Command::Complete {
            migration,
            token: request.token,
            outcome: Box::new(Outcome {
                status,
                reason: request.reason,
                progress: progress(request.progress),
                volumes: json_list("volumes_json", &request.volumes_json)?,
                resources: json_list("resources_json", &request.resources_json)?,
            }),
            at: self.catalog.clock.now(),
        };
        self.catalog.write(command).await?;
        Ok(Response::new(CompleteResponse {}))
    }
}
