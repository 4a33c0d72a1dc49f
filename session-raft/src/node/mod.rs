//! One cluster member: [`RaftNode`] owns the Raft instance, its storage, the
//! cluster-port server and the background tasks (the leader's expiry timer
//! and the metrics exporter), and runs their lifecycle.
//!
//! Start-up: validate the configuration, bind the cluster port, open storage,
//! start Raft and the server, then form the cluster:
//!
//! - static peers: the member with the lowest id initializes the cluster
//!   (only when its log is empty, so a restart never re-initializes); the
//!   others wait to hear from a leader;
//! - join: ask a running member to add this node as a learner, then to
//!   promote it (both admin calls follow redirects to the leader);
//! - neither: a single-node cluster of this member.
//!
//! Shutdown hands leadership to the most up-to-date voter first, so that the
//! cluster does not wait an election timeout for a member leaving on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use session_core::MeshTag;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, FirstContact};
use crate::config::{NodeConfig, ReadMode};
use crate::group::OwnGroup;
use crate::lease::ReadLease;
use crate::log_limit::LogLimiter;
use crate::mesh::MeshDirectory;
use crate::network::{authorization_value, ClusterClient, NetworkFactory};
use crate::rpc::{Request, Response, SnapshotReply};
use crate::server::{self, ServerConfig, ServerHandle};
use crate::status::ClusterStatus;
use crate::storage::log::LogStore;
use crate::storage::state_machine::{SessionReader, StateMachineStore};
use crate::store::{Forwarder, RaftStore};
use crate::types::{NodeId, Raft, Snapshot};

mod tasks;

pub(crate) use tasks::stopped;
use tasks::{expiry_timer, export_metrics, name_the_cluster};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent or unsafe.
    #[error("invalid node configuration: {0}")]
    Config(String),
    /// The cluster port could not be bound.
    #[error("cannot listen on cluster address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The cluster TLS files could not be read or do not fit together
    /// (unreadable file, no certificate or key in it, key not matching the
    /// certificate, certificate not issued by the CA bundle, ...).
    #[error("cluster TLS: {0}")]
    Tls(String),
    /// The log or state machine could not be opened.
    #[error("cannot open storage in {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// openraft refused to start.
    #[error("raft failed to start: {0}")]
    Raft(String),
    /// Joining through the given member failed.
    #[error("could not join the cluster through {via}: {reason}")]
    Join {
        /// The member asked.
        via: String,
        /// The last failure.
        reason: String,
    },
}

/// Why an admin request (a membership change, or a status asked through
/// [`crate::admin::call`]) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No leader could be reached in time; retrying later may work.
    #[error("not done in time: {0}")]
    Unavailable(String),
    /// The leader refused the change (a node that is not a member, a change
    /// in progress, ...), or a member refused the request itself.
    #[error("refused: {0}")]
    Refused(String),
    /// The member at this address refused the cluster secret: it is missing
    /// or not the cluster's. Nothing about the secret itself is said.
    #[error("{0} refused the cluster secret (missing or wrong)")]
    SecretRefused(String),
    /// The first member asked could not be connected to
    /// ([`crate::admin::call`] only; a joining node keeps trying).
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// TLS failed: unusable TLS files, a TLS handshake refused either way,
    /// or a plain member talking to a TLS one.
    #[error("{0}")]
    Tls(String),
}

/// Why waiting for a leader failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no leader elected within {0:?}")]
pub struct NoLeader(pub Duration);

