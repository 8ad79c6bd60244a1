//! The server side of the `avocet.raft.v1` peer service, and requests forwarded to the leader.
//!
//! Each handler checks the peer token (an interceptor), then the sender's group: a node that has
//! no group yet adopts the group of the first leader or candidate that reaches it (persisting it
//! before acting on the message); a node of another group is refused. Then it decodes the body,
//! hands it to openraft and encodes the answer.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use avocet_proto::raft::raft_server::{Raft as RaftRpc, RaftServer};
use avocet_proto::raft::{HelloRequest, HelloResponse, RaftMessage};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::codec;
use crate::network::{GroupCell, RPC_TIMEOUT};
use crate::node::ClusterStatus;
use crate::store::{GroupId, Identity};
use crate::types::{Command, LogId, Member, NodeId, Raft};

/// Caps how far behind the leader a learner may be when promoted, in log entries.
pub const PROMOTE_LAG_ENTRIES_MAX: u64 = 64;

/// Names a request a follower forwards to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Forward {
    /// Proposes an application command.
    Write(Command),
    /// Adds a learner.
    AddLearner {
        /// Names the new node.
        id: NodeId,
        /// Gives its Raft peer address.
        address: String,
    },
    /// Promotes a learner to a voter.
    Promote {
        /// Names the learner.
        id: NodeId,
    },
    /// Removes a node.
    Remove {
        /// Names the node.
        id: NodeId,
    },
    /// Asks for the leader's view of the group (matched indexes are known only there).
    Status,
}

/// Says what the leader did with a forwarded request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Forwarded {
    /// A command or membership change was committed.
    Committed {
        /// Gives the log id of the committed entry.
        log_id: LogId,
        /// Holds the application's encoded answer (empty for membership changes).
        response: crate::types::Response,
    },
    /// The leader's view of the group.
    Status(ClusterStatus),
}

/// Says why the leader did not carry out a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// The receiver is not the leader; it names the leader it knows.
    #[error("node is not the leader (the leader is {})", leader.map_or_else(|| "unknown".to_owned(), |id| format!("node {id}")))]
    NotLeader {
        /// Names the leader, when known.
        leader: Option<NodeId>,
    },
    /// The request itself is wrong (unknown node, lagging learner, membership change in progress).
    #[error("{0}")]
    Rejected(String),
    /// The node is shutting down or failed.
    #[error("node is stopping: {0}")]
    Stopping(String),
}

fn client_write_error(error: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> ForwardError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            ForwardError::NotLeader { leader: forward.leader_id }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            ForwardError::Rejected(error.to_string())
        }
        RaftError::Fatal(fatal) => ForwardError::Stopping(fatal.to_string()),
    }
}

/// Carries out `forward` on this node, which must be the leader.
pub(crate) async fn execute(
    raft: &Raft,
    me: NodeId,
    forward: Forward,
    prepare: Option<&crate::types::Prepare>,
    clocks: &crate::clocks::PeerClocks,
) -> Result<Forwarded, ForwardError> {
    let membership_only =
        |log_id| Forwarded::Committed { log_id, response: crate::types::Response::default() };
    match forward {
        Forward::Write(command) => {
            let command = match prepare {
                Some(prepare) => (prepare.0)(command),
                None => command,
            };
            let written = raft.client_write(command).await.map_err(client_write_error)?;
            Ok(Forwarded::Committed { log_id: written.log_id, response: written.data })
        }
        Forward::AddLearner { id, address } => {
            let metrics = raft.metrics().borrow().clone();
            if let Some(existing) = metrics.membership_config.membership().get_node(&id)
                && existing.address != address
            {
                return Err(ForwardError::Rejected(format!(
                    "node {id} is already a member at {}, not {address}",
                    existing.address
                )));
            }
            let written = raft
                .add_learner(id, Member { address }, false)
                .await
                .map_err(client_write_error)?;
            Ok(membership_only(written.log_id))
        }
        Forward::Promote { id } => {
            let metrics = raft.metrics().borrow().clone();
            let membership = metrics.membership_config.membership();
            if membership.get_node(&id).is_none() {
                return Err(ForwardError::Rejected(format!(
                    "node {id} is not a member; add it as a learner first"
                )));
            }
            if membership.voter_ids().any(|voter| voter == id) {
                return Err(ForwardError::Rejected(format!("node {id} is already a voter")));
            }
            let last = metrics.last_log_index.unwrap_or_default();
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|replication| replication.get(&id).copied().flatten())
                .map(|log_id| log_id.index);
            match matched {
                Some(index) if last.saturating_sub(index) <= PROMOTE_LAG_ENTRIES_MAX => {}
                Some(index) => {
                    return Err(ForwardError::Rejected(format!(
                        "node {id} is {} entries behind the leader (at most {PROMOTE_LAG_ENTRIES_MAX} allowed); \
                         wait for it to catch up",
                        last - index
                    )));
                }
                None => {
                    return Err(ForwardError::Rejected(format!(
                        "node {id} has not replicated anything yet; check that it runs and is reachable"
                    )));
                }
            }
            let written = raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(client_write_error)?;
            Ok(membership_only(written.log_id))
        }
        Forward::Status => {
            let status = crate::node::cluster_status(raft, me, clocks);
            if status.leader_id == Some(me) {
                Ok(Forwarded::Status(status))
            } else {
                Err(ForwardError::NotLeader { leader: status.leader_id })
            }
        }
        Forward::Remove { id } => {
            let metrics = raft.metrics().borrow().clone();
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let change = if voters.contains(&id) {
                if voters.len() == 1 {
                    return Err(ForwardError::Rejected(format!(
                        "node {id} is the last voter; a group cannot remove all of its voters"
                    )));
                }
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else if membership.get_node(&id).is_some() {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            } else {
                return Err(ForwardError::Rejected(format!("node {id} is not a member")));
            };
            let written =
                raft.change_membership(change, false).await.map_err(client_write_error)?;
            Ok(membership_only(written.log_id))
        }
    }
}

