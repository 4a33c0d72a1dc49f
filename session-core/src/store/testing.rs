//! Helpers for tests of stores and of what runs on them (feature
//! `conformance`): the [`NewSession`]s tests create, and [`FlakyStore`], a
//! store that fails on demand, for the error paths of the layer.
//!
//! ```
//! use session_core::store::testing::{live_session, FlakyStore};
//! use session_core::{SessionId, SessionStore, StoreError};
//! use std::sync::atomic::Ordering;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = FlakyStore::default();
//! store.fail_apply.store(true, Ordering::SeqCst);
//! let id = SessionId::generate(None).unwrap();
//! let refused = store.create(&id, live_session(&[("user", b"\"alice\"")])).await;
//! assert!(matches!(refused, Err(StoreError::Unavailable { .. })));
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::clock::{Clock, UnixMillis};
use crate::id::{MeshTag, SessionId};
use crate::record::{ChangeSet, NewSession, SessionData, SessionRecord};
use crate::store::{Committed, ConsistencyToken, MemoryStore, SessionStore, StoreError};

/// How long a [`live_session`] lives: an hour, far longer than any test, so
/// that no expiry timer reading the real clock removes it mid-test.
pub const LIFETIME_MS: UnixMillis = 60 * 60 * 1000;

/// Session data holding `pairs`.
pub fn session_data(pairs: &[(&str, &[u8])]) -> SessionData {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.to_vec()))
        .collect()
}

/// A new session holding `pairs`, created at `created_at` and expiring at
/// `expires_at`, with no size limit.
pub fn new_session(
    created_at: UnixMillis,
    expires_at: UnixMillis,
    pairs: &[(&str, &[u8])],
) -> NewSession {
    NewSession {
        data: session_data(pairs),
        created_at,
        expires_at,
        size_limit: 0,
    }
}

/// A new session holding `pairs`, created now by the system clock and live
/// for [`LIFETIME_MS`].
pub fn live_session(pairs: &[(&str, &[u8])]) -> NewSession {
    let now = Clock::system().now();
    new_session(now, now + LIFETIME_MS, pairs)
}

/// A [`MemoryStore`] that fails on command, to test what callers do when a
/// store cannot answer. The switches and the mesh can be changed at any time,
/// from any task.
#[derive(Debug, Default)]
pub struct FlakyStore {
    /// The store that answers while nothing fails; tests read it directly.
    pub inner: MemoryStore,
    /// While set, creates and change sets fail with
    /// [`StoreError::Unavailable`] (deletes still succeed).
    pub fail_apply: AtomicBool,
    /// While set, loads fail with [`StoreError::Unavailable`].
    pub fail_load: AtomicBool,
    /// This many of the next change sets that rotate the id fail with
    /// [`StoreError::IdExists`], as if each fresh id were taken.
    pub taken_rotations: AtomicUsize,
    /// The mesh this store reports (a test switches it to play a node of
    /// another mesh serving the same data).
    pub mesh: Mutex<Option<MeshTag>>,
}

/// What a failing call answers: as a store without quorum would, with a
/// retry hint that is not a whole number of seconds (the layer rounds up).
fn unavailable() -> StoreError {
    StoreError::unavailable(Duration::from_millis(1_500), "no quorum (test)")
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn load(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        if self.fail_load.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.inner.load(id, token, now).await
    }

    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError> {
        if self.fail_apply.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.inner.create(id, session).await
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        if self.fail_apply.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        let taken = changes.rotate_to.is_some()
            && self
                .taken_rotations
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if taken {
            return Err(StoreError::IdExists);
        }
        self.inner.apply(id, changes, now).await
    }

    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError> {
        self.inner.delete(id).await
    }

    fn mesh_tag(&self) -> Option<MeshTag> {
        *self.mesh.lock()
    }
}
