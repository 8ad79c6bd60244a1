//! One member of a replicated group: start-up checks, writes, reads, membership, status, shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::{EntryPayload, RaftLogReader, ServerState, SnapshotPolicy};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{Applied, StateMachine};
use crate::codec;
use crate::network::{
    GroupCell, LinkControl, NetworkFactory, PeerClient, PeerContext, PeerError, RPC_TIMEOUT,
};
use crate::service::{Forward, ForwardError, Forwarded, RaftService, execute};
use crate::store::{
    GroupId, Identity, LogStore, SharedState, StateMachineStore, StoreError, open_db,
};
use crate::types::{Command, Member, NodeId, Raft, StoredMembership};

/// Bounds the start-up hello to each peer.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(1);

/// Caps how many times a write or membership change is re-sent while the leader changes.
pub const SUBMIT_ATTEMPTS_MAX: u32 = 20;

/// Spaces the attempts of a re-sent request.
pub const SUBMIT_BACKOFF: Duration = Duration::from_millis(100);

/// Caps the encoded size of one log entry's commands, well under the peer message cap
/// ([`crate::service::MESSAGE_BYTES_MAX`]), so any single entry can always be replicated.
pub const ENTRY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Caps the commands of one batch written as one log entry.
pub const BATCH_COMMANDS_MAX: usize = 10_000;

/// Bounds how long a status request waits for the leader's view.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Bounds how long a leaving leader waits for a caught-up voter and for its successor.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);

/// Sets Raft's clocks: heartbeats and the randomized election timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Spaces the leader's heartbeats.
    pub heartbeat: Duration,
    /// Gives the shortest election timeout.
    pub election_min: Duration,
    /// Gives the longest election timeout (also the leader lease).
    pub election_max: Duration,
}

/// Says how many election slots [`Timing::election_slot`] cuts the election range into.
pub const ELECTION_SLOTS: u32 = 5;

impl Timing {
    /// Returns this node's own election timeout range: slot `id mod 5` of the group's range.
    ///
    /// openraft 0.9 draws a node's election timeout once per process, and a follower that heard
    /// a leader campaigns after the leader lease (its longest timeout) plus that draw. Two
    /// survivors whose draws land within a vote's round trip of each other split the vote, and,
    /// as the draws never change, split it again round after round: that was the tail of the
    /// failover time. Here the range is cut into [`ELECTION_SLOTS`] slots of width `s`; a node
    /// draws from the first half of its slot, so its campaign (lease + draw) starts at least
    /// `1.5 s` apart from any other slot's. Nodes whose ids differ mod 5 never campaign together;
    /// two that share a slot fall back to a random draw within it. While
    /// `election_min > 4 s` (true for the default 200-400 ms), the first campaign after a
    /// leader's loss also comes after every survivor's lease has run out, so it can win at once.
    /// A range too narrow to cut (under 2 ms a slot) is used whole.
    pub fn election_slot(&self, id: NodeId) -> (Duration, Duration) {
        let width = self.election_max.saturating_sub(self.election_min) / ELECTION_SLOTS;
        if width < Duration::from_millis(2) {
            return (self.election_min, self.election_max);
        }
        let slot = u32::try_from(id % u64::from(ELECTION_SLOTS)).unwrap_or(0);
        let start = self.election_min + width * slot;
        (start, start + width / 2)
    }
}

impl Default for Timing {
    /// Returns 50 ms heartbeats and 200-400 ms election timeouts. openraft 0.9 makes a follower
    /// that heard a leader wait for the leader lease (its longest election timeout) plus its own
    /// timeout before it campaigns; with the slots of [`Timing::election_slot`] the first
    /// survivor campaigns 0.42-0.76 s after the last heartbeat.
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(50),
            election_min: Duration::from_millis(200),
            election_max: Duration::from_millis(400),
        }
    }
}

/// Says how to run one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Names this node.
    pub id: NodeId,
    /// Gives the address peers reach this node's Raft service at, `host:port`.
    pub advertise: String,
    /// Lists the group's nodes and their Raft addresses (this node included); empty to join an
    /// existing group later as a learner.
    pub peers: BTreeMap<NodeId, String>,
    /// Names the data directory.
    pub data_dir: PathBuf,
    /// Creates a new group from `peers` if the data directory holds none yet.
    pub bootstrap: bool,
    /// Holds the token every peer call carries.
    pub peer_token: String,
    /// Sets Raft's clocks.
    pub timing: Timing,
    /// Builds a snapshot after this many entries since the last one.
    pub snapshot_entries: u64,
    /// Keeps this many entries before the latest snapshot in the log (for lagging followers).
    pub entries_kept: u64,
    /// Blocks links, for fault-injection tests.
    pub links: LinkControl,
    /// Rewrites each batch on the leader before it is appended (see [`crate::types::Prepare`]).
    pub prepare: Option<crate::types::Prepare>,
    /// Reads this node's clock into every peer message and estimates the group's clock from
    /// the peers' (see [`crate::clocks`]); the default reads none.
    pub clocks: crate::clocks::PeerClocks,
}

