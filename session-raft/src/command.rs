//! The session commands carried by Raft log entries, and what applying one
//! returns.
//!
//! A command holds everything its application needs, including the time: the
//! proposer stamps `now` before proposing, so every replica applies the same
//! entry to the same effect without reading a clock.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use session_core::{ChangeSet, NewSession, SessionId, StoreError, UnixMillis, Version};

/// Retry hint of a create refused because the map is full: the same as
/// `MemoryStore`'s. Room appears when sessions are deleted or the leader's
/// expiry timer drops expired ones.
pub const FULL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One replicated change to the session map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a session; fails with [`StoreError::IdExists`] if a live session
    /// has the id. `session.created_at` is the time used for "live".
    ///
    /// If the map already holds `max_sessions` records (expired ones not yet
    /// dropped by an expire-before count too) and the id is not an expired
    /// record's, the create is refused with [`StoreError::Unavailable`]
    /// (retry after [`FULL_RETRY_AFTER`]), exactly as `MemoryStore` does.
    /// The limit travels in the entry, stamped by the proposing node from
    /// its configuration, so every replica decides the same however its own
    /// configuration differs.
    Create {
        /// Id of the new session.
        id: SessionId,
        /// Its initial contents.
        session: NewSession,
        /// Most records the map may hold after this create (`None`: no limit).
        max_sessions: Option<u64>,
    },
    /// Apply a change set (possibly rotating the id) to a live session.
    Apply {
        /// Session to change.
        id: SessionId,
        /// The changes.
        changes: ChangeSet,
        /// Time stamped by the proposer; decides whether the session is live.
        now: UnixMillis,
    },
    /// Delete a session; deleting a missing session succeeds.
    Delete {
        /// Session to delete.
        id: SessionId,
    },
    /// Drop every session whose `expires_at <= now` (the leader's expiry timer).
    ExpireBefore {
        /// Time stamped by the leader.
        now: UnixMillis,
    },
    /// Names this group's history: the first one applied sets the cluster id
    /// (random, proposed by the first leader that finds none), later ones
    /// change nothing. Consistency tokens and cluster calls carry the id, so
    /// a token or a member of another group or of an earlier incarnation
    /// (a wiped and rebuilt cluster) is told apart. Last, to keep the wire
    /// indexes of the older variants.
    InitCluster {
        /// The proposed id; never 0.
        cluster_id: u64,
    },
    /// Delete a session at a time stamped by the proposer (a logout); like
    /// [`Command::Delete`], and the id is remembered for a moment so that a
    /// request racing the logout is told the session went away (see
    /// `session_core::store::Tombstones`). Last, for the wire indexes.
    DeleteAt {
        /// Session to delete.
        id: SessionId,
        /// Time stamped by the proposer.
        now: UnixMillis,
    },
}

impl Command {
    /// The session this command is about, if it is about one.
    pub fn session_id(&self) -> Option<&SessionId> {
        match self {
            Command::Create { id, .. }
            | Command::Apply { id, .. }
            | Command::Delete { id }
            | Command::DeleteAt { id, .. } => Some(id),
            Command::ExpireBefore { .. } | Command::InitCluster { .. } => None,
        }
    }
}

/// Display is used by openraft's logging; ids are bearer secrets, so only their
/// shortened `Debug` form is printed, and never session data.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Create { id, .. } => write!(f, "create {id:?}"),
            Command::Apply { id, changes, now } => write!(
                f,
                "apply {id:?} at {now} (set {}, remove {}, clear {}, rotate {})",
                changes.set.len(),
                changes.remove.len(),
                changes.clear,
                changes.rotate_to.is_some()
            ),
            Command::Delete { id } => write!(f, "delete {id:?}"),
            Command::DeleteAt { id, now } => write!(f, "delete {id:?} at {now}"),
            Command::ExpireBefore { now } => write!(f, "expire-before {now}"),
            Command::InitCluster { cluster_id } => write!(f, "init-cluster {cluster_id:016x}"),
        }
    }
}

/// Result of applying one [`Command`]: on success the log index of the entry,
/// which is the record's new version and the write's consistency token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The outcome, decided identically on every replica.
    pub result: Result<Version, StoreError>,
}

impl CommandResponse {
    /// A success at log index `version`.
    pub fn ok(version: Version) -> Self {
        Self {
            result: Ok(version),
        }
    }

    /// A refusal.
    pub fn err(error: StoreError) -> Self {
        Self { result: Err(error) }
    }
}
