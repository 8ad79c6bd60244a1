//! Volumes across a pair: the worker pool behind the dispatch loop, the stores it pushes
//! through, and both ends of the destination restore.
//!
//! - [`PoolExecutor`] runs leased migrations in the `avocet-workers` pool.
//! - [`PairStores`] opens a pair's store: this node's `--store`, in a folder per pair
//!   (`<namespace>.<name>` of the source's ClusterPair), sealed with the `--store-key-file` key.
//! - [`RemoteDestination`] asks the destination's Avocet (`options.ip:port`, `options.token`)
//!   to restore a run; [`VolumesApi`] is that service, writing into `--volume-root`.
//!
//! Until the credentials issue keeps a key per pair, source and destination are configured
//! with the same store and key file.

use std::path::PathBuf;
use std::sync::Arc;

use avocet_proto::api::volumes_client::VolumesClient;
use avocet_proto::api::volumes_server::Volumes;
use avocet_proto::api::{RestoreVolumeRequest, RestoreVolumeResponse};
use avocet_transfer::layout::check_volume_name;
use avocet_transfer::repo::Repository;
use avocet_transfer::seal::Key;
use avocet_transfer::store::{StoreSpec, StoreUrl};
use avocet_types::clusterpair::ClusterPair;
use avocet_types::migration::MigrationStatusType;
use avocet_workers::pool::{Boxed, Destination, MigrationJob, Stores, WorkerPool};
use avocet_workers::volumes::Volume;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::dispatch::{Finished, Job, MigrationExecutor, StageReport};

/// The longest a destination may take to restore one run (a large first copy takes hours).
const RESTORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The store's folder for a pair.
fn pair_prefix(pair: &ClusterPair) -> String {
    format!(
        "{}.{}",
        pair.metadata.namespace.as_deref().unwrap_or("default"),
        pair.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `url` with `prefix` as a sub-folder.
fn under(url: &StoreUrl, prefix: &str) -> StoreUrl {
    match url {
        StoreUrl::Local(root) => StoreUrl::Local(root.join(prefix)),
        StoreUrl::S3(options) => {
            let mut options = options.clone();
            options.prefix = if options.prefix.is_empty() {
                prefix.to_owned()
            } else {
                format!("{}/{prefix}", options.prefix)
            };
            StoreUrl::S3(options)
        }
    }
}

async fn open_repo(url: &StoreUrl, key: &[u8], create: bool) -> Result<Repository, String> {
    let store = url.open().await.map_err(|e| e.to_string())?;
    let key = Key::derive(key).map_err(|e| e.to_string())?;
    Repository::open(store, key, create).await.map_err(|e| e.to_string())
}

/// Opens a pair's store: the one its stored credentials name (with the pair's data key), or
/// else this node's `--store` with its `--store-key-file` key.
#[derive(Debug)]
pub struct PairStores {
    /// The store.
    pub url: StoreUrl,
    /// The key material, when configured.
    pub key: Option<Vec<u8>>,
}

/// The store and key a spec names, in the pair's folder.
fn spec_store(spec: &StoreSpec, prefix: &str) -> Result<(StoreUrl, Vec<u8>), String> {
    let url = spec.store_url().map_err(|e| format!("the pair's credentials: {e}"))?;
    Ok((under(&url, prefix), spec.key_material()))
}

impl Stores for PairStores {
    fn open<'a>(&'a self, job: &'a MigrationJob) -> Boxed<'a, Repository> {
        Box::pin(async move {
            let prefix = pair_prefix(&job.pair);
            let (url, key) = match (&job.store, &self.key) {
                (Some(spec), _) => spec_store(spec, &prefix)?,
                (None, Some(key)) => (under(&self.url, &prefix), key.clone()),
                (None, None) => {
                    return Err(format!(
                        "no credentials for ClusterPair {prefix} (name them clusterPair_<destination cluster id>) and no --store-key-file on this worker"
                    ));
                }
            };
            open_repo(&url, &key, true).await
        })
    }
}

/// Has the pair's destination Avocet restore a run.
#[derive(Debug, Default)]
pub struct RemoteDestination;

impl Destination for RemoteDestination {
    fn restore<'a>(
        &'a self,
        job: &'a MigrationJob,
        volume: &'a Volume,
        run: u64,
    ) -> Boxed<'a, String> {
        Box::pin(async move {
            let pair = &job.pair;
            let (channel, url, bearer) = crate::pairs::destination_channel(pair, RESTORE_TIMEOUT)
                .await?
                .ok_or_else(|| {
                    "the ClusterPair's options name no token for the destination Avocet".to_owned()
                })?;
            let mut client =
                VolumesClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
                    request.metadata_mut().insert("authorization", bearer.clone());
                    Ok(request)
                });
            let store_json = match &job.store {
                Some(spec) => serde_json::to_string(spec).map_err(|e| e.to_string())?,
                None => String::new(),
            };
            let request = RestoreVolumeRequest {
                store_prefix: pair_prefix(pair),
                volume: volume.store_name(),
                run,
                store_json,
            };
            let answer = client.restore(request).await.map_err(|e| {
                format!("the destination Avocet at {url} could not restore it: {}", e.message())
            })?;
            Ok(answer.into_inner().path)
        })
    }
}

