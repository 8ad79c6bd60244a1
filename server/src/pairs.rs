//! The ClusterPair checker: while this node leads, every `--pair-check-interval` it checks each
//! pair's destination — the Kubernetes API with the pair's kubeconfig (scheduler status) and
//! the destination's Avocet at `options.ip:port` with `options.token` (storage status) — and
//! proposes a `PairHealth` command when what it found differs from what the catalog says.
//! Stork checks once and never again; a pair that breaks later turns Error here, with the
//! reason in an event.

use std::sync::Arc;
use std::time::Duration;

use avocet_proto::api::ClusterStatusRequest;
use avocet_proto::api::cluster_client::ClusterClient;
use avocet_scheduler::{Clock, Command, ObjectKey, Response};
use avocet_types::ClusterPair;
use avocet_types::clusterpair::ClusterPairStatusType;
use tonic::transport::{Channel, Endpoint};

use crate::machine::SchedulerNode;

/// Bounds each check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Holds what the checker needs.
pub struct PairChecker {
    /// Holds the node.
    pub node: Arc<SchedulerNode>,
    /// Reads the group's clock (for the command's stamp).
    pub clock: Arc<dyn Clock>,
    /// Spaces the rounds.
    pub interval: Duration,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The destination's Kubernetes API.
    pub scheduler: ClusterPairStatusType,
    /// The destination's Avocet.
    pub storage: ClusterPairStatusType,
    /// Why a check failed.
    pub reason: String,
    /// The destination's cluster id, when its Avocet answered.
    pub remote_storage_id: String,
}

impl PairChecker {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut round = tokio::time::interval(self.interval);
        round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            round.tick().await;
            if self.node.status().leader_id != Some(self.node.id()) {
                continue;
            }
            let pairs: Vec<(ObjectKey, ClusterPair)> = self
                .node
                .read_local(|s| s.0.cluster_pairs().map(|(k, p)| (k.clone(), p.clone())).collect());
            for (key, pair) in pairs {
                let found = check(&pair).await;
                let id = if found.remote_storage_id.is_empty() {
                    pair.status.as_ref().map(|s| s.remote_storage_id.clone()).unwrap_or_default()
                } else {
                    found.remote_storage_id.clone()
                };
                let object_store = self.node.read_local(|s| object_store_of(&s.0, &id));
                let recorded = pair.status.as_ref().map(|s| {
                    (
                        s.scheduler_status,
                        s.storage_status,
                        s.remote_storage_id.clone(),
                        s.object_store.clone(),
                    )
                });
                if recorded
                    == Some((found.scheduler, found.storage, id.clone(), object_store.clone()))
                {
                    continue;
                }
                let command = Command::PairHealth {
                    pair: key.clone(),
                    generation: pair.metadata.generation.unwrap_or(0),
                    scheduler: found.scheduler,
                    storage: found.storage,
                    reason: found.reason.clone(),
                    remote_storage_id: id,
                    object_store,
                    at: self.clock.now(),
                };
                match self.node.write(command).await {
                    Ok(Response::Rejected(rejection)) => {
                        tracing::debug!(%rejection, "pair health refused")
                    }
                    Ok(_) => {
                        tracing::info!(pair = %key, scheduler = found.scheduler.as_str(), storage = found.storage.as_str(),
                        reason = %found.reason, "cluster pair checked")
                    }
                    Err(error) => {
                        tracing::warn!(%error, pair = %key, "cannot record a pair's health")
                    }
                }
            }
        }
    }
}

/// Where a pair whose destination has cluster id `id` sends its volumes: the store of
/// credentials `clusterPair_<id>`, or the internal store.
fn object_store_of(catalog: &avocet_scheduler::Catalog, id: &str) -> String {
    if id.is_empty() {
        return "the internal store (the destination's cluster id is not known yet)".to_owned();
    }
    let name = format!("clusterPair_{id}");
    match catalog.credential(&name) {
        Some(c) => format!(
            "{} bucket {} at {} (credentials {name})",
            c.provider,
            c.bucket_for(id),
            c.endpoint
        ),
        None => format!("the internal store (no credentials {name})"),
    }
}

