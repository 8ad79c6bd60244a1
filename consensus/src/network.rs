//! The client side of the `avocet.raft.v1` peer service: how one node reaches another.
//!
//! Every call carries the peer token (`authorization: Bearer …`), the group id and the sender's
//! id, and has a deadline. openraft retries replication and votes itself; the calls Avocet makes
//! on its own (forwarded writes, hellos, hand-over) retry a bounded number of times.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use avocet_proto::raft::raft_client::RaftClient;
use avocet_proto::raft::{HelloRequest, HelloResponse, RaftMessage};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::codec;
use crate::store::GroupId;
use crate::types::{Member, NodeId, TypeConfig};

/// Bounds the time to open a TCP connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Bounds a call whose deadline openraft does not set (hellos, forwarded writes, hand-over).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Holds the group id a node belongs to, shared by its client and server sides: empty until the
/// node is bootstrapped or first contacted by a group.
#[derive(Debug, Clone, Default)]
pub struct GroupCell(Arc<RwLock<Option<GroupId>>>);

impl GroupCell {
    /// Returns a cell holding `group`.
    pub fn new(group: Option<GroupId>) -> GroupCell {
        GroupCell(Arc::new(RwLock::new(group)))
    }

    /// Returns the group id, if any.
    pub fn get(&self) -> Option<GroupId> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the group id once `persist` has recorded it, unless a group is already set; returns
    /// the group the node belongs to afterwards. Holding the lock throughout makes concurrent
    /// first contacts persist once.
    pub fn adopt<E>(
        &self,
        group: GroupId,
        persist: impl FnOnce(&GroupId) -> Result<(), E>,
    ) -> Result<GroupId, E> {
        let mut cell = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = cell.as_ref() {
            return Ok(existing.clone());
        }
        persist(&group)?;
        *cell = Some(group.clone());
        Ok(group)
    }
}

/// Blocks chosen links, for fault-injection tests: a blocked link fails calls as if the peer
/// were unreachable. A node in production leaves it empty.
#[derive(Debug, Clone, Default)]
pub struct LinkControl(Arc<RwLock<HashSet<(NodeId, NodeId)>>>);

impl LinkControl {
    /// Blocks calls from `from` to `to` (one direction).
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert((from, to));
    }

    /// Blocks both directions between `node` and every node of `others`.
    pub fn isolate(&self, node: NodeId, others: impl IntoIterator<Item = NodeId>) {
        for other in others {
            self.block(node, other);
            self.block(other, node);
        }
    }

    /// Unblocks every link.
    pub fn heal(&self) {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Returns whether calls from `from` to `to` may pass.
    pub fn allows(&self, from: NodeId, to: NodeId) -> bool {
        !self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&(from, to))
    }
}

/// Says why a call to a peer failed before the peer could answer it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached (refused, reset, blocked link, bad address).
    #[error("node {target} at {address} is unreachable: {reason}")]
    Unreachable {
        /// Names the peer.
        target: NodeId,
        /// Gives its address.
        address: String,
        /// Explains why.
        reason: String,
    },
    /// The peer answered with an error status (wrong token, another group), or the call ran
    /// past its deadline.
    #[error("node {target} at {address} refused the call: {code:?}: {message}")]
    Refused {
        /// Names the peer.
        target: NodeId,
        /// Gives its address.
        address: String,
        /// Gives the gRPC status code.
        code: tonic::Code,
        /// Gives the status message.
        message: String,
    },
    /// The peer's answer could not be decoded.
    #[error("node {target} sent an unreadable answer: {reason}")]
    Garbled {
        /// Names the peer.
        target: NodeId,
        /// Explains why.
        reason: String,
    },
}

/// Holds what every call needs: who sends, for which group, with which token, over which links.
#[derive(Debug, Clone)]
pub struct PeerContext {
    /// Names the sending node.
    pub me: NodeId,
    /// Holds the sender's group id.
    pub group: GroupCell,
    /// Holds the peer token.
    pub token: Arc<str>,
    /// Holds the fault-injection switches.
    pub links: LinkControl,
    /// Holds the peers' clock readings, stamped on and read from every message.
    pub clocks: crate::clocks::PeerClocks,
}

/// Calls one peer; cheap to clone (the channel is shared and connects lazily).
#[derive(Debug, Clone)]
pub struct PeerClient {
    context: PeerContext,
    target: NodeId,
    address: String,
    client: Option<RaftClient<Channel>>,
}

