//! The worker side of the hand-off: lease a migration over the `Workers` API, keep the lease
//! renewed while a [`MigrationExecutor`] runs it, report its progress, and complete it with the
//! outcome — all under the lease's fencing token.
//!
//! This is the seam where the worker actors plug in (the workers issue provides the executor
//! that copies volumes and objects). The loop never invents a result: an executor says how the
//! migration ended, and when the lease is lost (a stale token, the lease taken back) the run is
//! abandoned, its effects fenced off by the token, and nothing is completed.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::transport::Channel;

use avocet_proto::api::workers_client::WorkersClient;
use avocet_proto::api::{CompleteRequest, LeaseRequest, RenewRequest, ReportRequest};
use avocet_types::clusterpair::ClusterPair;
use avocet_types::migration::{
    Migration, MigrationResourceInfo, MigrationStatusType, MigrationVolumeInfo,
};

/// Describes a leased migration.
#[derive(Debug, Clone)]
pub struct Job {
    /// Names the migration's namespace.
    pub namespace: String,
    /// Names the migration.
    pub name: String,
    /// Holds the Migration as the catalog stores it.
    pub migration: Migration,
    /// Holds the migration's ClusterPair (`None` when it no longer exists).
    pub pair: Option<ClusterPair>,
    /// Holds the pair's store from its stored credentials (`None`: the worker's own store).
    pub store: Option<avocet_transfer::store::StoreSpec>,
    /// Holds the Rule `spec.preExecRule` names (`None`: none named, or not in the catalog).
    pub pre_exec_rule: Option<avocet_types::rule::Rule>,
    /// Holds the Rule `spec.postExecRule` names (`None`: none named, or not in the catalog).
    pub post_exec_rule: Option<avocet_types::rule::Rule>,
    /// Gives the lease's fencing token.
    pub token: u64,
    /// Names the scheduler group that granted the lease (tokens are numbered within it).
    pub source: String,
}

/// Reports a running migration's stage and counts (sent to the group as they come): the
/// worker pool's own report.
pub use avocet_workers::pool::JobReport as StageReport;

/// Says how an executor's run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// Gives Successful, PartialSuccess or Failed.
    pub status: MigrationStatusType,
    /// Explains a failure.
    pub reason: String,
    /// Gives the final counts.
    pub last: Option<StageReport>,
    /// Lists Stork's status.volumes.
    pub volumes: Vec<MigrationVolumeInfo>,
    /// Lists Stork's status.resources.
    pub resources: Vec<MigrationResourceInfo>,
}

/// Runs a leased migration to its end.
pub trait MigrationExecutor: Send + Sync + 'static {
    /// Runs `job`, sending stage reports on `progress`, and says how it ended. The future is
    /// dropped (and the run abandoned) if the lease is lost meanwhile, so effects must be
    /// idempotent and fenced by `job.token`.
    fn execute(
        &self,
        job: Job,
        progress: mpsc::Sender<StageReport>,
    ) -> impl Future<Output = Finished> + Send;
}

/// Says how the worker loop runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Names the worker in leases and events.
    pub name: String,
    /// Gives the lease length in the group's clock, in milliseconds (renewed at a third).
    pub lease_ms: u64,
    /// Gives the real time between renewals.
    pub renew_every: Duration,
    /// Waits this long when no migration is queued.
    pub idle_poll: Duration,
}

/// Adds the worker token and a deadline to every call.
pub type TokenInterceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;

/// Holds a connection with the token on every call.
pub type Client =
    WorkersClient<tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>>;

/// Returns a client of `channel` that presents `token`.
pub fn client(channel: Channel, token: &str) -> Result<Client, String> {
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the worker token has characters a header cannot carry".to_owned())?;
    let interceptor: TokenInterceptor = Box::new(move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", value.clone());
        request.set_timeout(Duration::from_secs(15));
        Ok(request)
    });
    Ok(WorkersClient::with_interceptor(channel, interceptor))
}

/// Says what one pass of the loop did.
#[derive(Debug, Clone, PartialEq)]
pub enum Pass {
    /// No migration was queued.
    Idle,
    /// A migration ran and was completed with this status.
    Completed(String, MigrationStatusType),
    /// A migration ran but its lease was lost, so it was abandoned.
    Abandoned(String, String),
}