/// Serves the peer service of one node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    me: NodeId,
    group: GroupCell,
    data_dir: Arc<PathBuf>,
    heard_leader: Arc<tokio::sync::Notify>,
    prepare: Option<crate::types::Prepare>,
    step_up: Arc<StepUp>,
    clocks: crate::clocks::PeerClocks,
}

/// Lets a voter with a longer log take over an election that a candidate with a shorter log
/// cannot win (see [`RaftService::with_step_up`]).
#[derive(Debug, Default)]
struct StepUp {
    /// Waits this long for any leader's message before campaigning; `None` turns it off.
    after: Option<std::time::Duration>,
    /// Needs this many silent ticks (heartbeat intervals without a leader's message, at least
    /// this node's leader lease) before a refusal can start a step-up.
    lease_ticks: u64,
    /// Counts the leader messages (AppendEntries, snapshots) this node accepted.
    heard: std::sync::atomic::AtomicU64,
    /// Counts the heartbeat intervals since the last leader message.
    silent: std::sync::atomic::AtomicU64,
    /// Holds the highest term of a candidate refused for a shorter log.
    candidate_term: std::sync::atomic::AtomicU64,
    /// Says a step-up is already waiting.
    pending: std::sync::atomic::AtomicBool,
}

impl StepUp {
    /// Notes a leader's message.
    fn heard(&self) {
        use std::sync::atomic::Ordering;
        self.heard.fetch_add(1, Ordering::AcqRel);
        self.silent.store(0, Ordering::Release);
    }
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService").field("me", &self.me).finish_non_exhaustive()
    }
}

/// Says how a message's group is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Replication and votes: a node without a group adopts the sender's.
    AdoptGroup,
    /// Everything else: the groups must already match.
    SameGroup,
}

impl RaftService {
    /// Returns the service of node `me`, whose identity lives in `data_dir`.
    pub fn new(raft: Raft, me: NodeId, group: GroupCell, data_dir: PathBuf) -> RaftService {
        RaftService {
            raft,
            me,
            group,
            data_dir: Arc::new(data_dir),
            heard_leader: Arc::new(tokio::sync::Notify::new()),
            prepare: None,
            step_up: Arc::new(StepUp::default()),
            clocks: crate::clocks::PeerClocks::default(),
        }
    }