/// State shared by the node, its stores, its server and its tasks.
pub(crate) struct Shared {
    /// This member's id.
    pub(crate) node_id: NodeId,
    /// The Raft instance.
    pub(crate) raft: Raft,
    /// Lock-free view of the applied session map.
    pub(crate) reader: SessionReader,
    /// HTTP clients to other members.
    pub(crate) client: Arc<ClusterClient>,
    /// Batches writes forwarded to the leader.
    pub(crate) forwarder: Forwarder,
    /// How loads are made consistent.
    pub(crate) read_mode: ReadMode,
    /// Bound on waiting for a token to be applied.
    pub(crate) read_wait: Duration,
    /// Bound on a write.
    pub(crate) write_timeout: Duration,
    /// Mesh tag for new session ids.
    pub(crate) mesh: Option<MeshTag>,
    /// Every mesh's members, for serving other meshes' sessions.
    pub(crate) meshes: Option<Arc<MeshDirectory>>,
    /// Round-robin position among a mesh's members (see [`crate::cross_mesh`]).
    pub(crate) next_mesh_member: AtomicUsize,
    /// Limit stamped into this node's create commands
    /// ([`crate::NodeConfig::max_sessions`]).
    pub(crate) max_sessions: Option<u64>,
    /// Whether this member may serve reads from its own state (see
    /// [`crate::lease`]).
    pub(crate) lease: Arc<ReadLease>,
    /// Time source of stamps the store makes itself (deletes).
    pub(crate) clock: session_core::Clock,
    /// Most session bytes one write may carry: an entry must fit one
    /// AppendEntries body (`max_rpc_bytes`), which cannot be split below one
    /// entry, or replication of it would be refused forever.
    pub(crate) max_write_bytes: usize,
}

/// Admin calls wait this long: adding a learner waits for it to catch up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

impl Shared {
    /// Dispatches one decoded RPC (see [`crate::server`]).
    pub(crate) async fn handle(&self, request: Request) -> Response {
        let stopped =
            |e: &dyn std::fmt::Display| Response::Unavailable(format!("raft stopped: {e}"));
        match request {
            Request::AppendEntries(rpc) => match self.raft.append_entries(rpc).await {
                Ok(response) => Response::AppendEntries(response),
                Err(e) => stopped(&e),
            },
            Request::LeasedAppendEntries { rpc, quorum_age_ms } => {
                match self.raft.append_entries(rpc).await {
                    Ok(response) => {
                        self.lease.renew(&response, quorum_age_ms);
                        Response::AppendEntries(response)
                    }
                    Err(e) => stopped(&e),
                }
            }
            Request::Vote(rpc) => match self.raft.vote(rpc).await {
                Ok(response) => Response::Vote(response),
                Err(e) => stopped(&e),
            },
            Request::PreVote(rpc) => match self.raft.pre_vote(rpc).await {
                Ok(response) => Response::Vote(response),
                Err(e) => stopped(&e),
            },
            Request::TransferLeader(rpc) => match self.raft.handle_transfer_leader(rpc).await {
                Ok(response) => Response::TransferLeader(response),
                Err(e) => stopped(&e),
            },
            Request::Write(commands) => self.serve_forwarded_writes(commands).await,
            Request::ReadIndex => self.serve_read_index().await,
            Request::Load { id, token, now } => self.serve_load(id, token, now).await,
            Request::MeshLoad {
                id,
                token,
                now,
                budget_ms,
            } => self.serve_mesh_load(id, token, now, budget_ms).await,
            Request::MeshWrite { command, budget_ms } => {
                self.serve_mesh_write(command, budget_ms).await
            }
            admin @ (Request::AddLearner { .. }
            | Request::Promote { .. }
            | Request::Remove { .. }
            | Request::Status) => self.admin_here(&admin).await,
        }
    }

    /// Installs a snapshot streamed by the leader, already spooled to a
    /// file and verified (see [`crate::snapshot_transfer::receive`]):
    /// openraft treats a state machine that fails to install a snapshot as
    /// a storage fault and stops the node, so a corrupt transfer must be
    /// refused before it gets here.
    pub(crate) async fn install_snapshot(
        &self,
        vote: crate::types::Vote,
        meta: crate::types::SnapshotMeta,
        data: crate::types::SnapshotData,
    ) -> SnapshotReply {
        let snapshot = Snapshot {
            meta,
            snapshot: data,
        };
        match self.raft.install_full_snapshot(vote, snapshot).await {
            Ok(response) => SnapshotReply::Installed(response),
            Err(e) => SnapshotReply::Unavailable(e.to_string()),
        }
    }