impl NodeConfig {
    /// Returns a configuration with default timing and snapshot policy.
    pub fn new(id: NodeId, advertise: &str, data_dir: &Path, peer_token: &str) -> NodeConfig {
        NodeConfig {
            id,
            advertise: advertise.to_owned(),
            peers: BTreeMap::new(),
            data_dir: data_dir.to_path_buf(),
            bootstrap: false,
            peer_token: peer_token.to_owned(),
            timing: Timing::default(),
            snapshot_entries: 5_000,
            entries_kept: 1_000,
            links: LinkControl::default(),
            prepare: None,
            clocks: crate::clocks::PeerClocks::default(),
        }
    }
}

/// Says why a node refused to start. A refusal changes neither the node's identity nor its Raft
/// state (sled may still rewrite its own files when it opens).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration contradicts itself.
    #[error("{0}")]
    Config(String),
    /// The data directory belongs to another node.
    #[error(
        "data directory {dir} belongs to node {stored}, not node {given}; give --id {stored} or another directory"
    )]
    WrongNode {
        /// Names the directory.
        dir: PathBuf,
        /// Gives the node id stored there.
        stored: NodeId,
        /// Gives the node id asked for.
        given: NodeId,
    },
    /// The peer list contradicts the membership stored in the data directory.
    #[error("--peers contradicts the membership stored in {dir}: {detail}")]
    Membership {
        /// Names the directory.
        dir: PathBuf,
        /// Says what differs.
        detail: String,
    },
    /// A peer belongs to another group, or answers as another node.
    #[error("{0}")]
    Peer(String),
    /// The data directory could not be read or written.
    #[error("data directory: {0}")]
    Store(#[from] StoreError),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// Says why a write, read or membership change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No leader could be reached in time (no quorum, or elections still running).
    #[error("no leader is available: {0}")]
    NoLeader(String),
    /// This node is not the leader (reads are served by the leader only).
    #[error("node {me} is not the leader (the leader is {})", leader.map_or_else(|| "unknown".to_owned(), |id| format!("node {id}")))]
    NotLeader {
        /// Names this node.
        me: NodeId,
        /// Names the leader, when known.
        leader: Option<NodeId>,
    },
    /// The request was refused (bad membership change, undecodable command).
    #[error("{0}")]
    Rejected(String),
    /// The outcome is unknown: the request may or may not have been committed.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// The node is stopping.
    #[error("node is stopping: {0}")]
    Stopping(String),
}

/// Names a member's role as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Leads the group.
    Leader,
    /// Votes and follows.
    Follower,
    /// Campaigns for leadership.
    Candidate,
    /// Receives the log without voting.
    Learner,
}

/// Describes one member in a status report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Names the member.
    pub id: NodeId,
    /// Gives its Raft address.
    pub address: String,
    /// Gives its role.
    pub role: Role,
    /// Gives the highest log index known to be on the member (0 when unknown).
    pub matched_index: u64,
    /// Gives the member's clock minus the reporting node's, in milliseconds, as last heard
    /// within the freshness window (the leader hears every member); `None` when unknown.
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
}

/// Describes the group as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    /// Names the node that reports.
    pub node_id: NodeId,
    /// Names the leader, when known.
    pub leader_id: Option<NodeId>,
    /// Gives the current term.
    pub term: u64,
    /// Gives the highest log index this node has applied (so committed).
    pub commit_index: u64,
    /// Lists voters and learners.
    pub members: Vec<MemberStatus>,
}

/// Runs one member of a replicated group of `S`.
pub struct RaftNode<S: StateMachine> {
    id: NodeId,
    raft: Raft,
    state: Arc<RwLock<SharedState<S>>>,
    context: PeerContext,
    timing: Timing,
    server: std::sync::Mutex<Option<PeerServer>>,
    quiet_start: JoinHandle<()>,
    read_barrier_term: AtomicU64,
    prepare: Option<crate::types::Prepare>,
}

