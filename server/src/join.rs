//! Joining a group by itself, as a StatefulSet pod added by a scale-up does (`--statefulset`).
//!
//! The pods of the first deployment are members from the start: ordinal 0 bootstraps the group
//! with every pod of `--replicas` as a voter and contacts the others, which adopt its group. A
//! pod added later (3 → 5 replicas) is contacted by nobody. After a grace period with no group,
//! it asks the other pods' public API (the admin token, the same port as its own) to add it as
//! a learner, unless one of them already lists it; once it has caught up with the leader's
//! commit index it asks its own node, now a member that knows the leader, to promote it.
//! Every step is idempotent, so a restart half-way simply goes on.

use std::sync::Arc;
use std::time::Duration;

use avocet_consensus::NodeId;
use avocet_consensus::node::Role;
use avocet_proto::api::cluster_client::ClusterClient;
use avocet_proto::api::{AddLearnerRequest, ClusterStatusRequest, ClusterStatusResponse};
use tonic::transport::Endpoint;

use crate::config::StatefulSetSeat;
use crate::machine::SchedulerNode;

/// How long a pod waits to be contacted before it asks to join.
pub const GRACE: Duration = Duration::from_secs(10);
/// How often it tries again.
const RETRY: Duration = Duration::from_secs(2);

/// What a pod asks of the group.
#[derive(Debug, Clone)]
pub struct Join {
    /// This pod's seat.
    pub seat: StatefulSetSeat,
    /// This node's id.
    pub id: NodeId,
    /// This node's Raft address, as peers reach it.
    pub advertise: String,
    /// The public API port every pod serves on.
    pub api_port: u16,
    /// The admin token.
    pub token: String,
}

/// Asks pod `ordinal` for its view of the group, or to add this node as a learner.
async fn call(join: &Join, ordinal: u64, add: bool) -> Result<ClusterStatusResponse, String> {
    let url = format!("http://{}:{}", join.seat.host(ordinal), join.api_port);
    let channel = Endpoint::from_shared(url.clone())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("{url}: {}", crate::error_chain(&e)))?;
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", join.token)
        .parse()
        .map_err(|_| "the admin token is not a header value")?;
    let mut client =
        ClusterClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("authorization", token.clone());
            request.set_timeout(Duration::from_secs(15));
            Ok(request)
        });
    let answer = if add {
        let request = AddLearnerRequest { id: join.id, address: join.advertise.clone() };
        client.add_learner(request).await
    } else {
        client.status(ClusterStatusRequest {}).await
    };
    answer.map(tonic::Response::into_inner).map_err(|status| format!("{url}: {}", status.message()))
}

/// This node's role in its own view of the group, if it is a member.
fn role(node: &SchedulerNode, id: NodeId) -> Option<Role> {
    node.status().members.iter().find(|member| member.id == id).map(|member| member.role)
}

/// Runs until this node is a voter (at once when it already is one).
pub async fn run(node: Arc<SchedulerNode>, join: Join) {
    tokio::time::sleep(GRACE).await;
    let mut added = false;
    loop {
        match role(&node, join.id) {
            Some(Role::Learner) => added = true,
            Some(_) => {
                if added {
                    tracing::info!(id = join.id, "joined the group as a voter");
                }
                return;
            }
            None => {}
        }
        if !added {
            added = ask_to_be_added(&join).await;
        } else if caught_up(&node, &join).await {
            match node.promote(join.id).await {
                Ok(()) => tracing::info!(id = join.id, "promoted to voter"),
                Err(error) => tracing::debug!(%error, "promotion not done yet"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Asks the other pods to add this node as a learner; true once one did, or one lists it.
async fn ask_to_be_added(join: &Join) -> bool {
    let others = (0..join.seat.replicas).filter(|ordinal| *ordinal != join.seat.ordinal);
    for ordinal in others {
        match call(join, ordinal, false).await {
            Ok(status) if status.members.iter().any(|member| member.id == join.id) => return true,
            Ok(status) if status.leader_id == 0 => continue,
            Ok(_) => {}
            Err(problem) => {
                tracing::debug!(%problem, "pod not reachable yet");
                continue;
            }
        }
        match call(join, ordinal, true).await {
            Ok(_) => {
                tracing::info!(id = join.id, address = %join.advertise, "added to the group as a learner");
                return true;
            }
            Err(problem) => tracing::info!(%problem, "asking to join the group"),
        }
    }
    false
}

/// True when this node has applied what the leader had committed when asked.
async fn caught_up(node: &SchedulerNode, join: &Join) -> bool {
    let Some(leader) = node.status().leader_id else { return false };
    let Some(ordinal) = leader.checked_sub(1) else { return false };
    match call(join, ordinal, false).await {
        Ok(status) => node.status().commit_index >= status.commit_index,
        Err(_) => false,
    }
}
