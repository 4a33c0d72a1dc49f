//! Why a store call fails ([`StoreError`]), and the record [`Version`] its
//! conflicts name.
//!
//! Imports nothing from the rest of the crate, so the record model
//! (`record.rs`, whose change sets fail with these errors) and the store
//! contract built on that model both depend on this file without depending
//! on each other.

use std::time::Duration;

/// A record's version; for the Raft store, the log index of its last change.
pub type Version = u64;

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
    /// (a logout) a moment ago (see [`Tombstones`](crate::store::Tombstones)):
    /// the request carrying it raced that change, and the client may already
    /// hold a newer cookie. Only [`SessionStore::load`](crate::SessionStore::load)
    /// says this; stores that do not remember such ids answer "not found"
    /// instead. Last, to keep the wire form of the older variants.
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
