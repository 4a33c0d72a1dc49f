//! [`Replica`]: what one member's store, RPC server, admin calls and
//! background tasks share (the Raft handle, the applied-state reader, the
//! cluster client, the member's settings), the member's view of who leads,
//! and [`retry_until`], the one loop that retries an operation until its
//! deadline while elections move the leader.
//!
//! A replica knows nothing of how it is started or stopped (that is
//! [`crate::RaftNode`]'s job) nor of what the RPCs mean (the store and admin
//! modules serve them); it is the state they all read.

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use session_core::{Clock, MeshTag};

use crate::config::ReadMode;
use crate::lease::ReadLease;
use crate::mesh::MeshDirectory;
use crate::rpc::client::ClusterClient;
use crate::status::ClusterStatus;
use crate::storage::state_machine::SessionReader;
use crate::storage::Raft;
use crate::store::forward::Forwarder;
use crate::store::metrics::StoreMetrics;
use crate::store::propose::Proposer;
use crate::types::NodeId;

/// Retry hint given to callers when there is no leader or quorum: about one
/// election.
pub(crate) const RETRY_SOON: Duration = Duration::from_secs(1);

/// How long a retry waits for the leader to change before trying again
/// anyway (a leader that did not answer may still be the leader).
const LEADER_CHANGE_WAIT: Duration = Duration::from_millis(100);

/// State shared by the node, its stores, its server and its tasks.
pub(crate) struct Replica {
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
    /// Batches this member's own proposals while it leads.
    pub(crate) proposer: Proposer,
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
    /// Round-robin position among a mesh's members (see
    /// [`crate::store::cross_mesh`]).
    pub(crate) next_mesh_member: AtomicUsize,
    /// Limit stamped into this node's create commands
    /// ([`crate::NodeConfig::max_sessions`]).
    pub(crate) max_sessions: Option<u64>,
    /// Whether this member may serve reads from its own state (see
    /// [`crate::lease`]).
    pub(crate) lease: Arc<ReadLease>,
    /// Time source of stamps the store makes itself (deletes).
    pub(crate) clock: Clock,
    /// Most session bytes one write may carry: an entry must fit one
    /// AppendEntries body (`max_rpc_bytes`), which cannot be split below one
    /// entry, or replication of it would be refused forever.
    pub(crate) max_write_bytes: usize,
    /// The store's metric handles.
    pub(crate) metrics: StoreMetrics,
}

impl Replica {
    /// The leader this node knows of, and its cluster address.
    pub(crate) fn leader(&self) -> Option<(NodeId, Option<String>)> {
        let metrics = self.raft.server_metrics();
        let metrics = metrics.borrow_watched();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| node.addr.clone());
        Some((leader, addr))
    }

    /// Waits (at most `max`, never past `deadline`) for the known leader to
    /// differ from `seen`, so retries follow elections instead of spinning.
    pub(crate) async fn wait_leader_change(
        &self,
        seen: Option<NodeId>,
        deadline: Instant,
        max: Duration,
    ) {
        let mut metrics = self.raft.server_metrics();
        let until = deadline.min(Instant::now() + max);
        let _ = tokio::time::timeout_at(until.into(), async {
            loop {
                if metrics.borrow_watched().current_leader != seen {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
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
}

/// What one attempt of a retried operation came to.
pub(crate) enum Attempt<T> {
    /// Finished, successfully or with an error not worth retrying.
    Done(T),
    /// Certainly did nothing; worth trying again. The reason is kept for
    /// the error if the deadline passes first.
    Again(String),
    /// Nothing could be tried (no leader known yet): wait as usual, keeping
    /// the last reason.
    Wait,
}

/// How a retried operation waits between attempts.
pub(crate) enum Pause<'a> {
    /// Until the leader this replica knows of changes from the one it knew
    /// before the attempt, at most [`LEADER_CHANGE_WAIT`].
    ForLeaderChange(&'a Replica),
    /// A fixed time.
    For(Duration),
}

/// Runs `attempt` until it is [`Attempt::Done`] or `deadline` passes,
/// pausing between attempts as `pause` says; each attempt is given the time
/// left. On time-out, the error is the last reason given (or `first_problem`
/// when no attempt ran).
///
/// The callers decide what "certainly did nothing" means; this only keeps
/// the loop, its deadline and its pacing the same everywhere (writes and read
/// indexes following the leader, cross-mesh rounds, admin redirects).
pub(crate) async fn retry_until<T, F, Fut>(
    deadline: Instant,
    pause: Pause<'_>,
    first_problem: String,
    mut attempt: F,
) -> Result<T, String>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut problem = first_problem;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(problem);
        }
        let seen = match pause {
            Pause::ForLeaderChange(replica) => replica.leader().map(|(id, _)| id),
            Pause::For(_) => None,
        };
        match attempt(remaining).await {
            Attempt::Done(result) => return Ok(result),
            Attempt::Again(reason) => problem = reason,
            Attempt::Wait => {}
        }
        match pause {
            Pause::ForLeaderChange(replica) => {
                replica
                    .wait_leader_change(seen, deadline, LEADER_CHANGE_WAIT)
                    .await
            }
            Pause::For(wait) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left <= wait {
                    return Err(problem);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}