    /// This member's view of the cluster.
    pub(crate) fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        ClusterStatus::from_metrics(
            &metrics,
            self.mesh,
            self.reader.cluster_id(),
            self.reader.session_count(),
        )
    }

    /// Runs an admin request if this node is the leader; otherwise says who is.
    pub(crate) async fn admin_here(&self, request: &Request) -> Response {
        if let Request::Status = request {
            // Only the leader knows every member's lag, so send the caller
            // there. With no leader (or no address for it) known, this
            // member's own view is the answer: during an outage it is what
            // an operator needs to see.
            return match self.leader() {
                Some((leader, Some(addr))) if leader != self.node_id => Response::NotLeader {
                    leader: Some(leader),
                    addr: Some(addr),
                },
                _ => Response::Status(Box::new(self.status())),
            };
        }
        if let Request::Promote { id } | Request::Remove { id } = request {
            // openraft removes a node that is not a member without a word,
            // and names a promotion of one as a missing learner: say plainly
            // that the id is unknown. Only the leader's view counts (a
            // follower may not have applied a change yet); elsewhere the
            // request is redirected below as usual.
            if self.raft.is_leader() && !self.is_member(*id) {
                return Response::Refused(format!("node {id} is not a member of the cluster"));
            }
        }
        let result = match request {
            Request::AddLearner { id, addr } => {
                let (id, addr) = (*id, addr.clone());
                tracing::info!(node = id, %addr, "adding learner");
                self.raft.add_learner(id, BasicNode { addr }, true).await
            }
            Request::Promote { id } => {
                let id = *id;
                tracing::info!(node = id, "promoting learner to voter");
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await
            }
            Request::Remove { id } => {
                let id = *id;
                tracing::info!(node = id, "removing member");
                let is_voter = self.raft.voter_ids().any(|v| v == id);
                let change = if is_voter {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.raft.change_membership(change, false).await
            }
            _ => return Response::Refused("not an admin request".into()),
        };
        match result {
            Ok(_) => Response::Done,
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                let addr = forward.leader_node.map(|n| n.addr).or_else(|| {
                    let leader = forward.leader_id?;
                    self.leader()
                        .filter(|(id, _)| *id == leader)
                        .and_then(|(_, a)| a)
                });
                Response::NotLeader {
                    leader: forward.leader_id,
                    addr,
                }
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                Response::Unavailable("leader changed during the membership change".into())
            }
            Err(RaftError::APIError(e)) => Response::Refused(e.to_string()),
            Err(RaftError::Fatal(e)) => Response::Unavailable(format!("raft stopped: {e}")),
        }
    }

    /// Whether `id` is in this member's latest membership (voter or learner).
    fn is_member(&self, id: NodeId) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .is_some()
    }

    /// Runs an admin request on the leader, following redirects, starting at
    /// `first` (or at the leader this node knows of); see [`admin::run`].
    async fn admin(&self, request: Request, first: Option<String>) -> Result<(), AdminError> {
        admin::run(
            &self.client,
            Some(self),
            &request,
            first,
            ADMIN_TIMEOUT,
            FirstContact::Retry,
        )
        .await
        .map(drop)
    }
}