/// Holds the running peer service: its stop switch and its task.
struct PeerServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl<S: StateMachine> std::fmt::Debug for RaftNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Reads the membership a data directory last knew: the later of the snapshot's and the log's.
async fn stored_membership(
    log: &mut LogStore,
    snapshot_membership: &StoredMembership,
) -> Result<StoredMembership, StoreError> {
    let mut latest = snapshot_membership.clone();
    let entries = log.try_get_log_entries(..).await.map_err(|error| StoreError::Io {
        path: PathBuf::from("log"),
        source: std::io::Error::other(error.to_string()),
    })?;
    for entry in entries {
        if let EntryPayload::Membership(membership) = entry.payload
            && latest.log_id().as_ref() < Some(&entry.log_id)
        {
            latest = StoredMembership::new(Some(entry.log_id), membership);
        }
    }
    Ok(latest)
}

fn check_peers_against_membership(
    config: &NodeConfig,
    stored: &StoredMembership,
) -> Result<(), String> {
    let membership = stored.membership();
    let nodes: BTreeMap<NodeId, &Member> =
        membership.nodes().map(|(id, node)| (*id, node)).collect();
    if nodes.is_empty() {
        return Ok(());
    }
    let listed = |ids: &mut dyn Iterator<Item = NodeId>| {
        ids.map(|id| id.to_string()).collect::<Vec<_>>().join(", ")
    };
    if !nodes.contains_key(&config.id) {
        return Err(format!(
            "node {} is not a member of the stored group (members: {})",
            config.id,
            listed(&mut nodes.keys().copied())
        ));
    }
    for (id, address) in &config.peers {
        if let Some(member) = nodes.get(id)
            && &member.address != address
        {
            return Err(format!(
                "node {id} is at {} in the stored membership, not {address}",
                member.address
            ));
        }
    }
    if !config.peers.is_empty() {
        let missing: Vec<NodeId> =
            membership.voter_ids().filter(|id| !config.peers.contains_key(id)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "the stored voters {} are missing from --peers",
                listed(&mut missing.into_iter())
            ));
        }
    }
    Ok(())
}