/// Leases one migration and runs it; returns what happened, or the call that failed.
pub async fn run_once<E: MigrationExecutor>(
    client: &mut Client,
    settings: &WorkerSettings,
    executor: &E,
) -> Result<Pass, tonic::Status> {
    let lease = client
        .lease(LeaseRequest { worker: settings.name.clone(), duration_ms: settings.lease_ms })
        .await?
        .into_inner();
    if !lease.leased {
        return Ok(Pass::Idle);
    }
    let migration: Migration = serde_json::from_str(&lease.migration_json).map_err(|error| {
        tonic::Status::internal(format!("the leased migration does not decode: {error}"))
    })?;
    let pair = optional_json(&lease.cluster_pair_json, "ClusterPair")?;
    let store = optional_json(&lease.store_json, "store")?;
    let pre_exec_rule = optional_json(&lease.pre_exec_rule_json, "preExecRule")?;
    let post_exec_rule = optional_json(&lease.post_exec_rule_json, "postExecRule")?;
    let job = Job {
        namespace: lease.namespace.clone(),
        name: lease.name.clone(),
        migration,
        pair,
        store,
        pre_exec_rule,
        post_exec_rule,
        token: lease.token,
        source: lease.source_id.clone(),
    };
    let (progress, mut reports) = mpsc::channel(16);
    let run = executor.execute(job, progress);
    tokio::pin!(run);
    let mut renew = tokio::time::interval(settings.renew_every);
    renew.tick().await;
    let mut last = None;
    let finished = loop {
        tokio::select! {
            finished = &mut run => break finished,
            Some(report) = reports.recv() => {
                last = Some(report);
                // Final is reached by completing, which carries the outcome; the group refuses
                // it in a progress report.
                if report.stage == avocet_types::migration::MigrationStage::Final {
                    continue;
                }
                let request = ReportRequest {
                    namespace: lease.namespace.clone(),
                    name: lease.name.clone(),
                    token: lease.token,
                    stage: report.stage.as_str().to_owned(),
                    progress: Some(progress_message(report)),
                };
                if let Err(status) = client.report(request).await {
                    if status.code() == tonic::Code::FailedPrecondition || status.code() == tonic::Code::NotFound {
                        return Ok(Pass::Abandoned(lease.name, status.message().to_owned()));
                    }
                    tracing::warn!(%status, "progress report failed; carrying on");
                }
            }
            _ = renew.tick() => {
                let request = RenewRequest {
                    namespace: lease.namespace.clone(),
                    name: lease.name.clone(),
                    token: lease.token,
                    duration_ms: settings.lease_ms,
                };
                if let Err(status) = client.renew(request).await {
                    if status.code() == tonic::Code::FailedPrecondition || status.code() == tonic::Code::NotFound {
                        return Ok(Pass::Abandoned(lease.name, status.message().to_owned()));
                    }
                    tracing::warn!(%status, "lease renewal failed; retrying at the next renewal");
                }
            }
        }
    };
    let last = finished.last.or(last);
    let request = CompleteRequest {
        namespace: lease.namespace.clone(),
        name: lease.name.clone(),
        token: lease.token,
        status: finished.status.as_str().to_owned(),
        reason: finished.reason.clone(),
        progress: last.map(progress_message),
        volumes_json: list_json(&finished.volumes),
        resources_json: list_json(&finished.resources),
    };
    match client.complete(request).await {
        Ok(_) => Ok(Pass::Completed(lease.name, finished.status)),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            Ok(Pass::Abandoned(lease.name, status.message().to_owned()))
        }
        Err(status) => Err(status),
    }
}

/// Reads an optional JSON field of a lease (empty text: none).
fn optional_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<Option<T>, tonic::Status> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|error| {
        tonic::Status::internal(format!("the leased migration's {what} does not decode: {error}"))
    })
}

/// A status list as the Complete call carries it (empty text for an empty list).
fn list_json<T: serde::Serialize>(items: &[T]) -> String {
    if items.is_empty() { String::new() } else { serde_json::to_string(items).unwrap_or_default() }
}

fn progress_message(report: StageReport) -> avocet_proto::api::Progress {
    avocet_proto::api::Progress {
        bytes_done: report.bytes.0,
        bytes_total: report.bytes.1,
        objects_done: report.objects.0,
        objects_total: report.objects.1,
        bytes_per_second: report.bytes_per_second,
        eta_seconds: report.eta_seconds,
    }
}

/// Runs the worker loop until the task is dropped: lease, run, complete, repeat.
pub async fn run<E: MigrationExecutor>(mut client: Client, settings: WorkerSettings, executor: E) {
    loop {
        match run_once(&mut client, &settings, &executor).await {
            Ok(Pass::Idle) => tokio::time::sleep(settings.idle_poll).await,
            Ok(Pass::Completed(name, status)) => {
                tracing::info!(migration = %name, %status, "completed")
            }
            Ok(Pass::Abandoned(name, reason)) => {
                tracing::warn!(migration = %name, %reason, "lease lost; abandoned")
            }
            Err(status) => {
                tracing::warn!(%status, "worker call failed; retrying");
                tokio::time::sleep(settings.idle_poll).await;
            }
        }
    }
}
