//! `avocet serve`: one node's Raft peer service and public API, from start to graceful stop.

use std::future::Future;
use std::sync::Arc;

use avocet_consensus::{NodeConfig, RaftNode, StartError};
use avocet_proto::api::catalog_server::CatalogServer;
use avocet_proto::api::cluster_server::ClusterServer;
use avocet_proto::api::credentials_server::CredentialsServer;
use avocet_proto::api::volumes_server::VolumesServer;
use avocet_proto::api::workers_server::WorkersServer;
use avocet_scheduler::catalog::Settings;
use avocet_scheduler::{Clock, OffsetClock, ScaledClock, SystemClock};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::api::ClusterApi;
use crate::catalog_api::{CatalogApi, WorkersApi};
use crate::config::ServeConfig;
use crate::group_clock::GroupClock;
use crate::leader::LeaderLoop;
use crate::machine::Scheduler;
use crate::metrics::{Metrics, serve_metrics};

/// Says why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address could not be bound.
    #[error("cannot listen on {address} ({what}): {source}")]
    Bind {
        /// Names the listener.
        what: &'static str,
        /// Gives the address.
        address: std::net::SocketAddr,
        /// Gives the operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The node refused to start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The leader loop stopped.
    #[error("{0}")]
    LeaderLoop(String),
    /// The public API failed.
    #[error("public API: {}", error_chain(.0))]
    Api(#[from] tonic::transport::Error),
    /// The source cluster's kubeconfig is unusable.
    #[error("--kubeconfig {0}")]
    Kubeconfig(String),
}

/// A worker's lease, in the group's clock: 30 s of real time however fast the clock runs.
fn lease_ms(clock_scale: f64) -> u64 {
    let factor = if clock_scale.is_finite() { clock_scale.clamp(1.0, 1e6) } else { 1.0 };
    let lease = std::time::Duration::from_secs_f64(30.0 * factor);
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

/// The `--kubeconfig` value that means the pod's own service account.
pub const IN_CLUSTER: &str = "in-cluster";

/// A client for the source cluster: from a kubeconfig file, or with `--kubeconfig in-cluster`
/// from the pod's service account (its token and CA, and `KUBERNETES_SERVICE_HOST`).
pub async fn source_client(path: &std::path::Path) -> Result<kube::Client, String> {
    let bad = |e: String| format!("{}: {e}", path.display());
    let config = if path == std::path::Path::new(IN_CLUSTER) {
        kube::Config::incluster().map_err(|e| bad(e.to_string()))?
    } else {
        let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| bad(e.to_string()))?
    };
    kube::Client::try_from(config).map_err(|e| bad(e.to_string()))
}

async fn kube_client(path: &std::path::Path) -> Result<kube::Client, ServeError> {
    source_client(path).await.map_err(ServeError::Kubeconfig)
}

/// How far (in log entries) a node may trail the leader's commit index and still be ready.
pub const READY_LAG_ENTRIES: u64 = 64;

/// Says whether a node is ready for traffic (the readiness probe, `GET /readyz`): it knows a
/// leader, is a voter of the group, and has applied the log up to the leader's commit index as
/// last learned from the leader (`leader_commit`), within [`READY_LAG_ENTRIES`].
pub fn readiness(
    status: &avocet_consensus::ClusterStatus,
    leader_commit: Option<u64>,
) -> Result<String, String> {
    let Some(leader) = status.leader_id else {
        return Err("no leader known".to_owned());
    };
    let Some(me) = status.members.iter().find(|member| member.id == status.node_id) else {
        return Err(format!("node {} is not a member of the group yet", status.node_id));
    };
    if me.role == avocet_consensus::Role::Learner {
        return Err(format!("node {} is a learner, not promoted yet", status.node_id));
    }
    let Some(target) = leader_commit else {
        return Err(format!("the commit index of leader {leader} is not known yet"));
    };
    if status.commit_index.saturating_add(READY_LAG_ENTRIES) < target {
        return Err(format!(
            "catching up: applied {} of leader {leader}'s {target}",
            status.commit_index
        ));
    }
    Ok(format!("ready: leader {leader}, applied {} of {target}", status.commit_index))
}

/// Learns the leader's commit index every second (for [`readiness`]); `u64::MAX` until known.
async fn watch_leader_commit(
    node: Arc<crate::machine::SchedulerNode>,
    commit: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        let status = node.leader_status().await;
        if status.leader_id.is_some() && status.leader_id == Some(status.node_id) {
            commit.store(status.commit_index, std::sync::atomic::Ordering::Relaxed);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Writes an error and every source under it, `outer: inner: …` (tonic's transport errors say
/// only "transport error" at the top).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// Checks `authorization: Bearer <token>` on every call, in constant time.
pub fn bearer_check(
    token: &str,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
    bearer_check_any(&[token])
}

/// Checks `authorization: Bearer <token>` against any of `tokens` (roles), in constant time.
pub fn bearer_check_any(
    tokens: &[&str],
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
    let expected: Vec<String> = tokens.iter().map(|token| format!("Bearer {token}")).collect();
    move |request: Request<()>| {
        let presented = request.metadata().get("authorization").map(|value| value.as_bytes());
        let matches = presented.is_some_and(|value| {
            expected.iter().fold(false, |found, expected| {
                let equal = value.len() == expected.len()
                    && value
                        .iter()
                        .zip(expected.as_bytes())
                        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                        == 0;
                found | equal
            })
        });
        match (presented, matches) {
            (_, true) => Ok(request),
            (None, _) => {
                Err(Status::unauthenticated("missing token: pass --token or set AVOCET_TOKEN"))
            }
            (Some(_), false) => Err(Status::unauthenticated("wrong token")),
        }
    }
}

/// Returns the leader-side rewrite that stamps every command of a batch with the leader's
/// clock: time in the log comes from the leader, whichever node received the request.
fn leader_stamp(clock: Arc<dyn Clock>) -> avocet_consensus::types::Prepare {
    avocet_consensus::types::Prepare(Arc::new(move |command| {
        let Ok(mut commands) =
            avocet_consensus::codec::decode::<Vec<avocet_scheduler::Command>>(&command.0)
        else {
            return command; // undecodable: apply reports it on every node alike
        };
        let now = clock.now();
        for command in &mut commands {
            command.stamp(now);
        }
        avocet_consensus::types::Command(avocet_consensus::codec::encode(&commands))
    }))
}

/// Runs a node until `shutdown` completes, then hands leadership over and stops.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    #[cfg(feature = "planted-bugs")]
    if let Ok(name) = std::env::var("AVOCET_PLANTED_BUG") {
        match avocet_scheduler::planted::switch_on(&name) {
            Ok(()) => {
                tracing::warn!("PLANTED BUG {name} switched on: a test build proving the oracle")
            }
            Err(error) => tracing::error!("{error}"),
        }
    }
    let raft_listener = std::net::TcpListener::bind(config.raft_listen).map_err(|source| {
        ServeError::Bind { what: "Raft peers", address: config.raft_listen, source }
    })?;
    let api_listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|source| {
        ServeError::Bind { what: "public API", address: config.listen, source }
    })?;

    let mut node_config =
        NodeConfig::new(config.id, &config.raft_advertise, &config.data_dir, &config.peer_token);
    node_config.peers = config.peers.clone();
    node_config.bootstrap = config.bootstrap;
    node_config.timing = config.timing;
    let own = OffsetClock::new(SystemClock, config.clock_skew);
    let local: Arc<dyn Clock> = match config.clock_epoch {
        Some(epoch) => Arc::new(ScaledClock::new(own, epoch, config.clock_scale)),
        None => Arc::new(own),
    };
    // Everything this node stamps or fires by reads the group's clock (group_clock.rs).
    let (group_clock, peer_clocks) = GroupClock::new(local, config.clock_scale);
    let clock: Arc<dyn Clock> = Arc::new(group_clock);
    node_config.clocks = peer_clocks;
    node_config.prepare = Some(leader_stamp(Arc::clone(&clock)));
    let metrics_listener =
        tokio::net::TcpListener::bind(config.metrics_listen).await.map_err(|source| {
            ServeError::Bind { what: "metrics", address: config.metrics_listen, source }
        })?;
    let node = Arc::new(RaftNode::<Scheduler>::start(node_config, raft_listener).await?);

    let settings = Settings {
        default_timezone: config.timezone.clone(),
        stage_deadline_seconds: config.stage_deadline.as_secs(),
        ..Settings::default()
    };
    let metrics = Arc::new(Metrics::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let leader_task = tokio::spawn(
        LeaderLoop {
            node: Arc::clone(&node),
            clock: Arc::clone(&clock),
            scale: config.clock_scale,
            settings,
            metrics: Arc::clone(&metrics),
            wake: Arc::clone(&wake),
        }
        .run(),
    );
    let pairs_task = tokio::spawn(
        crate::pairs::PairChecker {
            node: Arc::clone(&node),
            clock: Arc::clone(&clock),
            interval: config.pair_check_interval,
        }
        .run(),
    );
    let render = {
        let node = Arc::clone(&node);
        let clock = Arc::clone(&clock);
        let metrics = Arc::clone(&metrics);
        Arc::new(move || {
            let leader = node.status().leader_id == Some(node.id());
            node.read_local(|s| metrics.render(&s.0, clock.now(), leader))
        })
    };
    let leader_commit = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let commit_task =
        tokio::spawn(watch_leader_commit(Arc::clone(&node), Arc::clone(&leader_commit)));
    let ready = {
        let node = Arc::clone(&node);
        Arc::new(move || {
            let commit = leader_commit.load(std::sync::atomic::Ordering::Relaxed);
            readiness(&node.status(), (commit != u64::MAX).then_some(commit))
        }) as Arc<dyn Fn() -> Result<String, String> + Send + Sync>
    };
    let metrics_task = tokio::spawn(serve_metrics(metrics_listener, render, ready));
    let join_task = config.statefulset.clone().map(|seat| {
        let join = crate::join::Join {
            seat,
            id: config.id,
            advertise: config.raft_advertise.clone(),
            api_port: config.listen.port(),
            token: config.admin_token.clone(),
        };
        tokio::spawn(crate::join::run(Arc::clone(&node), join))
    });
    let controller_task = match &config.kubeconfig {
        Some(path) => {
            let client = kube_client(path).await?;
            let controller = crate::controller::Controller {
                node: Arc::clone(&node),
                catalog: CatalogApi::new(Arc::clone(&node), Arc::clone(&clock), Arc::clone(&wake)),
                clock: Arc::clone(&clock),
                client,
            };
            tracing::info!(kubeconfig = %path.display(), "mirroring Stork resources of the source cluster");
            Some(tokio::spawn(controller.run()))
        }
        None => None,
    };

    // Every node runs a worker pool when it can reach the source cluster and has the store's
    // key: its dispatch loops lease through this node's own API (writes are forwarded).
    let keyed = config.store_key.is_some() || config.master_key.is_some();
    let workers = match &config.kubeconfig {
        Some(kubeconfig) if keyed && config.workers > 0 && config.tls.is_none() => {
            let plan = crate::volumes::WorkerPlan {
                server: format!("http://127.0.0.1:{}", config.listen.port()),
                token: config.admin_token.clone(),
                name: format!("node-{}", config.id),
                count: config.workers,
                lease_ms: lease_ms(config.clock_scale),
                kubeconfig: kubeconfig.clone(),
                store: config.store.clone(),
                key: config.store_key.as_ref().map(|k| k.0.clone()),
            };
            let started =
                crate::volumes::start_workers(plan).await.map_err(ServeError::Kubeconfig)?;
            tracing::info!(
                workers = config.workers,
                "running migrations in this node's worker pool"
            );
            Some(started)
        }
        Some(_) if keyed && config.workers > 0 => {
            tracing::warn!(
                "no in-process workers with --tls-cert: run `avocet worker` against this node"
            );
            None
        }
        _ => None,
    };
    let volumes_api = InterceptedService::new(
        VolumesServer::new(crate::volumes::VolumesApi::new(
            config.store.clone(),
            config.store_key.as_ref().map(|k| Arc::new(k.0.clone())),
            config.volume_root.clone(),
        )),
        bearer_check(&config.admin_token),
    );
    let admin = bearer_check(&config.admin_token);
    let catalog = CatalogApi::new(Arc::clone(&node), Arc::clone(&clock), wake);
    let master = match &config.master_key {
        Some(secret) => Some(Arc::new(
            avocet_transfer::seal::Key::derive(&secret.0)
                .map_err(|e| ServeError::Kubeconfig(format!("--master-key-file: {e}")))?,
        )),
        None => None,
    };
    let credentials_api = InterceptedService::new(
        CredentialsServer::new(crate::credentials::CredentialsApi {
            catalog: catalog.clone(),
            master: master.clone(),
        }),
        admin.clone(),
    );
    let worker_tokens: Vec<&str> = std::iter::once(config.admin_token.as_str())
        .chain(config.worker_token.as_deref())
        .collect();
    let cluster_api = InterceptedService::new(
        ClusterServer::new(ClusterApi::new(Arc::clone(&node))),
        admin.clone(),
    );
    let catalog_api = InterceptedService::new(CatalogServer::new(catalog.clone()), admin);
    let workers_api = InterceptedService::new(
        WorkersServer::new(WorkersApi::new(catalog, master.clone())),
        bearer_check_any(&worker_tokens),
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert, &tls.key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(ServeError::Api)?;
    }
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(
        builder
            .add_service(cluster_api)
            .add_service(catalog_api)
            .add_service(workers_api)
            .add_service(volumes_api)
            .add_service(credentials_api)
            .serve_with_incoming_shutdown(
                // TCP_NODELAY, as on the peer service (see `avocet_consensus::RaftNode::start`).
                tonic::transport::server::TcpIncoming::from(api_listener).with_nodelay(Some(true)),
                async {
                    let _ = api_stopped.await;
                },
            ),
    );
    tracing::info!(
        node = config.id,
        api = %config.listen,
        raft = %config.raft_advertise,
        metrics = %config.metrics_listen,
        tls = config.tls.is_some(),
        group = ?node.group(),
        "avocet serve is up"
    );

    // The leader loop runs until shutdown; if it ever ends (a panic), the node must not keep
    // leading without scheduling, so it stops with an error and its supervisor restarts it.
    let mut leader_task = leader_task;
    let leader_failed = tokio::select! {
        () = shutdown => None,
        ended = &mut leader_task => Some(match ended {
            Ok(()) => "the leader loop ended".to_owned(),
            Err(error) => format!("the leader loop failed: {error}"),
        }),
    };
    if let Some(reason) = &leader_failed {
        tracing::error!(%reason, "stopping this node");
    }
    // Stop taking requests first: writes that keep arriving would renew the followers' lease
    // and keep them from electing the successor the hand-over picks.
    tracing::info!(node = config.id, "shutting down: stopping the public API");
    let _ = stop_api.send(());
    let api_result = api_task.await;
    leader_task.abort();
    metrics_task.abort();
    commit_task.abort();
    pairs_task.abort();
    if let Some(task) = join_task {
        task.abort();
    }
    if let Some(task) = controller_task {
        task.abort();
    }
    if let Some((pool, loops)) = workers {
        for task in loops {
            task.abort();
        }
        drop(pool);
    }
    tracing::info!(node = config.id, "handing leadership over if this node leads");
    node.shutdown().await;
    match api_result {
        Ok(result) => result?,
        Err(error) => tracing::warn!(%error, "public API task failed"),
    }
    tracing::info!(node = config.id, "stopped");
    match leader_failed {
        Some(reason) => Err(ServeError::LeaderLoop(reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use avocet_consensus::node::{MemberStatus, Role};

    use super::*;

    fn status(
        leader: Option<u64>,
        applied: u64,
        role: Option<Role>,
    ) -> avocet_consensus::ClusterStatus {
        let members = role
            .map(|role| {
                vec![MemberStatus {
                    id: 2,
                    address: "a:1".into(),
                    role,
                    matched_index: applied,
                    clock_offset_ms: None,
                }]
            })
            .unwrap_or_default();
        avocet_consensus::ClusterStatus {
            node_id: 2,
            leader_id: leader,
            term: 1,
            commit_index: applied,
            members,
        }
    }

    #[test]
    fn ready_means_a_known_leader_a_voter_and_the_leaders_log_applied() {
        let follower = Some(Role::Follower);
        assert_eq!(
            readiness(&status(Some(1), 700, follower), Some(710)),
            Ok("ready: leader 1, applied 700 of 710".to_owned())
        );
        assert_eq!(
            readiness(&status(None, 7, follower), Some(7)),
            Err("no leader known".to_owned())
        );
        assert!(
            readiness(&status(Some(1), 7, None), Some(7)).unwrap_err().contains("not a member")
        );
        assert!(
            readiness(&status(Some(1), 7, Some(Role::Learner)), Some(7))
                .unwrap_err()
                .contains("learner")
        );
        assert!(
            readiness(&status(Some(1), 7, follower), None).unwrap_err().contains("not known yet")
        );
        let behind = readiness(&status(Some(1), 5, follower), Some(5 + READY_LAG_ENTRIES + 1));
        assert!(behind.unwrap_err().contains("catching up: applied 5 of leader 1's 70"));
    }
}