impl<S: StateMachine> RaftNode<S> {
    /// Starts a node on an already bound `listener` (its address is `config.advertise`).
    ///
    /// Refuses, without changing the data directory, a directory of another node, a peer list
    /// that contradicts the stored membership, peers of another group, and bootstrapping a
    /// directory that already belongs to a group.
    pub async fn start(
        config: NodeConfig,
        listener: TcpListener,
    ) -> Result<RaftNode<S>, StartError> {
        if !config.peers.is_empty() {
            match config.peers.get(&config.id) {
                None => {
                    return Err(StartError::Config(format!(
                        "node id {} is not in --peers; list every node of the group, this one included",
                        config.id
                    )));
                }
                Some(address) if address != &config.advertise => {
                    return Err(StartError::Config(format!(
                        "--peers puts node {} at {address}, but its Raft address \
                         (--raft-advertise) is {}",
                        config.id, config.advertise
                    )));
                }
                Some(_) => {}
            }
        }
        if config.peer_token.is_empty() {
            return Err(StartError::Config(
                "the peer token is empty; every peer call must carry one".to_owned(),
            ));
        }
        let identity = Identity::load(&config.data_dir)?;
        if let Some(identity) = &identity
            && identity.node_id != config.id
        {
            return Err(StartError::WrongNode {
                dir: config.data_dir.clone(),
                stored: identity.node_id,
                given: config.id,
            });
        }
        let group =
            GroupCell::new(identity.as_ref().and_then(|identity| identity.group_id.clone()));

        let dir = config.data_dir.clone();
        let db = tokio::task::spawn_blocking(move || open_db(&dir))
            .await
            .map_err(|error| StartError::Raft(format!("opening the database: {error}")))??;
        let mut log = LogStore::open(&db).map_err(StoreError::from)?;
        let state_store = StateMachineStore::<S>::open(&db)?;
        let snapshot_membership = read_membership(&state_store);
        let stored = stored_membership(&mut log, &snapshot_membership).await?;
        check_peers_against_membership(&config, &stored)
            .map_err(|detail| StartError::Membership { dir: config.data_dir.clone(), detail })?;
        let initialized = stored.membership().nodes().next().is_some();
        // A node that created its group but died before the membership entry was durable may
        // finish bootstrapping under the same group id; any other group is someone else's.
        let created_here = identity.as_ref().is_some_and(|identity| identity.bootstrapped);
        if config.bootstrap && !initialized && group.get().is_some() && !created_here {
            return Err(StartError::Config(format!(
                "data directory {} already joined group {}; start without --bootstrap to rejoin it",
                config.data_dir.display(),
                group.get().map(|group| group.0).unwrap_or_default()
            )));
        }

        let context = PeerContext {
            me: config.id,
            group: group.clone(),
            token: Arc::from(config.peer_token.as_str()),
            links: config.links.clone(),
            clocks: config.clocks.clone(),
        };
        greet_peers(&config, &context, config.bootstrap && !initialized).await?;

        listener
            .set_nonblocking(true)
            .map_err(|error| StartError::Config(format!("listener: {error}")))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|error| StartError::Config(format!("listener: {error}")))?;
        if identity.is_none() {
            Identity { node_id: config.id, group_id: None, bootstrapped: false }
                .save(&config.data_dir)?;
        }
        let own_election = config.timing.election_slot(config.id);
        let raft_config = openraft::Config {
            cluster_name: "avocet".to_owned(),
            heartbeat_interval: millis(config.timing.heartbeat),
            election_timeout_min: millis(own_election.0),
            election_timeout_max: millis(own_election.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_entries),
            max_in_snapshot_log_to_keep: config.entries_kept,
            // A restarting member of a multi-voter group starts quiet (see `quiet_start`).
            enable_elect: stored.membership().voter_ids().count() <= 1,
            ..Default::default()
        }
        .validate()
        .map_err(|error| StartError::Raft(error.to_string()))?;
        let shared = state_store.shared();
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            NetworkFactory::new(context.clone()),
            log,
            state_store,
        )
        .await
        .map_err(|error| StartError::Raft(error.to_string()))?;

        // Bootstrap before serving peers, so no other group's message can be adopted first.
        if config.bootstrap
            && !initialized
            && let Err(error) = bootstrap(&raft, &config, &group).await
        {
            let _ = raft.shutdown().await;
            return Err(error);
        }
        let service =
            RaftService::new(raft.clone(), config.id, group.clone(), config.data_dir.clone())
                .with_prepare(config.prepare.clone())
                .with_clocks(config.clocks.clone())
                .with_step_up(
                    config.timing.heartbeat,
                    own_election.1,
                    config.timing.heartbeat * 2 + (own_election.0 - config.timing.election_min),
                );
        let heard_leader = service.heard_leader();
        let service = service.into_server(context.token.clone());
        let (server_stop, stopped) = oneshot::channel::<()>();
        // TCP_NODELAY: a TcpIncoming built from a listener leaves Nagle on, and Nagle with the
        // peer's delayed ACK held some replies back 40 ms (the fire-lag tail).
        let server = tokio::spawn(
            tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stopped.await;
                },
            ),
        );

        // The group's clock counts the voters of the current membership.
        let mut watch = raft.metrics();
        let clocks = config.clocks.clone();
        let me = config.id;
        tokio::spawn(async move {
            loop {
                let voters =
                    watch.borrow_and_update().membership_config.membership().voter_ids().collect();
                clocks.set_members(me, voters);
                if watch.changed().await.is_err() {
                    return;
                }
            }
        });
        let quiet_start = tokio::spawn(quiet_start(
            raft.clone(),
            config.timing,
            stored.membership().voter_ids().count(),
            heard_leader,
        ));
        Ok(RaftNode {
            id: config.id,
            raft,
            state: shared,
            context,
            timing: config.timing,
            server: std::sync::Mutex::new(Some(PeerServer { stop: server_stop, task: server })),
            quiet_start,
            read_barrier_term: AtomicU64::new(0),
            prepare: config.prepare.clone(),
        })
    }

    /// Returns this node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Returns the underlying openraft instance, for metrics and tests.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Returns the group id, once the node belongs to a group.
    pub fn group(&self) -> Option<GroupId> {
        self.context.group.get()
    }

    /// Returns a client of node `id` at `address`. A fresh connection per call: a cached
    /// channel to a peer that died makes calls wait out its reconnection instead of failing at
    /// once, which slowed status and forwarded writes during failover (p99 1.0 s → 2.5 s).
    fn peer(&self, id: NodeId, address: &str) -> PeerClient {
        PeerClient::new(self.context.clone(), id, address)
    }

    fn leader_address(&self, leader: NodeId) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|member| member.address.clone())
    }

    /// Sends `forward` to the leader (this node or another) and waits for it to be committed,
    /// re-sending while leadership moves, at most [`SUBMIT_ATTEMPTS_MAX`] times.
    ///
    /// A request is re-sent only when it surely did not reach a leader's log (the receiver said
    /// it is not the leader, or could not be reached), but a connection lost after sending is
    /// reported as [`RequestError::Ambiguous`]; commands should be idempotent all the same.
    pub async fn submit(&self, forward: Forward) -> Result<Forwarded, RequestError> {
        let mut last_problem = String::from("no leader elected yet");
        for attempt in 0..SUBMIT_ATTEMPTS_MAX {
            if attempt > 0 {
                tokio::time::sleep(SUBMIT_BACKOFF).await;
            }
            let leader = self.raft.current_leader().await;
            let outcome = match leader {
                None => continue,
                Some(leader) if leader == self.id => {
                    match tokio::time::timeout(
                        RPC_TIMEOUT,
                        execute(
                            &self.raft,
                            self.id,
                            forward.clone(),
                            self.prepare.as_ref(),
                            &self.context.clocks,
                        ),
                    )
                    .await
                    {
                        Ok(result) => Ok(result),
                        Err(_) => {
                            return Err(RequestError::Ambiguous(format!(
                                "not committed within {RPC_TIMEOUT:?} (is a quorum of voters reachable?)"
                            )));
                        }
                    }
                }
                Some(leader) => match self.leader_address(leader) {
                    None => {
                        last_problem = format!("leader {leader} has no known address");
                        continue;
                    }
                    Some(address) => self.peer(leader, &address).forward(&forward).await,
                },
            };
            match outcome {
                Ok(Ok(forwarded)) => return Ok(forwarded),
                Ok(Err(ForwardError::NotLeader { leader })) => {
                    last_problem = format!("leadership is moving (leader now {leader:?})");
                }
                Ok(Err(ForwardError::Rejected(reason))) => {
                    return Err(RequestError::Rejected(reason));
                }
                Ok(Err(ForwardError::Stopping(reason))) => {
                    return Err(RequestError::Ambiguous(reason));
                }
                Err(error @ PeerError::Unreachable { .. }) => last_problem = error.to_string(),
                // Refused before handling (token, group, malformed): surely not executed.
                Err(
                    error @ PeerError::Refused {
                        code:
                            tonic::Code::Unauthenticated
                            | tonic::Code::FailedPrecondition
                            | tonic::Code::InvalidArgument
                            | tonic::Code::PermissionDenied,
                        ..
                    },
                ) => return Err(RequestError::Rejected(error.to_string())),
                Err(error) => return Err(RequestError::Ambiguous(error.to_string())),
            }
        }
        Err(RequestError::NoLeader(last_problem))
    }

    /// Proposes `command` and returns the application's answer once it is committed and applied.
    pub async fn write(&self, command: S::Command) -> Result<S::Response, RequestError> {
        let mut responses = self.write_batch(vec![command]).await?;
        responses
            .pop()
            .ok_or_else(|| RequestError::Rejected("the leader answered no response".to_owned()))
    }

    /// Proposes `commands` as one log entry: they commit together and are applied in order,
    /// sharing one log index; returns one answer per command. At most [`BATCH_COMMANDS_MAX`].
    pub async fn write_batch(
        &self,
        commands: Vec<S::Command>,
    ) -> Result<Vec<S::Response>, RequestError> {
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(RequestError::Rejected(format!(
                "a batch of {} commands is larger than {BATCH_COMMANDS_MAX}",
                commands.len()
            )));
        }
        let count = commands.len();
        let encoded = codec::encode(&commands);
        if encoded.len() > ENTRY_BYTES_MAX {
            return Err(RequestError::Rejected(format!(
                "the batch encodes to {} bytes, more than one log entry may carry ({ENTRY_BYTES_MAX})",
                encoded.len()
            )));
        }
        let forwarded = self.submit(Forward::Write(Command(encoded))).await?;
        let Forwarded::Committed { response, .. } = forwarded else {
            return Err(RequestError::Rejected(
                "the leader answered a write with a status".to_owned(),
            ));
        };
        match codec::decode::<Applied<Vec<S::Response>>>(&response.0) {
            Ok(Applied::Response(responses)) if responses.len() == count => Ok(responses),
            Ok(Applied::Response(responses)) => Err(RequestError::Rejected(format!(
                "{count} commands were answered {} times",
                responses.len()
            ))),
            Ok(Applied::Undecodable(reason)) => {
                Err(RequestError::Rejected(format!("command could not be decoded: {reason}")))
            }
            Ok(Applied::Internal) => {
                Err(RequestError::Rejected("the entry carried no command".to_owned()))
            }
            Err(error) => {
                Err(RequestError::Rejected(format!("answer could not be decoded: {error}")))
            }
        }
    }

    /// Reads the application with linearizable consistency: only on the leader, after it has
    /// confirmed its leadership with a quorum and applied everything committed before the call.
    ///
    /// The first read of each term on this node first commits an empty entry. openraft 0.9 lets
    /// a node that led before a restart resume leading in the same term without a new no-op
    /// entry, and its committed index may lag what was committed before the crash (it is saved
    /// without fsync); committing an entry of the current term settles it, as Raft requires of
    /// a new leader before it answers reads.
    pub async fn read<T>(&self, read: impl FnOnce(&S) -> T) -> Result<T, RequestError> {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_leader, metrics.current_term)
        };
        if leader == Some(self.id) && self.read_barrier_term.load(Ordering::Acquire) != term {
            self.write_batch(Vec::new()).await?;
            self.read_barrier_term.store(term, Ordering::Release);
        }
        self.raft.ensure_linearizable().await.map_err(|error| match error {
            openraft::error::RaftError::APIError(
                openraft::error::CheckIsLeaderError::ForwardToLeader(forward),
            ) => RequestError::NotLeader { me: self.id, leader: forward.leader_id },
            openraft::error::RaftError::APIError(other) => {
                RequestError::NoLeader(other.to_string())
            }
            openraft::error::RaftError::Fatal(fatal) => RequestError::Stopping(fatal.to_string()),
        })?;
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(read(&state.app))
    }

    /// Reads this node's copy of the application without consistency guarantees (it may lag).
    pub fn read_local<T>(&self, read: impl FnOnce(&S) -> T) -> T {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        read(&state.app)
    }

    /// Adds node `id` at `address` as a learner.
    pub async fn add_learner(&self, id: NodeId, address: &str) -> Result<(), RequestError> {
        self.submit(Forward::AddLearner { id, address: address.to_owned() }).await.map(|_| ())
    }

    /// Promotes learner `id` to a voter, once it has caught up.
    pub async fn promote(&self, id: NodeId) -> Result<(), RequestError> {
        self.submit(Forward::Promote { id }).await.map(|_| ())
    }

    /// Removes node `id` from the group.
    pub async fn remove(&self, id: NodeId) -> Result<(), RequestError> {
        self.submit(Forward::Remove { id }).await.map(|_| ())
    }

    /// Returns this node's view of the group (matched indexes of others are known only on the
    /// leader).
    pub fn status(&self) -> ClusterStatus {
        cluster_status(&self.raft, self.id, &self.context.clocks)
    }

    /// Returns the leader's view of the group when the leader answers within
    /// [`STATUS_TIMEOUT`], else this node's own view.
    pub async fn leader_status(&self) -> ClusterStatus {
        let local = self.status();
        let Some(leader) = local.leader_id.filter(|leader| *leader != self.id) else {
            return local;
        };
        let Some(address) = self.leader_address(leader) else { return local };
        let client = self.peer(leader, &address);
        match tokio::time::timeout(STATUS_TIMEOUT, client.forward(&Forward::Status)).await {
            Ok(Ok(Ok(Forwarded::Status(status)))) => status,
            _ => local,
        }
    }

    /// Waits until some node leads the group, at most `timeout`; returns the leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            if let Some(leader) = metrics.borrow().current_leader {
                return Some(leader);
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return None; },
                () = &mut deadline => return None,
            }
        }
    }

    /// Hands leadership to a caught-up voter if this node leads and one exists, then stops
    /// Raft and the peer service. Bounded by [`HANDOVER_TIMEOUT`] plus the election timeout.
    /// Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.quiet_start.abort();
        if let Err(reason) = self.hand_over().await {
            tracing::info!(%reason, "no leadership hand-over");
        }
        self.abort().await;
    }

    /// Stops Raft and the peer service at once, without handing leadership over: what a crash
    /// looks like to the rest of the group (tests use it to kill a node in-process).
    pub async fn abort(&self) {
        self.quiet_start.abort();
        if let Err(error) = self.raft.shutdown().await {
            tracing::debug!(%error, "raft was already stopped");
        }
        let server = self.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(server) = server {
            let _ = server.stop.send(());
            match server.task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "peer service stopped with an error"),
                Err(error) => tracing::warn!(%error, "peer service task failed"),
            }
        }
    }

    async fn hand_over(&self) -> Result<NodeId, String> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.id) {
            return Err("this node is not the leader".to_owned());
        }
        // Find a voter that holds the whole log.
        let voters: Vec<NodeId> = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != self.id)
            .collect();
        let mut watch = self.raft.metrics();
        let caught_up = async {
            loop {
                let now = watch.borrow().clone();
                let last = now.last_log_index;
                let found = voters.iter().copied().find(|id| {
                    let matched =
                        now.replication.as_ref().and_then(|r| r.get(id).copied().flatten());
                    matched.map(|log_id| log_id.index) == last
                });
                if let Some(id) = found {
                    return Some(id);
                }
                if watch.changed().await.is_err() {
                    return None;
                }
            }
        };
        let successor = tokio::time::timeout(HANDOVER_TIMEOUT, caught_up)
            .await
            .ok()
            .flatten()
            .ok_or("no voter caught up in time")?;
        let address = self.leader_address(successor).ok_or("the successor has no address")?;
        // Stop leading: no heartbeats, no campaigning here; wait out the leader lease so that the
        // other voters grant the successor their votes.
        self.raft.runtime_config().heartbeat(false);
        self.raft.runtime_config().elect(false);
        tokio::time::sleep(self.timing.election_max + self.timing.heartbeat).await;
        let client = self.peer(successor, &address);
        match client.timeout_now().await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                tracing::info!(successor, %reason, "successor declined to campaign at once")
            }
            Err(error) => tracing::info!(successor, %error, "successor not told to campaign"),
        }
        let mut watch = self.raft.metrics();
        let elected = async {
            loop {
                let leader = watch.borrow().current_leader;
                if leader.is_some() && leader != Some(self.id) {
                    return leader;
                }
                if watch.changed().await.is_err() {
                    return None;
                }
            }
        };
        let leader = tokio::time::timeout(HANDOVER_TIMEOUT, elected)
            .await
            .ok()
            .flatten()
            .ok_or("no successor was elected in time")?;
        tracing::info!(leader, "leadership handed over");
        Ok(leader)
    }
}