/// Checks one pair's destination.
pub async fn check(pair: &ClusterPair) -> Health {
    let mut reasons = Vec::new();
    let scheduler =
        match tokio::time::timeout(CHECK_TIMEOUT, avocet_workers::pairing::check_scheduler(pair))
            .await
        {
            Ok(Ok(_)) => ClusterPairStatusType::Ready,
            Ok(Err(e)) => {
                reasons.push(format!("scheduler: {e}"));
                ClusterPairStatusType::Error
            }
            Err(_) => {
                reasons.push(format!(
                    "scheduler: the destination API server did not answer within {CHECK_TIMEOUT:?}"
                ));
                ClusterPairStatusType::Error
            }
        };
    let (storage, remote_storage_id) = match check_storage(pair).await {
        Ok(found) => found,
        Err(reason) => {
            reasons.push(format!("storage: {reason}"));
            (ClusterPairStatusType::Error, String::new())
        }
    };
    Health { scheduler, storage, reason: reasons.join("; "), remote_storage_id }
}

/// A connection to the destination's Avocet at `options.ip:port` (port 9001 by default; TLS
/// with `options.cadata`), its URL, and the bearer header of `options.token`; `None` when the
/// pair names no token.
pub(crate) async fn destination_channel(
    pair: &ClusterPair,
    call_timeout: Duration,
) -> Result<Option<(Channel, String, tonic::metadata::MetadataValue<tonic::metadata::Ascii>)>, String>
{
    let options = &pair.spec.options;
    let Some(token) = options.get("token").filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let ip = options.get("ip").filter(|ip| !ip.is_empty()).ok_or("options.ip is missing")?;
    let port = options.get("port").map_or("9001", String::as_str);
    let port: u16 =
        port.parse().map_err(|_| format!("options.port {port:?} is not a port number"))?;
    let host =
        if ip.contains(':') && !ip.starts_with('[') { format!("[{ip}]") } else { ip.clone() };
    // With `options.cadata` the destination serves TLS and this authority signed its certificate.
    let ca = match options.get("cadata").filter(|c| !c.is_empty()) {
        Some(data) => {
            use base64::Engine as _;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|_| "options.cadata is not base64".to_owned())?,
            )
        }
        None => None,
    };
    let scheme = if ca.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{port}");
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|_| format!("options.ip {ip:?} does not make an address"))?
        .connect_timeout(CHECK_TIMEOUT)
        .timeout(call_timeout);
    if let Some(pem) = ca {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem))
            .domain_name(ip.trim_start_matches('[').trim_end_matches(']'));
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("options.cadata: {}", crate::error_chain(&e)))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        format!("the destination Avocet is not reachable at {url}: {}", crate::error_chain(&e))
    })?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| "options.token holds characters a header cannot carry".to_owned())?;
    Ok(Some((channel, url, bearer)))
}

/// The destination's Avocet at `options.ip:port` with `options.token`: NotProvided without a
/// token, Ready when it answers with a leader.
async fn check_storage(pair: &ClusterPair) -> Result<(ClusterPairStatusType, String), String> {
    let Some((channel, url, bearer)) = destination_channel(pair, CHECK_TIMEOUT).await? else {
        return Ok((ClusterPairStatusType::NotProvided, String::new()));
    };
    let mut client =
        ClusterClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("authorization", bearer.clone());
            Ok(request)
        });
    let status = client.status(ClusterStatusRequest {}).await.map_err(|e| match e.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            format!("the destination Avocet at {url} refused options.token")
        }
        _ => format!("the destination Avocet at {url} answered {}: {}", e.code(), e.message()),
    })?;
    if status.get_ref().leader_id == 0 {
        return Err(format!("the destination Avocet at {url} has no leader"));
    }
    Ok((ClusterPairStatusType::Ready, status.into_inner().cluster_id))
}