    /// Returns the service that steps up when it refuses a candidate for a shorter log.
    ///
    /// openraft 0.9 does not adopt the term of a vote request it refuses, so after a leader's
    /// loss a survivor missing the last entries campaigns first (its slot is earliest), is
    /// refused by the survivors that have them, and stays a candidate of that term. The
    /// survivor with the longer log then campaigns at the same term when its own timer runs
    /// out, is refused in turn (the candidate voted for itself), and waits a whole election
    /// timeout more. Instead, a voter that refuses a shorter log, when it has heard no leader
    /// for at least its `lease` (counted in `heartbeat` ticks, so a healthy leader's followers
    /// never do this), waits `after` more for any leader's message and, hearing none,
    /// campaigns at once at a term above the candidate's, which the candidate grants.
    pub fn with_step_up(
        self,
        heartbeat: std::time::Duration,
        lease: std::time::Duration,
        after: std::time::Duration,
    ) -> RaftService {
        let tick = heartbeat.max(std::time::Duration::from_millis(1));
        let lease_ticks =
            u64::try_from(lease.as_millis().div_ceil(tick.as_millis())).unwrap_or(u64::MAX).max(1);
        let step_up = Arc::new(StepUp { after: Some(after), lease_ticks, ..StepUp::default() });
        let ticking = Arc::downgrade(&step_up);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(step_up) = ticking.upgrade() else { return };
                step_up.silent.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
        });
        RaftService { step_up, ..self }
    }

    /// Starts a step-up after refusing `request`, when the refusal was for its shorter log.
    fn maybe_step_up(
        &self,
        request: &openraft::raft::VoteRequest<NodeId>,
        answer: &Result<openraft::raft::VoteResponse<NodeId>, RaftError<NodeId>>,
    ) {
        use std::sync::atomic::Ordering;
        let Some(after) = self.step_up.after else { return };
        let Ok(response) = answer else { return };
        if response.vote_granted || response.last_log_id <= request.last_log_id {
            return;
        }
        if self.step_up.silent.load(Ordering::Acquire) < self.step_up.lease_ticks {
            return; // A leader was heard within the lease: the refusal was the lease's.
        }
        self.step_up.candidate_term.fetch_max(request.vote.leader_id().term, Ordering::AcqRel);
        if self.step_up.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let (raft, step_up) = (self.raft.clone(), Arc::clone(&self.step_up));
        let heard = step_up.heard.load(Ordering::Acquire);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            step_up.pending.store(false, Ordering::Release);
            if step_up.heard.load(Ordering::Acquire) != heard {
                return;
            }
            let (state, term) = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                (metrics.state, metrics.vote.leader_id().term)
            };
            let candidate_term = step_up.candidate_term.load(Ordering::Acquire);
            if state == ServerState::Leader
                || state == ServerState::Learner
                || term > candidate_term
            {
                return; // Leading, not a voter, or the group has moved past that candidate.
            }
            // Each campaign takes the next term: end above the candidate's.
            let campaigns = (candidate_term + 1).saturating_sub(term).clamp(1, 3);
            tracing::info!(
                candidate_term,
                term,
                campaigns,
                "no leader heard since refusing a candidate with a shorter log; campaigning"
            );
            for _ in 0..campaigns {
                if raft.trigger().elect().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Returns the service with a leader-side rewrite of written batches.
    pub fn with_prepare(mut self, prepare: Option<crate::types::Prepare>) -> RaftService {
        self.prepare = prepare;
        self
    }

    /// Returns the service that notes the clock of every request and stamps every answer.
    pub fn with_clocks(mut self, clocks: crate::clocks::PeerClocks) -> RaftService {
        self.clocks = clocks;
        self
    }

    /// Returns a signal raised each time a leader's AppendEntries arrives.
    pub fn heard_leader(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.heard_leader)
    }

    /// Returns the service wrapped with the peer-token check.
    pub fn into_server(
        self,
        token: Arc<str>,
    ) -> InterceptedService<RaftServer<RaftService>, impl tonic::service::Interceptor + Clone> {
        let expected = format!("Bearer {token}");
        let check = move |request: Request<()>| -> Result<Request<()>, Status> {
            let presented = request.metadata().get("authorization").map(|value| value.as_bytes());
            match presented {
                Some(value) if constant_time_eq(value, expected.as_bytes()) => Ok(request),
                Some(_) => Err(Status::unauthenticated("wrong peer token")),
                None => {
                    Err(Status::unauthenticated("missing peer token (authorization: Bearer …)"))
                }
            }
        };
        let server = RaftServer::new(self)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        InterceptedService::new(server, check)
    }

    fn admit<T: DeserializeOwned>(&self, message: &RaftMessage, admit: Admit) -> Result<T, Status> {
        if message.format_version != u32::from(codec::FORMAT_VERSION) {
            return Err(Status::failed_precondition(format!(
                "message format version {} is not {} (mixed Avocet versions?)",
                message.format_version,
                codec::FORMAT_VERSION
            )));
        }
        let theirs = GroupId(message.group_id.clone());
        if self.group.get().is_some_and(|ours| ours == theirs) {
            self.clocks.heard(message.from, message.clock_micros);
        }
        match (self.group.get(), admit) {
            (Some(ours), _) if ours == theirs => {}
            (Some(ours), _) => {
                return Err(Status::failed_precondition(format!(
                    "node {} belongs to group {ours}, not to group {theirs} of node {}",
                    self.me, message.from
                )));
            }
            (None, Admit::AdoptGroup) if !theirs.0.is_empty() => {
                // Persist the adoption before acting on the message.
                let adopted = self
                    .group
                    .adopt(theirs.clone(), |group| {
                        Identity {
                            node_id: self.me,
                            group_id: Some(group.clone()),
                            bootstrapped: false,
                        }
                        .save(&self.data_dir)
                    })
                    .map_err(|error| Status::internal(error.to_string()))?;
                if adopted != theirs {
                    return Err(Status::failed_precondition(format!(
                        "node {} belongs to group {adopted}, not to group {theirs} of node {}",
                        self.me, message.from
                    )));
                }
                tracing::info!(group = %theirs, from = message.from, "joined the group of a contacting node");
            }
            (None, _) => {
                return Err(Status::failed_precondition(format!(
                    "node {} has not joined a group yet",
                    self.me
                )));
            }
        }
        codec::decode(&message.body).map_err(|error| Status::invalid_argument(error.to_string()))
    }

    fn reply<T: Serialize>(&self, value: &T) -> Response<RaftMessage> {
        Response::new(RaftMessage {
            format_version: u32::from(codec::FORMAT_VERSION),
            group_id: self.group.get().map(|group| group.0).unwrap_or_default(),
            from: self.me,
            body: codec::encode(value),
            clock_micros: self.clocks.stamp(),
        })
    }
}