/// Returns `me`'s view of the group from its Raft metrics.
pub(crate) fn cluster_status(
    raft: &Raft,
    me: NodeId,
    clocks: &crate::clocks::PeerClocks,
) -> ClusterStatus {
    let metrics = raft.metrics().borrow().clone();
    let offsets = clocks.offsets();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, member)| {
            let role = if !voters.contains(id) {
                Role::Learner
            } else if metrics.current_leader == Some(*id) {
                Role::Leader
            } else if *id == me && metrics.state == ServerState::Candidate {
                Role::Candidate
            } else {
                Role::Follower
            };
            let matched_index = if *id == me {
                metrics.last_log_index.unwrap_or_default()
            } else {
                metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(id).copied().flatten())
                    .map_or(0, |log_id| log_id.index)
            };
            let clock_offset_ms = if *id == me {
                (clocks.stamp() != 0).then_some(0)
            } else {
                offsets.get(id).map(|micros| micros / 1_000)
            };
            MemberStatus {
                id: *id,
                address: member.address.clone(),
                role,
                matched_index,
                clock_offset_ms,
            }
        })
        .collect();
    ClusterStatus {
        node_id: me,
        leader_id: metrics.current_leader,
        term: metrics.current_term,
        commit_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
        members,
    }
}

/// Creates a new group (or finishes creating the one this node started): records the group id
/// as created here, then writes the initial membership.
async fn bootstrap(raft: &Raft, config: &NodeConfig, group: &GroupCell) -> Result<(), StartError> {
    let new_group = group.adopt(GroupId::random(), |group| {
        Identity { node_id: config.id, group_id: Some(group.clone()), bootstrapped: true }
            .save(&config.data_dir)
    })?;
    let mut members: BTreeMap<NodeId, Member> = config
        .peers
        .iter()
        .map(|(id, address)| (*id, Member { address: address.clone() }))
        .collect();
    members.entry(config.id).or_insert_with(|| Member { address: config.advertise.clone() });
    tracing::info!(group = %new_group, voters = ?members.keys().collect::<Vec<_>>(), "bootstrapping a new group");
    raft.initialize(members).await.map_err(|error| StartError::Raft(error.to_string()))
}

