//! The [`SessionStore`] trait: the calls the session layer makes to a store,
//! with the promises each must keep (checked by the conformance suite).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::UnixMillis;
use crate::id::{MeshTag, SessionId};
use crate::record::{ChangeSet, NewSession, SessionRecord};
use crate::store::{Committed, ConsistencyToken, StoreError};

/// A session store. Implementations: [`MemoryStore`](crate::MemoryStore) (one node, tests) and
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
        now: UnixMillis,
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
        now: UnixMillis,
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
        now: UnixMillis,
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
        now: UnixMillis,
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
