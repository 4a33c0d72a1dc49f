//! A member's view of the cluster, as a plain serializable value for status
//! pages and `/cluster` JSON endpoints. Built from openraft's metrics, which
//! the node keeps current; taking it is cheap and never waits on Raft.

use serde::{Deserialize, Serialize};
use session_core::MeshTag;

use crate::types::{NodeId, RaftMetrics};

/// What a member is doing in Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Accepts writes and replicates them.
    Leader,
    /// A voter following the leader.
    Follower,
    /// A voter campaigning for leadership.
    Candidate,
    /// A non-voting member catching up or serving reads.
    Learner,
    /// Stopping or stopped.
    Shutdown,
}

impl From<openraft::ServerState> for Role {
    fn from(state: openraft::ServerState) -> Self {
        match state {
            openraft::ServerState::Leader => Role::Leader,
            openraft::ServerState::Follower => Role::Follower,
            openraft::ServerState::Candidate => Role::Candidate,
            openraft::ServerState::Learner => Role::Learner,
            openraft::ServerState::Shutdown => Role::Shutdown,
        }
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Member id.
    pub id: NodeId,
    /// Its cluster address.
    pub addr: String,
    /// Whether it votes (otherwise a learner).
    pub voter: bool,
    /// Highest log index known replicated to it; only known on the leader.
    pub matched_index: Option<u64>,
    /// How many entries it is behind the leader's log; only known on the leader.
    pub lag: Option<u64>,
}

/// A member's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This member's id.
    pub node_id: NodeId,
    /// The mesh (Raft group) this member serves.
    pub mesh: Option<String>,
    /// The group's cluster id (16 hex digits), made by its first leader;
    /// `None` until this member has applied it. A wiped and rebuilt cluster
    /// has another one; consistency tokens name it.
    pub cluster_id: Option<String>,
    /// What this member is doing.
    pub role: Role,
    /// The leader this member knows of.
    pub leader_id: Option<NodeId>,
    /// The leader's cluster address.
    pub leader_addr: Option<String>,
    /// Current Raft term.
    pub term: u64,
    /// Index of the last entry in this member's log.
    pub last_log_index: Option<u64>,
    /// Highest index this member knows committed (and may apply).
    pub committed_index: Option<u64>,
    /// Highest index applied to the session map.
    pub applied_index: Option<u64>,
    /// Highest index covered by this member's snapshot.
    pub snapshot_index: Option<u64>,
    /// Every member of the current configuration, by id.
    pub members: Vec<MemberStatus>,
    /// Sessions in this member's map (live or not yet expired by the leader).
    pub session_count: usize,
}

impl ClusterStatus {
    /// Builds the status from openraft's metrics.
    pub(crate) fn from_metrics(
        metrics: &RaftMetrics,
        mesh: Option<MeshTag>,
        cluster_id: u64,
        session_count: usize,
    ) -> Self {
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let is_leader = metrics.state == openraft::ServerState::Leader;
        let last_log_index = metrics.last_log_index;
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched_index = if !is_leader {
                    None
                } else if *id == metrics.id {
                    last_log_index
                } else {
                    metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(id).cloned())
                        .map(|log_id| log_id.map(|l| l.index).unwrap_or(0))
                };
                let lag = matched_index.map(|m| last_log_index.unwrap_or(0).saturating_sub(m));
                MemberStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    matched_index,
                    lag,
                }
            })
            .collect();
        let leader_addr = metrics
            .current_leader
            .and_then(|leader| membership.get_node(&leader))
            .map(|node| node.addr.clone());
        ClusterStatus {
            node_id: metrics.id,
            mesh: mesh.map(|m| m.to_string()),
            cluster_id: (cluster_id != 0).then(|| format!("{cluster_id:016x}")),
            role: metrics.state.into(),
            leader_id: metrics.current_leader,
            leader_addr,
            term: metrics.current_term,
            last_log_index,
            committed_index: metrics.local_committed.as_ref().map(|l| l.index),
            applied_index: metrics.last_applied.as_ref().map(|l| l.index),
            snapshot_index: metrics.snapshot.as_ref().map(|l| l.index),
            members,
            session_count,
        }
    }
}