/// Keeps a restarting member of a multi-voter group from campaigning until a leader's
/// AppendEntries reaches it or two longest election timeouts have passed.
///
/// openraft 0.9 forgets on restart when the node last heard a leader, so a restarted node would
/// campaign at its first tick with a stale log: its vote requests fail, its raised term makes a
/// healthy leader step down, and having seen a longer log it then waits an extra
/// `2 × election_max` before campaigning again, slowing the next real failover. Waiting here
/// lets the leader's retries (every [`crate::network::REPLICATION_BACKOFF`]) reach it first;
/// a group restarting as a whole still elects once the wait is over.
async fn quiet_start(
    raft: Raft,
    timing: Timing,
    voters: usize,
    heard_leader: Arc<tokio::sync::Notify>,
) {
    if voters <= 1 {
        return;
    }
    let _ = tokio::time::timeout(timing.election_max * 2, heard_leader.notified()).await;
    raft.runtime_config().elect(true);
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn read_membership<S: StateMachine>(store: &StateMachineStore<S>) -> StoredMembership {
    let shared = store.shared();
    let state = shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    state.membership.clone()
}

/// Says hello to every listed peer and refuses to start on contradictions: a peer of another
/// group, a peer that answers as another node, a peer that refuses our token, or (when
/// bootstrapping a new group) a peer that already belongs to a group.
async fn greet_peers(
    config: &NodeConfig,
    context: &PeerContext,
    bootstrapping: bool,
) -> Result<(), StartError> {
    let ours = context.group.get();
    let greetings = config.peers.iter().filter(|(id, _)| **id != config.id).map(|(id, address)| {
        let (id, address) = (*id, address.clone());
        let client = PeerClient::new(context.clone(), id, &address);
        async move { (id, address, client.hello(HELLO_TIMEOUT).await) }
    });
    for (id, address, answer) in futures_join_all(greetings).await {
        match answer {
            Ok(hello) => {
                if hello.node_id != id {
                    return Err(StartError::Peer(format!(
                        "--peers says node {id} is at {address}, but node {} answers there",
                        hello.node_id
                    )));
                }
                let theirs = (!hello.group_id.is_empty()).then(|| GroupId(hello.group_id.clone()));
                match (&ours, &theirs) {
                    (Some(ours), Some(theirs)) if ours != theirs => {
                        return Err(StartError::Peer(format!(
                            "this data directory belongs to group {ours}, but node {id} at {address} belongs to group {theirs}"
                        )));
                    }
                    (None, Some(theirs)) if bootstrapping => {
                        return Err(StartError::Peer(format!(
                            "node {id} at {address} already belongs to group {theirs}; start without --bootstrap to join it"
                        )));
                    }
                    _ => {}
                }
            }
            Err(error @ PeerError::Refused { code: tonic::Code::Unauthenticated, .. }) => {
                return Err(StartError::Peer(error.to_string()));
            }
            Err(error) => {
                // A peer that is down, starting or slow says nothing about this node's config.
                tracing::info!(peer = id, %address, %error, "peer did not answer the start-up hello");
            }
        }
    }
    Ok(())
}

/// Runs futures concurrently and returns their outputs in order (a small join_all on tokio).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<JoinHandle<F::Output>> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(output) => outputs.push(output),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the earliest and latest moment (after the last heartbeat) at which a follower
    /// with this slot campaigns: its lease (slot max) plus its draw.
    fn campaign(slot: (Duration, Duration)) -> (Duration, Duration) {
        (slot.1 + slot.0, slot.1 + slot.1)
    }

    #[test]
    fn election_slots_keep_five_nodes_campaigns_apart_and_after_every_lease() {
        let timing = Timing::default();
        let slots: Vec<_> = (1..=5).map(|id| timing.election_slot(id)).collect();
        for (a, slot_a) in slots.iter().enumerate() {
            assert!(slot_a.0 >= timing.election_min && slot_a.1 <= timing.election_max);
            assert!(slot_a.0 < slot_a.1, "slot {a} is empty: {slot_a:?}");
            for (b, slot_b) in slots.iter().enumerate().filter(|(b, _)| *b != a) {
                let (ca, cb) = (campaign(*slot_a), campaign(*slot_b));
                let gap = if ca.1 <= cb.0 { cb.0 - ca.1 } else { ca.0.saturating_sub(cb.1) };
                assert!(gap >= Duration::from_millis(50), "nodes {a} and {b} campaign together");
                // The first campaign comes after every other survivor's lease has run out.
                assert!(ca.0 > slot_b.1, "node {a} campaigns inside node {b}'s lease");
            }
        }
    }

    #[test]
    fn a_range_too_narrow_to_cut_is_used_whole() {
        let timing = Timing {
            heartbeat: Duration::from_millis(1),
            election_min: Duration::from_millis(5),
            election_max: Duration::from_millis(12),
        };
        assert_eq!(timing.election_slot(3), (timing.election_min, timing.election_max));
    }
}
