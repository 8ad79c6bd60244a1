//! `avocet serve`: one node's Raft peer service and public API, from start to graceful stop.

use std::future::Future;
use std::sync::Arc;

use avocet_consensus::kv::KvStore;
use avocet_consensus::{NodeConfig, RaftNode, StartError};
use avocet_proto::api::cluster_server::ClusterServer;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::api::ClusterApi;
use crate::config::ServeConfig;

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
    /// The public API failed.
    #[error("public API: {}", error_chain(.0))]
    Api(#[from] tonic::transport::Error),
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
    let expected = format!("Bearer {token}");
    move |request: Request<()>| {
        let presented = request.metadata().get("authorization").map(|value| value.as_bytes());
        let matches = presented.is_some_and(|value| {
            value.len() == expected.len()
                && value.iter().zip(expected.as_bytes()).fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0
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

/// Runs a node until `shutdown` completes, then hands leadership over and stops.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
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
    let node = Arc::new(RaftNode::<KvStore>::start(node_config, raft_listener).await?);

    let api = InterceptedService::new(
        ClusterServer::new(ClusterApi::new(Arc::clone(&node))),
        bearer_check(&config.admin_token),
    );
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(
        tonic::transport::Server::builder().add_service(api).serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(api_listener),
            async {
                let _ = api_stopped.await;
            },
        ),
    );
    tracing::info!(
        node = config.id,
        api = %config.listen,
        raft = %config.raft_advertise,
        group = ?node.group(),
        "avocet serve is up"
    );

    shutdown.await;
    // Stop taking requests first: writes that keep arriving would renew the followers' lease
    // and keep them from electing the successor the hand-over picks.
    tracing::info!(node = config.id, "shutting down: stopping the public API");
    let _ = stop_api.send(());
    let api_result = api_task.await;
    tracing::info!(node = config.id, "handing leadership over if this node leads");
    node.shutdown().await;
    match api_result {
        Ok(result) => result?,
        Err(error) => tracing::warn!(%error, "public API task failed"),
    }
    tracing::info!(node = config.id, "stopped");
    Ok(())
}