impl PeerClient {
    /// Returns a client of node `target` at `address` (`host:port`).
    pub fn new(context: PeerContext, target: NodeId, address: &str) -> PeerClient {
        let client = Endpoint::from_shared(format!("http://{address}"))
            .ok()
            .map(|endpoint| {
                endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true).connect_lazy()
            })
            .map(RaftClient::new);
        PeerClient { context, target, address: address.to_owned(), client }
    }

    /// Returns the peer's id.
    pub fn target(&self) -> NodeId {
        self.target
    }

    fn unreachable(&self, reason: impl Into<String>) -> PeerError {
        PeerError::Unreachable {
            target: self.target,
            address: self.address.clone(),
            reason: reason.into(),
        }
    }

    fn request<T>(&self, message: T, timeout: Duration) -> Result<tonic::Request<T>, PeerError> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        let value = format!("Bearer {}", self.context.token)
            .parse()
            .map_err(|_| self.unreachable("the peer token is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    fn status_error(&self, status: &tonic::Status) -> PeerError {
        match status.code() {
            // Only a refused or broken connection means the peer never saw the call; anything
            // else (deadline, reset mid-call) leaves the outcome open.
            tonic::Code::Unavailable => self.unreachable(status.message().to_owned()),
            code => PeerError::Refused {
                target: self.target,
                address: self.address.clone(),
                code,
                message: status.message().to_owned(),
            },
        }
    }

    /// Sends one encoded message with `call` and returns the decoded answer.
    async fn exchange<Req, Resp, F, Fut>(
        &self,
        request: &Req,
        timeout: Duration,
        call: F,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftMessage>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        if !self.context.links.allows(self.context.me, self.target) {
            return Err(self.unreachable("the link is blocked (fault injection)"));
        }
        let client =
            self.client.clone().ok_or_else(|| self.unreachable("the address is not host:port"))?;
        let message = RaftMessage {
            format_version: u32::from(codec::FORMAT_VERSION),
            group_id: self.context.group.get().map(|group| group.0).unwrap_or_default(),
            from: self.context.me,
            body: codec::encode(request),
            clock_micros: self.context.clocks.stamp(),
        };
        let answer = call(client, self.request(message, timeout)?)
            .await
            .map_err(|status| self.status_error(&status))?
            .into_inner();
        self.context.clocks.heard(self.target, answer.clock_micros);
        codec::decode(&answer.body)
            .map_err(|error| PeerError::Garbled { target: self.target, reason: error.to_string() })
    }

    /// Asks the peer who it is.
    pub async fn hello(&self, timeout: Duration) -> Result<HelloResponse, PeerError> {
        if !self.context.links.allows(self.context.me, self.target) {
            return Err(self.unreachable("the link is blocked (fault injection)"));
        }
        let mut client =
            self.client.clone().ok_or_else(|| self.unreachable("the address is not host:port"))?;
        let request = HelloRequest {
            group_id: self.context.group.get().map(|group| group.0).unwrap_or_default(),
            from: self.context.me,
        };
        let answer = client
            .hello(self.request(request, timeout)?)
            .await
            .map_err(|status| self.status_error(&status))?;
        Ok(answer.into_inner())
    }

    /// Proposes a forwarded request on the peer (which should be the leader).
    pub async fn forward(
        &self,
        request: &crate::service::Forward,
    ) -> Result<Result<crate::service::Forwarded, crate::service::ForwardError>, PeerError> {
        self.exchange(request, RPC_TIMEOUT, |mut client, request| async move {
            client.client_write(request).await
        })
        .await
    }

    /// Tells the peer to campaign now, because this leader is leaving.
    pub async fn timeout_now(&self) -> Result<Result<(), String>, PeerError> {
        self.exchange(&(), RPC_TIMEOUT, |mut client, request| async move {
            client.timeout_now(request).await
        })
        .await
    }

    fn rpc_error<E: std::error::Error>(&self, error: PeerError) -> RPCError<NodeId, Member, E> {
        match error {
            PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&error)),
            PeerError::Refused { .. } | PeerError::Garbled { .. } => {
                RPCError::Network(NetworkError::new(&error))
            }
        }
    }

    fn remote<T, E: std::error::Error>(
        &self,
        answer: Result<Result<T, RaftError<NodeId, E>>, PeerError>,
    ) -> Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>> {
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Err(error) => Err(self.rpc_error(error)),
        }
    }
}

/// Spaces openraft's attempts to reach an unreachable peer (its default is 500 ms), so a
/// restarted node hears from the leader well within its quiet start.
pub const REPLICATION_BACKOFF: Duration = Duration::from_millis(200);

impl RaftNetwork<TypeConfig> for PeerClient {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(REPLICATION_BACKOFF))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        let entries = u64::try_from(rpc.entries.len()).unwrap_or(u64::MAX);
        let answer = self
            .exchange(&rpc, option.hard_ttl(), |mut client, request| async move {
                client.append_entries(request).await
            })
            .await;
        match answer {
            // The receiver refused the message's size: ask openraft to send fewer entries.
            Err(PeerError::Refused {
                code: tonic::Code::OutOfRange | tonic::Code::ResourceExhausted,
                ..
            }) => Err(RPCError::PayloadTooLarge(
                openraft::error::PayloadTooLarge::new_entries_hint((entries / 2).max(1)),
            )),
            answer => self.remote(answer),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let answer = self
            .exchange(&rpc, option.hard_ttl(), |mut client, request| async move {
                client.install_snapshot(request).await
            })
            .await;
        self.remote(answer)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        let answer = self
            .exchange(&rpc, option.hard_ttl(), |mut client, request| async move {
                client.vote(request).await
            })
            .await;
        self.remote(answer)
    }
}

/// Makes peer clients for openraft's replication tasks.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    context: PeerContext,
}

impl NetworkFactory {
    /// Returns a factory whose clients send as `context.me`.
    pub fn new(context: PeerContext) -> NetworkFactory {
        NetworkFactory { context }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient::new(self.context.clone(), target, &node.address)
    }
}