/// The destination's restore service.
#[derive(Debug, Clone)]
pub struct VolumesApi {
    /// The store, as this node is configured.
    pub url: StoreUrl,
    /// The key material, when configured.
    pub key: Option<Arc<Vec<u8>>>,
    /// Where volumes are restored, when configured.
    pub root: Option<PathBuf>,
    /// One lock per target folder: restores of one volume never overlap, even when a caller
    /// gave up on one and retried.
    pub locks:
        Arc<std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>>,
}

impl VolumesApi {
    /// The service, restoring into `root` from `url` with `key`.
    pub fn new(url: StoreUrl, key: Option<Arc<Vec<u8>>>, root: Option<PathBuf>) -> VolumesApi {
        VolumesApi { url, key, root, locks: Arc::default() }
    }

    fn lock_of(&self, target: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(target.to_path_buf()).or_default().clone()
    }
}

#[tonic::async_trait]
impl Volumes for VolumesApi {
    async fn restore(
        &self,
        request: Request<RestoreVolumeRequest>,
    ) -> Result<Response<RestoreVolumeResponse>, Status> {
        let request = request.into_inner();
        let Some(root) = &self.root else {
            return Err(Status::failed_precondition(
                "this Avocet restores no volumes: start it with --volume-root",
            ));
        };
        check_volume_name(&request.store_prefix)
            .map_err(|e| Status::invalid_argument(format!("store_prefix: {e}")))?;
        check_volume_name(&request.volume)
            .map_err(|e| Status::invalid_argument(format!("volume: {e}")))?;
        let (url, key) = if request.store_json.is_empty() {
            let Some(key) = &self.key else {
                return Err(Status::failed_precondition(
                    "the source sent no store and this Avocet has no --store-key-file",
                ));
            };
            (under(&self.url, &request.store_prefix), key.to_vec())
        } else {
            let spec: StoreSpec = serde_json::from_str(&request.store_json)
                .map_err(|e| Status::invalid_argument(format!("store_json: {e}")))?;
            spec_store(&spec, &request.store_prefix).map_err(Status::invalid_argument)?
        };
        let repo = open_repo(&url, &key, false).await.map_err(Status::failed_precondition)?;
        // The repository's id, not its URL: a store recreated at the same place counts its
        // runs afresh, and the same store reached by two URLs is one.
        let store = format!("repository {}", repo.id());
        let target = root.join(&request.volume);
        let marker = root.join(format!(".{}.restored", request.volume));
        // The restore runs to its end even if the caller stops waiting, holding the target's
        // lock, so a retry waits for it instead of racing it.
        let lock = self.lock_of(&target);
        let (volume, run, into) = (request.volume.clone(), request.run, target.clone());
        let restore = tokio::spawn(async move {
            let _held = lock.lock().await;
            // Fencing at the destination: a worker whose lease lapsed may still ask for the
            // run it pushed, older than one restored since; the folder never goes back.
            let last = std::fs::read_to_string(&marker).unwrap_or_default();
            if let Some(newer) = newer_run_restored(&last, &store, run) {
                return Err(Status::failed_precondition(format!(
                    "run {run} of volume {volume} is older than run {newer} restored already \
                     from the same store (a request from a worker whose lease lapsed)"
                )));
            }
            let report =
                avocet_transfer::restore::restore(&repo, &volume, Some(run), &into, Arc::default())
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?;
            std::fs::write(&marker, format!("{store}\n{run}\n"))
                .map_err(|e| Status::internal(format!("{}: {e}", marker.display())))?;
            Ok(report)
        });
        let report =
            restore.await.map_err(|e| Status::internal(format!("the restore stopped: {e}")))??;
        tracing::info!(volume = %request.volume, run = request.run, target = %target.display(), "volume restored");
        Ok(Response::new(RestoreVolumeResponse {
            path: target.display().to_string(),
            files: report.files,
            bytes_downloaded: report.bytes_downloaded,
        }))
    }
}

/// The run restored last from `store` (a repository id) when it is newer than `run`, read from
/// a marker (`<store>\n<run>\n`); a marker of another store says nothing (its runs count
/// apart).
fn newer_run_restored(marker: &str, store: &str, run: u64) -> Option<u64> {
    let mut lines = marker.lines();
    let (Some(marked_store), Some(last)) = (lines.next(), lines.next()) else { return None };
    let last: u64 = last.trim().parse().ok()?;
    (marked_store == store && last > run).then_some(last)
}

