//! The storage contract: what the session layer needs from a store.
//!
//! The contract is shaped for a replicated store:
//!
//! - Stores apply [`ChangeSet`]s, not whole records, so concurrent requests that
//!   change different keys of one session both keep their writes.
//! - Every write returns a [`Committed`]: the record's new [`Version`] and a
//!   [`ConsistencyToken`]. The layer hands the token back to the client (in the
//!   cookie) and passes it to the next [`SessionStore::load`], so a replica that
//!   serves the read first catches up to that point (read-your-writes on any
//!   node). A single-node store may ignore tokens.
//! - A store that cannot answer *right now* (no quorum, no leader, a replica
//!   that cannot catch up in time) says [`StoreError::Unavailable`] with a
//!   retry hint; the layer turns that into `503 Service Unavailable` with
//!   `Retry-After`, never a success for a change that was not saved.
//!
//! Every store must pass the shared [`conformance`] suite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::id::{MeshTag, SessionId};
use crate::record::{ChangeSet, NewSession, SessionRecord};

pub mod conformance;
mod memory;
mod tombstones;

pub use memory::{MemoryStore, MemoryStoreConfig};
pub use tombstones::{Tombstones, MAX_TOMBSTONES, SUPERSEDED_WINDOW};

/// A record's version; for the Raft store, the log index of its last change.
pub type Version = u64;

/// A point in the store's history that a client has seen: for the Raft store,
/// a log index of one Raft group's history. [`ConsistencyToken::NONE`] asks
/// for nothing.
///
/// `history` names the history the index belongs to (for the Raft store, the
/// group's cluster id, made at initialization, so a rebuilt cluster or another
/// mesh has another one). A store ignores a token of a history that is not
/// its own instead of waiting for an index it may never reach; `0` means
/// "unknown history" (single-node stores, cookies from before histories).
/// Tokens of different histories are not comparable, so there is no `Ord`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ConsistencyToken {
    /// The history (Raft group and its incarnation) `index` belongs to.
    pub history: u64,
    /// The position in that history (for the Raft store, a log index).
    pub index: u64,
}

impl ConsistencyToken {
    /// No consistency requirement.
    pub const NONE: Self = Self {
        history: 0,
        index: 0,
    };

    /// The token for `index` of `history`.
    pub const fn new(history: u64, index: u64) -> Self {
        Self { history, index }
    }

    /// Whether this token asks for nothing.
    pub fn is_none(self) -> bool {
        self.index == 0
    }

    /// This token if it belongs to `history`, else [`ConsistencyToken::NONE`]:
    /// what a store of that history should wait for.
    pub fn within(self, history: u64) -> Self {
        if self.history == history {
            self
        } else {
            Self::NONE
        }
    }
}

/// What a successful write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    /// The record's new version (compare-and-set uses it).
    pub version: Version,
    /// Pass this to later loads to see this write (read-your-writes).
    pub token: ConsistencyToken,
}

/// Why a store call failed. Serde so that a replicated store can carry it
/// back from the node that applied the change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The session does not exist (never did, expired, or was deleted).
    #[error("session not found")]
    NotFound,
    /// The id chosen for a new or rotated session is taken; pick another.
    #[error("session id already in use")]
    IdExists,
    /// Compare-and-set failed: the session changed since it was loaded.
    #[error("session changed concurrently (now at version {current})")]
    VersionConflict {
        /// The record's version now.
        current: Version,
    },
    /// The session would exceed its size limit; nothing was written.
    #[error("session too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// Size the session would have had.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store cannot serve this now (no quorum, no leader, replica behind);
    /// nothing was written. Retrying later may succeed.
    #[error("session store unavailable: {reason}")]
    Unavailable {
        /// Suggested wait before retrying.
        retry_after: Duration,
        /// Human-readable cause, for logs.
        reason: String,
    },
    /// The store is broken in a way retrying will not fix (I/O, corruption).
    #[error("session store failure: {0}")]
    Backend(String),
    /// The session under this id was moved to a new id (a login) or deleted
    /// (a logout) a moment ago (see [`Tombstones`]): the request carrying it
    /// raced that change, and the client may already hold a newer cookie.
    /// Only [`SessionStore::load`] says this; stores that do not remember
    /// such ids answer "not found" instead. Last, to keep the wire form of
    /// the older variants.
    #[error("session moved or deleted moments ago")]
    Superseded,
}

impl StoreError {
    /// Shorthand for [`StoreError::Unavailable`].
    pub fn unavailable(retry_after: Duration, reason: impl Into<String>) -> Self {
        Self::Unavailable {
            retry_after,
            reason: reason.into(),
        }
    }
}

/// A session store. Implementations: [`MemoryStore`] (one node, tests) and
/// `session_raft::RaftStore` (replicated).
///
/// `now` arguments are Unix milliseconds stamped by the caller, so that a
/// replicated store applies the same time on every replica.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a live (unexpired at `now`) session. `token` is the newest point
    /// the client has seen; a replicated store must not answer from a state
    /// older than it (it waits, bounded, or fails with `Unavailable`).
    /// [`StoreError::Superseded`] if the id was moved or deleted moments ago
    /// (optional: `Ok(None)` is also correct).
    async fn load(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: crate::UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError>;

    /// Creates a session under `id`. Fails with [`StoreError::IdExists`] if the
    /// id is taken (the caller mints another and retries).
    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError>;

    /// Applies a change set to a live session atomically: all of it or none.
    /// [`StoreError::NotFound`] if the session is gone (or expired at `now`);
    /// [`StoreError::IdExists`] if `changes.rotate_to` is taken.
    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: crate::UnixMillis,
    ) -> Result<Committed, StoreError>;

    /// Deletes a session. Deleting a missing session succeeds.
    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError>;

    /// The mesh this store's node belongs to; new session ids carry it.
    fn mesh_tag(&self) -> Option<MeshTag> {
        None
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for Arc<S> {
    async fn load(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: crate::UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        (**self).load(id, token, now).await
    }
    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError> {
        (**self).create(id, session).await
    }
    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: crate::UnixMillis,
    ) -> Result<Committed, StoreError> {
        (**self).apply(id, changes, now).await
    }
    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError> {
        (**self).delete(id).await
    }
    fn mesh_tag(&self) -> Option<MeshTag> {
        (**self).mesh_tag()
    }
}
