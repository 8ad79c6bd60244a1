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
                lease_token: job.token,
                source_id: job.source.clone(),
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
        let (volume, into) = (request.volume.clone(), target.clone());
        let asked = Restored {
            store,
            run: request.run,
            source: request.source_id.clone(),
            token: request.lease_token,
        };
        let restore = tokio::spawn(async move {
            let _held = lock.lock().await;
            // Fencing at the destination: a worker whose lease lapsed may still ask for the
            // run it pushed; the folder never goes back to an older lease's or an older run.
            let last = std::fs::read_to_string(&marker).unwrap_or_default();
            if let Err(why) = asked.admitted_after(&Restored::parse(&last)) {
                return Err(Status::failed_precondition(format!(
                    "volume {volume}: {why} (a request from a worker whose lease lapsed)"
                )));
            }
            let run = asked.run;
            let report =
                avocet_transfer::restore::restore(&repo, &volume, Some(run), &into, Arc::default())
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?;
            std::fs::write(&marker, asked.to_marker())
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

/// What a restore wrote into a volume's folder, as its marker (`.<volume>.restored`) records
/// it: `<store>\n<run>\n<source>\n<token>\n` (markers from before tokens have two lines).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Restored {
    /// The repository id (`repository <id>`): a store recreated at the same place counts its
    /// runs afresh, and the same store reached by two URLs is one.
    store: String,
    /// The run.
    run: u64,
    /// The source scheduler group whose lease asked (empty: unknown).
    source: String,
    /// The lease's fencing token (0: unknown).
    token: u64,
}

impl Restored {
    /// Reads a marker; `None` when there is none or it is unreadable.
    fn parse(marker: &str) -> Option<Restored> {
        let mut lines = marker.lines();
        let store = lines.next()?.to_owned();
        let run = lines.next()?.trim().parse().ok()?;
        let source = lines.next().unwrap_or_default().to_owned();
        let token = lines.next().and_then(|token| token.trim().parse().ok()).unwrap_or(0);
        Some(Restored { store, run, source, token })
    }

    fn to_marker(&self) -> String {
        format!("{}\n{}\n{}\n{}\n", self.store, self.run, self.source, self.token)
    }

    /// Says whether this restore may replace `last`, or why not. A marker of another store
    /// says nothing (its runs count apart). From one store: with both leases known and from
    /// one source group, the later lease wins (a lower token is a worker whose lease lapsed,
    /// even when its push took a higher run number), and one lease never goes back to an
    /// older run; otherwise an older run is refused.
    fn admitted_after(&self, last: &Option<Restored>) -> Result<(), String> {
        let Some(last) = last.as_ref().filter(|last| last.store == self.store) else {
            return Ok(());
        };
        let leases_known = self.token != 0 && last.token != 0 && !self.source.is_empty();
        if leases_known && self.source == last.source {
            if self.token < last.token {
                return Err(format!(
                    "lease token {} is older than token {} that restored run {} already",
                    self.token, last.token, last.run
                ));
            }
            if self.token > last.token {
                return Ok(());
            }
        }
        if self.run < last.run {
            return Err(format!(
                "run {} is older than run {} restored already from the same store",
                self.run, last.run
            ));
        }
        Ok(())
    }
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
            source: job.source,
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
        let marked = |run, token| Restored {
            store: "repository a1".into(),
            run,
            source: "group g".into(),
            token,
        };
        // Markers from before tokens: the run decides.
        let old = Restored::parse("repository a1\n7\n");
        assert_eq!(old, Some(Restored { token: 0, source: String::new(), ..marked(7, 0) }));
        assert!(marked(6, 40).admitted_after(&old).is_err());
        assert!(marked(7, 40).admitted_after(&old).is_ok());
        assert!(marked(8, 40).admitted_after(&old).is_ok());
        // Another store, or none, says nothing.
        let other = Some(Restored { store: "repository b2".into(), ..marked(9, 90) });
        assert!(marked(1, 1).admitted_after(&other).is_ok());
        assert!(marked(1, 1).admitted_after(&None).is_ok());
        assert_eq!(Restored::parse("garbage"), None);
        // The later lease wins: a lapsed worker's higher run is refused, the current lease's
        // lower run admitted; one lease never goes back a run.
        let last = Some(marked(4, 90));
        let refused = marked(5, 40).admitted_after(&last).unwrap_err();
        assert!(refused.contains("lease token 40 is older than token 90"), "{refused}");
        assert!(marked(3, 120).admitted_after(&last).is_ok());
        assert!(marked(3, 90).admitted_after(&last).is_err());
        assert!(marked(4, 90).admitted_after(&last).is_ok(), "a retry of the same restore");
        // Another source group (the source reinstalled on the same store): the run decides.
        let elsewhere = Restored { source: "group h".into(), ..marked(5, 2) };
        assert!(elsewhere.admitted_after(&last).is_ok());
        assert!(Restored { run: 3, ..elsewhere }.admitted_after(&last).is_err());
        // Round trip.
        assert_eq!(Restored::parse(&marked(4, 90).to_marker()), last);
    }
}