/// Runs leased migrations in the worker pool.
#[derive(Debug)]
pub struct PoolExecutor {
    /// The pool.
    pub pool: Arc<WorkerPool>,
}

impl MigrationExecutor for PoolExecutor {
    async fn execute(&self, job: Job, progress: mpsc::Sender<StageReport>) -> Finished {
        let Some(pair) = job.pair else {
            return Finished {
                status: MigrationStatusType::Failed,
                reason: format!(
                    "ClusterPair {:?} does not exist in namespace {:?}",
                    job.migration.spec.cluster_pair, job.namespace
                ),
                ..Finished::default()
            };
        };
        let job = MigrationJob {
            namespace: job.namespace,
            name: job.name,
            migration: job.migration,
            pair,
            store: job.store,
            pre_exec_rule: job.pre_exec_rule,
            post_exec_rule: job.post_exec_rule,
            token: job.token,
        };
        let outcome = self.pool.run(job, progress).await;
        Finished {
            status: outcome.status,
            reason: outcome.reason,
            last: outcome.last,
            volumes: outcome.volumes,
            resources: outcome.resources,
        }
    }
}

/// How a set of workers runs: the pool and the dispatch loops that feed it.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// The scheduler group's public API.
    pub server: String,
    /// The worker (or admin) token.
    pub token: String,
    /// The worker's name in leases and events.
    pub name: String,
    /// Migrations run at once.
    pub count: u32,
    /// Lease length in the group's clock, in milliseconds.
    pub lease_ms: u64,
    /// The source cluster's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The store.
    pub store: StoreUrl,
    /// The key material, when configured (else only pairs with credentials can move).
    pub key: Option<Vec<u8>>,
}

/// Starts a worker pool and `plan.count` dispatch loops feeding it; returns the pool (drop it
/// to stop the actors) and the loops' tasks (abort them to stop leasing).
pub async fn start_workers(
    plan: WorkerPlan,
) -> Result<(Arc<WorkerPool>, Vec<tokio::task::JoinHandle<()>>), String> {
    let source = crate::serve::source_client(&plan.kubeconfig).await?;
    let pool = WorkerPool::start(avocet_workers::pool::PoolConfig {
        source,
        stores: Arc::new(PairStores { url: plan.store.clone(), key: plan.key.clone() }),
        destination: Arc::new(RemoteDestination),
        volumes: Arc::new(avocet_workers::volumes::DirectoryVolumes),
        migrations_at_once: usize::try_from(plan.count).unwrap_or(1).max(1),
        volumes_at_once: 2,
        report_every: std::time::Duration::from_secs(2),
        volume_attempts: 3,
        rules: avocet_workers::rules::RuleSettings::default(),
        runtime: tokio::runtime::Handle::current(),
    })
    .map_err(|e| format!("the worker actors did not start: {e}"))?;
    let pool = Arc::new(pool);
    let channel = tonic::transport::Endpoint::from_shared(plan.server.clone())
        .map_err(|_| format!("{:?} is not a server URL", plan.server))?
        .connect_lazy();
    let mut loops = Vec::new();
    for i in 0..plan.count.max(1) {
        let client = crate::dispatch::client(channel.clone(), &plan.token)?;
        let settings = crate::dispatch::WorkerSettings {
            name: if plan.count > 1 { format!("{}-{i}", plan.name) } else { plan.name.clone() },
            lease_ms: plan.lease_ms,
            // Every 5 s, or a third of a short lease (in the group's clock, which runs at
            // least as fast as real time), so that two renewals can fail before it lapses.
            renew_every: std::time::Duration::from_millis((plan.lease_ms / 3).clamp(100, 5_000)),
            idle_poll: std::time::Duration::from_millis(500),
        };
        let executor = PoolExecutor { pool: Arc::clone(&pool) };
        loops.push(tokio::spawn(crate::dispatch::run(client, settings, executor)));
    }
    Ok((pool, loops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_older_than_the_last_from_the_same_store_is_stale() {
        let marker = "repository a1\n7\n";
        assert_eq!(newer_run_restored(marker, "repository a1", 6), Some(7));
        assert_eq!(newer_run_restored(marker, "repository a1", 7), None);
        assert_eq!(newer_run_restored(marker, "repository a1", 8), None);
        assert_eq!(newer_run_restored(marker, "repository b2", 1), None);
        assert_eq!(newer_run_restored("", "repository a1", 1), None);
        assert_eq!(newer_run_restored("garbage", "repository a1", 1), None);
    }
}
