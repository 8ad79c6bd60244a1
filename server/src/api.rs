//! The public gRPC API, `avocet.api.v1`: thin adapters from messages to the node, and the one
//! place where domain errors become gRPC statuses.

use std::sync::Arc;

use avocet_consensus::{ClusterStatus, RequestError, Role};
use avocet_proto::api::cluster_server::Cluster;
use avocet_proto::api::{
    AddLearnerRequest, BarrierRequest, BarrierResponse, ClusterStatusRequest,
    ClusterStatusResponse, Member, MemberRole, PromoteRequest, RemoveRequest,
};
use tonic::{Request, Response, Status};

use crate::machine::SchedulerNode;

/// Maps a domain error to a gRPC status, for every handler.
pub fn status_of(error: RequestError) -> Status {
    match error {
        RequestError::NoLeader(_) | RequestError::Stopping(_) => {
            Status::unavailable(error.to_string())
        }
        RequestError::NotLeader { .. } => Status::failed_precondition(error.to_string()),
        RequestError::Rejected(_) => Status::failed_precondition(error.to_string()),
        RequestError::Ambiguous(_) => Status::unknown(error.to_string()),
    }
}

/// Converts a status report to its message.
pub fn status_message(status: ClusterStatus) -> ClusterStatusResponse {
    ClusterStatusResponse {
        leader_id: status.leader_id.unwrap_or(0),
        term: status.term,
        commit_index: status.commit_index,
        node_id: status.node_id,
        cluster_id: String::new(),
        members: status
            .members
            .into_iter()
            .map(|member| Member {
                id: member.id,
                address: member.address,
                role: match member.role {
                    Role::Leader => MemberRole::Leader,
                    Role::Follower => MemberRole::Follower,
                    Role::Candidate => MemberRole::Candidate,
                    Role::Learner => MemberRole::Learner,
                }
                .into(),
                matched_index: member.matched_index,
                clock_offset_ms: member.clock_offset_ms,
            })
            .collect(),
    }
}

/// Serves `avocet.api.v1.Cluster` for one node.
#[derive(Debug, Clone)]
pub struct ClusterApi {
    node: Arc<SchedulerNode>,
}

impl ClusterApi {
    /// Returns the service of `node`.
    pub fn new(node: Arc<SchedulerNode>) -> ClusterApi {
        ClusterApi { node }
    }

    fn id(request_id: u64) -> Result<u64, Status> {
        if request_id == 0 {
            Err(Status::invalid_argument("id: 0 is not a node id (use 1 or more)"))
        } else {
            Ok(request_id)
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let mut status = status_message(self.node.leader_status().await);
        status.cluster_id = self.node.group().map(|group| group.0).unwrap_or_default();
        Ok(Response::new(status))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let request = request.into_inner();
        let id = Self::id(request.id)?;
        let address = request.address.trim();
        let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(Status::invalid_argument(format!("address: {address:?} is not host:port")));
        }
        self.node.add_learner(id, address).await.map_err(status_of)?;
        Ok(Response::new(status_message(self.node.leader_status().await)))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let id = Self::id(request.into_inner().id)?;
        self.node.promote(id).await.map_err(status_of)?;
        Ok(Response::new(status_message(self.node.leader_status().await)))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let id = Self::id(request.into_inner().id)?;
        self.node.remove(id).await.map_err(status_of)?;
        Ok(Response::new(status_message(self.node.leader_status().await)))
    }

    async fn barrier(
        &self,
        _: Request<BarrierRequest>,
    ) -> Result<Response<BarrierResponse>, Status> {
        // An empty batch is a log entry with no command: committed, applied, changing nothing.
        self.node.write_batch(Vec::new()).await.map_err(status_of)?;
        let index = self.node.status().commit_index;
        Ok(Response::new(BarrierResponse { index }))
    }
}
