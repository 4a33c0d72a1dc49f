//! Whether a [`NodeConfig`] is consistent and safe ([`ConfigError`] says
//! what is not), and the openraft configuration derived from it.

use session_core::MeshTag;

use super::{NodeConfig, MIN_RPC_BYTES};
use crate::types::NodeId;

/// Why a [`NodeConfig`] was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// More than one member and no secret.
    #[error("a multi-node cluster needs a cluster secret (or `insecure` set on purpose)")]
    NoSecret,
    /// A secret of no bytes.
    #[error("the cluster secret is empty")]
    EmptySecret,
    /// The static peer list leaves this node out.
    #[error("the peer list does not contain this node's id {0}")]
    NotAPeer(NodeId),
    /// Both a peer list and a member to join.
    #[error("set either a static peer list or a member to join, not both")]
    PeersAndJoin,
    /// The timeouts are out of order.
    #[error("need 0 < heartbeat_interval < election_timeout_min < election_timeout_max")]
    Timing,
    /// An in-memory member of a multi-node cluster, not set on purpose.
    #[error(
        "an in-memory member (no data directory) of a multi-node cluster forgets its vote and \
         log when it restarts, so it can vote twice in a term and lose acknowledged writes: give \
         it a data directory (or set `ephemeral_cluster` on purpose, for tests)"
    )]
    InMemoryMember,
    /// The read lease would end before the next heartbeat renews it.
    #[error("the read lease must be longer than the heartbeat interval")]
    LeaseTooShort,
    /// A setting that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// The RPC body limit cannot fit a cluster message.
    #[error("max_rpc_bytes {max_rpc_bytes} is below the {min} bytes a cluster message may need")]
    RpcLimitTooSmall {
        /// The setting.
        max_rpc_bytes: usize,
        /// The least it may be.
        min: usize,
    },
    /// A mesh directory without this node's own mesh tag.
    #[error("a mesh directory needs this node's mesh to be set")]
    NoMesh,
    /// This node's mesh is not in its mesh directory.
    #[error("this node's mesh {mesh} is not in the mesh directory ({directory})")]
    MeshNotInDirectory {
        /// This node's mesh.
        mesh: MeshTag,
        /// The directory, as text.
        directory: String,
    },
    /// openraft refused the derived configuration.
    #[error("{0}")]
    Raft(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl NodeConfig {
    /// Whether this member will be part of (or join) a cluster of more than one.
    pub(crate) fn is_multi_node(&self) -> bool {
        self.join.is_some() || self.peers.keys().any(|id| *id != self.node_id)
    }

    /// Checks the configuration as a whole.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.is_multi_node() && self.secret.is_none() && !self.insecure {
            return Err(ConfigError::NoSecret);
        }
        if matches!(&self.secret, Some(s) if s.is_empty()) {
            return Err(ConfigError::EmptySecret);
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.node_id) {
            return Err(ConfigError::NotAPeer(self.node_id));
        }
        if !self.peers.is_empty() && self.join.is_some() {
            return Err(ConfigError::PeersAndJoin);
        }
        if self.heartbeat_interval.is_zero()
            || self.election_timeout_min <= self.heartbeat_interval
            || self.election_timeout_max <= self.election_timeout_min
        {
            return Err(ConfigError::Timing);
        }
        if self.data_dir.is_none() && self.is_multi_node() && !self.ephemeral_cluster {
            return Err(ConfigError::InMemoryMember);
        }
        if self.effective_read_lease() <= self.heartbeat_interval {
            return Err(ConfigError::LeaseTooShort);
        }
        if self.expiry_clock_bound.is_zero() {
            return Err(ConfigError::Zero("expiry_clock_bound"));
        }
        if self.expiry_interval.is_zero() {
            return Err(ConfigError::Zero("expiry_interval"));
        }
        if self.snapshot_every == 0 {
            return Err(ConfigError::Zero("snapshot_every"));
        }
        // AppendEntries are split to fit the body limit, but no split makes
        // room for a single entry, and a body has some fixed overhead.
        if self.max_rpc_bytes < MIN_RPC_BYTES {
            return Err(ConfigError::RpcLimitTooSmall {
                max_rpc_bytes: self.max_rpc_bytes,
                min: MIN_RPC_BYTES,
            });
        }
        if let Some(directory) = &self.mesh_directory {
            // Without its own tag a node would mint untagged ids and could
            // not tell its own mesh's sessions from others'.
            let Some(mesh) = &self.mesh else {
                return Err(ConfigError::NoMesh);
            };
            if !directory.contains(mesh) {
                return Err(ConfigError::MeshNotInDirectory {
                    mesh: *mesh,
                    directory: directory.to_string(),
                });
            }
        }
        Ok(())
    }

    /// openraft's configuration derived from ours.
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, ConfigError> {
        let config = openraft::Config {
            cluster_name: "raft-sessions".into(),
            heartbeat_interval: self.heartbeat_interval.as_millis() as u64,
            election_timeout_min: self.election_timeout_min.as_millis() as u64,
            election_timeout_max: self.election_timeout_max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            // Keep a little log behind the snapshot so a briefly lagging
            // follower catches up from the log rather than a snapshot.
            max_in_snapshot_log_to_keep: (self.snapshot_every / 10).max(1),
            // A follower further behind than this gets a snapshot.
            replication_lag_threshold: self.snapshot_every.max(1),
            install_snapshot_timeout: 30_000,
            // A dead peer is retried quickly at first so that a restarted
            // member rejoins fast, but never more than twice a second.
            backoff: "50ms 100ms ...500ms".into(),
            // An ephemeral member that restarts comes back with an empty log;
            // the leader must then replicate from scratch instead of treating
            // the lost entries as a bug. (Such a member also forgot its vote:
            // ephemeral mode is for tests and demos, not production.)
            allow_log_reversion: Some(self.data_dir.is_none()),
            // A restarted leader must win an election again. openraft can let
            // it resume at once, but documents that as unsafe when the state
            // machine is not flushed on apply and the committed log id is not
            // fsync'd, which is our case (the map lives in memory, committed
            // is written without fsync): the resumed leader could serve
            // linearizable reads from a state machine behind the commit.
            enable_leader_restore: Some(false),
            // Hand entries to replication as soon as the log store's
            // `append` returns instead of at the end of the core's loop, so
            // that the leader's own flush overlaps sending them. Safe: a
            // leader counts itself in the commit quorum only once its own
            // flush is reported (openraft updates its own matching in
            // `handle_local_io`, from the IOFlushed callback, never on
            // submit), and a follower answers an append only after its
            // flush; so nothing is committed that a majority has not made
            // durable, whatever the log store flushes in the background.
            broadcast_submitted_on_append: Some(true),
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| ConfigError::Raft(Box::new(e)))
    }
}