/// Caps one peer message (a snapshot chunk or a batch of entries), in bytes.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.admit(request.get_ref(), Admit::AdoptGroup)?;
        let answer = self.raft.append_entries(rpc).await;
        // Only a leader whose vote this node accepted counts as heard (see `quiet_start`).
        if matches!(&answer, Ok(response) if !matches!(response, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.heard_leader.notify_one();
            self.step_up.heard();
        }
        Ok(self.reply(&answer))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::VoteRequest<NodeId> =
            self.admit(request.get_ref(), Admit::AdoptGroup)?;
        let answer = self.raft.vote(rpc.clone()).await;
        self.maybe_step_up(&rpc, &answer);
        Ok(self.reply(&answer))
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.admit(request.get_ref(), Admit::AdoptGroup)?;
        let answer = self.raft.install_snapshot(rpc).await;
        if answer.is_ok() {
            self.step_up.heard();
        }
        Ok(self.reply(&answer))
    }

    async fn client_write(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let forward: Forward = self.admit(request.get_ref(), Admit::SameGroup)?;
        let result = tokio::time::timeout(
            RPC_TIMEOUT,
            execute(&self.raft, self.me, forward, self.prepare.as_ref(), &self.clocks),
        )
        .await
        .unwrap_or_else(|_| {
            Err(ForwardError::Stopping("the leader did not commit in time".to_owned()))
        });
        Ok(self.reply(&result))
    }

    async fn timeout_now(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let () = self.admit(request.get_ref(), Admit::SameGroup)?;
        let from = request.get_ref().from;
        let metrics = self.raft.metrics().borrow().clone();
        let result = if metrics.current_leader != Some(from) {
            Err(format!("node {from} is not the leader this node follows"))
        } else if metrics.state == ServerState::Learner {
            Err(format!("node {} is a learner and cannot lead", self.me))
        } else {
            tracing::info!(from, "leader hands over: campaigning now");
            self.raft.trigger().elect().await.map_err(|error| error.to_string())
        };
        Ok(self.reply(&result))
    }

    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        tracing::debug!(from = request.get_ref().from, "hello");
        Ok(Response::new(HelloResponse {
            group_id: self.group.get().map(|group| group.0).unwrap_or_default(),
            node_id: self.me,
        }))
    }
}