/// A running cluster member. See the module docs for the lifecycle.
///
/// Starting member 1 of a three-node cluster (members 2 and 3 run the same
/// code with their own id and addresses):
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::BTreeMap;
/// use std::time::Duration;
/// use session_raft::{NodeConfig, RaftNode};
///
/// let peers = BTreeMap::from([
///     (1, "10.0.0.1:7000".to_string()),
///     (2, "10.0.0.2:7000".to_string()),
///     (3, "10.0.0.3:7000".to_string()),
/// ]);
/// let node = RaftNode::start(
///     NodeConfig::new(1, "0.0.0.0:7000".parse()?)
///         .with_advertise_addr("10.0.0.1:7000")
///         .with_peers(peers)
///         .with_secret(std::env::var("CLUSTER_SECRET")?)
///         .with_data_dir("/var/lib/raft-sessions"),
/// )
/// .await?;
/// node.wait_for_leader(Duration::from_secs(10)).await?;
/// let store = node.store(); // a session_core::SessionStore for the layer
/// # drop(store);
/// node.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct RaftNode {
    /// State shared with stores, server and tasks.
    shared: Arc<Shared>,
    /// The cluster-port server.
    server: Option<ServerHandle>,
    /// Tells background tasks to stop.
    stop: watch::Sender<bool>,
    /// Background tasks (expiry timer, metrics), awaited on shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// The address the cluster listener bound.
    local_addr: SocketAddr,
    /// The address peers use for this member.
    advertise_addr: String,
    /// Longest election timeout, to bound the leadership hand-over.
    election_timeout_max: Duration,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("node_id", &self.shared.node_id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl RaftNode {
    /// Binds the cluster port, opens storage, starts Raft, and bootstraps or
    /// joins the cluster (see the module docs). Returns once the node runs; a
    /// leader may not be elected yet (see [`RaftNode::wait_for_leader`]).
    pub async fn start(config: NodeConfig) -> Result<RaftNode, StartError> {
        config.validate().map_err(StartError::Config)?;
        let raft_config = Arc::new(config.raft_config().map_err(StartError::Config)?);
        // Before binding: bad TLS files are a configuration error, and a
        // port must not be taken by a node that cannot serve it.
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.load())
            .transpose()
            .map_err(StartError::Tls)?;

        let listener = TcpListener::bind(config.cluster_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.cluster_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.cluster_addr,
            source,
        })?;
        let advertise_addr = config
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local_addr.to_string());

        let (log_store, state_machine) = match &config.data_dir {
            Some(dir) => {
                let storage_error = |source| StartError::Storage {
                    dir: dir.clone(),
                    source,
                };
                std::fs::create_dir_all(dir).map_err(storage_error)?;
                let log = LogStore::open(&dir.join("log")).map_err(storage_error)?;
                let sm = StateMachineStore::open(&dir.join("state")).map_err(storage_error)?;
                (log, sm)
            }
            None => (LogStore::in_memory(), StateMachineStore::in_memory()),
        };
        let reader = state_machine.reader();

        let own_group = OwnGroup {
            mesh: config.mesh,
            reader: reader.clone(),
        };
        let client = Arc::new(
            ClusterClient::new(
                config.secret.as_deref(),
                config.outbound_ip,
                config.election_timeout_min,
                config.max_snapshot_bytes.max(config.max_rpc_bytes),
                tls.as_ref(),
            )
            .with_own_group(own_group.clone()),
        );
        let lease = Arc::new(ReadLease::new(config.effective_read_lease()));
        let network = NetworkFactory::new(
            config.node_id,
            client.clone(),
            config.max_rpc_bytes,
            lease.clone(),
        );
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        lease.attach(raft.clone());

        let shared = Arc::new(Shared {
            node_id: config.node_id,
            raft: raft.clone(),
            reader,
            client: client.clone(),
            forwarder: Forwarder::spawn(client),
            read_mode: config.read_mode,
            read_wait: config.read_wait,
            write_timeout: config.write_timeout,
            mesh: config.mesh,
            meshes: config.mesh_directory.clone().map(Arc::new),
            next_mesh_member: AtomicUsize::new(0),
            max_sessions: config.max_sessions,
            lease,
            clock: config.clock.clone(),
            max_write_bytes: config
                .max_rpc_bytes
                .saturating_sub(2 * crate::append_split::ENVELOPE_BYTES),
        });

        let server = server::spawn(
            listener,
            shared.clone(),
            ServerConfig {
                node_id: config.node_id,
                group: own_group,
                log_limit: LogLimiter::default(),
                expected_authorization: config
                    .secret
                    .as_deref()
                    .map(|s| authorization_value(s).into_bytes()),
                max_rpc_bytes: config.max_rpc_bytes,
                max_snapshot_bytes: config.max_snapshot_bytes,
                spool_dir: config
                    .data_dir
                    .as_ref()
                    .map_or_else(std::env::temp_dir, |dir| dir.join("state")),
                tls: tls.map(|tls| tls.acceptor),
            },
        );

        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(expiry_timer(
                shared.clone(),
                config.expiry_interval,
                config.expiry_clock_bound,
                config.clock.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(name_the_cluster(shared.clone(), stop_rx.clone())),
            tokio::spawn(export_metrics(shared.clone(), stop_rx)),
        ];
        let node = RaftNode {
            shared,
            server: Some(server),
            stop,
            tasks,
            local_addr,
            advertise_addr,
            election_timeout_max: config.election_timeout_max,
        };
        tracing::info!(
            node = config.node_id,
            addr = %node.local_addr,
            advertise = %node.advertise_addr,
            "raft node started"
        );

        if let Err(e) = node.form_cluster(&config).await {
            let _ = node.shutdown_abruptly().await;
            return Err(e);
        }
        Ok(node)
    }

    /// Bootstraps or joins, per the configuration.
    async fn form_cluster(&self, config: &NodeConfig) -> Result<(), StartError> {
        let raft = &self.shared.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if initialized {
            // A restart: the log already knows the membership.
            return Ok(());
        }
        if let Some(via) = &config.join {
            return self.join(via).await;
        }
        let members: BTreeMap<NodeId, BasicNode> = if config.peers.is_empty() {
            BTreeMap::from([(
                config.node_id,
                BasicNode {
                    addr: self.advertise_addr.clone(),
                },
            )])
        } else {
            config
                .peers
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect()
        };
        let lowest = members.keys().next().copied();
        if lowest != Some(config.node_id) {
            // Another member bootstraps; this one waits to be contacted.
            return Ok(());
        }
        tracing::info!(node = config.node_id, members = ?members.keys().collect::<Vec<_>>(), "initializing cluster");
        match raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Already initialized (a race with a leader's first message): fine.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(StartError::Raft(e.to_string())),
        }
    }

    /// Asks a running member (redirected to the leader) to add this node as a
    /// learner, then to promote it.
    async fn join(&self, via: &str) -> Result<(), StartError> {
        let id = self.shared.node_id;
        tracing::info!(node = id, %via, "joining cluster");
        let add = Request::AddLearner {
            id,
            addr: self.advertise_addr.clone(),
        };
        let fail = |e: AdminError| StartError::Join {
            via: via.to_owned(),
            reason: e.to_string(),
        };
        self.shared
            .admin(add, Some(via.to_owned()))
            .await
            .map_err(fail)?;
        // Now a learner: this node knows the leader from its first append.
        let promote = Request::Promote { id };
        let first = self
            .shared
            .leader()
            .and_then(|(_, addr)| addr)
            .or_else(|| Some(via.to_owned()));
        self.shared.admin(promote, first).await.map_err(fail)?;
        Ok(())
    }

    /// A [`session_core::SessionStore`] reading from and writing through this node.
    pub fn store(&self) -> RaftStore {
        RaftStore::new(self.shared.clone())
    }

    /// This member's view of the cluster.
    pub fn status(&self) -> ClusterStatus {
        self.shared.status()
    }

    /// The mesh this member serves, if the deployment uses meshes.
    pub fn mesh(&self) -> Option<MeshTag> {
        self.shared.mesh
    }

    /// The mesh directory this member forwards other meshes' sessions by.
    pub fn mesh_directory(&self) -> Option<&MeshDirectory> {
        self.shared.meshes.as_deref()
    }

    /// The openraft handle, for what this API does not cover.
    pub fn raft(&self) -> &Raft {
        &self.shared.raft
    }

    /// This member's id.
    pub fn node_id(&self) -> NodeId {
        self.shared.node_id
    }

    /// The group's cluster id (the history its consistency tokens name), once
    /// this member has applied it; see [`ClusterStatus::cluster_id`].
    pub fn cluster_id(&self) -> Option<u64> {
        Some(self.shared.reader.cluster_id()).filter(|id| *id != 0)
    }

    /// The leader this node currently knows of. Cheap (no allocation), for
    /// per-request use; [`RaftNode::status`] has the full picture.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.shared.raft.metrics().borrow_watched().current_leader
    }

    /// The address the cluster listener is bound to (useful with port 0).
    pub fn cluster_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address peers use to reach this member.
    pub fn advertise_addr(&self) -> &str {
        &self.advertise_addr
    }

    /// Adds a member as a learner (it receives the log but does not vote);
    /// returns once it has caught up. Forwarded to the leader.
    pub async fn add_learner(&self, id: NodeId, addr: String) -> Result<(), AdminError> {
        self.shared
            .admin(Request::AddLearner { id, addr }, None)
            .await
    }

    /// Makes a learner a voter. Forwarded to the leader.
    pub async fn promote(&self, id: NodeId) -> Result<(), AdminError> {
        self.shared.admin(Request::Promote { id }, None).await
    }

    /// Removes a member (voter or learner) from the cluster. Forwarded to the leader.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), AdminError> {
        self.shared.admin(Request::Remove { id }, None).await
    }

    /// Waits until this member knows a leader; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, NoLeader> {
        let mut metrics = self.shared.raft.server_metrics();
        let wait = async {
            loop {
                if let Some(leader) = metrics.borrow_watched().current_leader {
                    return Some(leader);
                }
                metrics.changed().await.ok()?;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(leader)) => Ok(leader),
            _ => Err(NoLeader(timeout)),
        }
    }

    /// Leaves gracefully: a leader first hands leadership to the most
    /// up-to-date voter (bounded by two election timeouts), then Raft, the
    /// server and the background tasks stop.
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        self.hand_over_leadership().await;
        self.shutdown_abruptly().await
    }

    /// Stops without handing over leadership, as a crash would (the cluster
    /// elects a new leader after an election timeout). For fault drills and
    /// tests; prefer [`RaftNode::shutdown`].
    pub async fn shutdown_abruptly(mut self) -> Result<(), ShutdownError> {
        let _ = self.stop.send(true);
        let raft_result = self.shared.raft.shutdown().await;
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        tracing::info!(node = self.shared.node_id, "raft node stopped");
        raft_result.map_err(|e| ShutdownError(e.to_string()))
    }

    async fn hand_over_leadership(&self) {
        let raft = &self.shared.raft;
        let me = self.shared.node_id;
        let target = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow_watched();
            if metrics.state != openraft::ServerState::Leader {
                return;
            }
            let replication = metrics.replication.clone().unwrap_or_default();
            metrics
                .membership_config
                .membership()
                .voter_ids()
                .filter(|id| *id != me)
                .max_by_key(|id| replication.get(id).cloned().flatten().map(|l| l.index))
        };
        let Some(target) = target else {
            return;
        };
        tracing::info!(
            node = me,
            to = target,
            "handing over leadership before shutdown"
        );
        if raft.trigger().transfer_leader(target).await.is_err() {
            return;
        }
        let mut metrics = raft.server_metrics();
        let _ = tokio::time::timeout(self.election_timeout_max * 2, async {
            loop {
                let leader = metrics.borrow_watched().current_leader;
                if leader.is_some() && leader != Some(me) {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

impl Drop for RaftNode {
    /// A node dropped without `shutdown` still stops its server and tasks, so
    /// that the Raft instance is released once no store refers to it.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            // Outside a runtime the server task is gone with the runtime anyway.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(server.stop());
            }
        }
    }
}

/// Raft did not stop cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("raft did not stop cleanly: {0}")]
pub struct ShutdownError(pub String);
