//! The [`Session`] handle a handler works with.
//!
//! The API follows tower-sessions' `Session` (`get`, `insert`, `remove`,
//! the `*_value` forms, `clear`, `cycle_id`, `flush`, `set_expiry`, ...),
//! same names and meanings; what differs is listed in
//! `docs/coming-from-tower-sessions.md`. Underneath, the handle records a
//! [`ChangeSet`](crate::ChangeSet) and the layer sends only that, so
//! concurrent requests changing different keys of one session both keep
//! their writes.
//!
//! `values.rs` reads and writes values, `lifecycle.rs` handles id, end and
//! expiry, `commit.rs` saves, `state.rs` is the request's view.
//!
//! The handle is lazy: nothing is loaded until the handler first reads or
//! writes, the record is loaded once per request and cached, and nothing is
//! written when nothing changed.

mod commit;
mod error;
mod lifecycle;
mod metrics;
mod state;
mod values;

use std::sync::Arc;

use tracing::Instrument as _;

use crate::clock::Clock;
use crate::expiry::ExpiryPolicy;
use crate::id::SessionId;
use crate::store::{ConsistencyToken, SessionStore, StoreError};

pub(crate) use error::retry_after_secs;
use error::Result;
pub use error::{Result as SessionResult, SessionError};
pub(crate) use metrics::LazyMetrics;
use state::State;

/// What every session of one layer shares: the store and the rules.
pub(crate) struct Context {
    /// Where sessions live.
    pub(crate) store: Arc<dyn SessionStore>,
    /// Time source for expiry (manual in tests).
    pub(crate) clock: Clock,
    /// Idle timeout, absolute lifetime, renewal step.
    pub(crate) expiry: ExpiryPolicy,
    /// Largest session in bytes (0: none).
    pub(crate) size_limit: u32,
    /// Cookies have no Max-Age (the layer's `Expiry::OnSessionEnd`).
    pub(crate) browser_session: bool,
    /// Renew (write) every session a request carries, as tower-sessions'
    /// `with_always_save`.
    pub(crate) always_save: bool,
    /// Counters of store calls.
    pub(crate) metrics: LazyMetrics,
}

/// The current request's session. Cheap to clone (one `Arc`); clones share
/// state, so it can be handed to several tasks of the request.
///
/// Get it in axum handlers with the extractor (feature `axum`), or from the
/// request extensions in any Tower service.
#[derive(Clone)]
pub struct Session {
    /// Shared with every clone.
    inner: Arc<Inner>,
}

/// The shared part of a [`Session`].
struct Inner {
    /// Store and settings from the layer.
    context: Arc<Context>,
    /// The id the client presented (verified signature, not yet looked up).
    incoming: Option<SessionId>,
    /// The view of the session; never held across an await.
    state: parking_lot::Mutex<State>,
    /// Serialises store calls of this session (load once, ordered saves).
    io: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A handle for one request; `incoming` is the verified id and token the
    /// client sent, if any.
    pub(crate) fn new(
        context: Arc<Context>,
        incoming: Option<(SessionId, ConsistencyToken)>,
    ) -> Self {
        let state = State {
            token: incoming.map_or(ConsistencyToken::NONE, |(_, t)| t),
            ..State::default()
        };
        Self {
            inner: Arc::new(Inner {
                context,
                incoming: incoming.map(|(id, _)| id),
                state: parking_lot::Mutex::new(state),
                io: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Loads the incoming session once; later calls are free.
    async fn ensure_loaded(&self) -> Result<()> {
        if self.inner.state.lock().loaded {
            return Ok(());
        }
        let _io = self.inner.io.lock().await;
        self.load_locked().await
    }

    /// The load itself; the caller holds the io lock.
    async fn load_locked(&self) -> Result<()> {
        let token = {
            let state = self.inner.state.lock();
            if state.loaded {
                return Ok(());
            }
            state.token
        };
        let mut superseded = false;
        let record = match &self.inner.incoming {
            Some(id) => {
                let context = &self.inner.context;
                context.metrics.get().loads.increment(1);
                let loaded = context
                    .store
                    .load(id, token, context.clock.now())
                    .instrument(tracing::debug_span!("session_load", id = ?id))
                    .await;
                match loaded {
                    Ok(record) => record.map(|record| (*id, record)),
                    // Moved by a login or deleted by a logout while this
                    // request was on its way: the browser may hold the newer
                    // cookie already, so this request must neither replace
                    // nor remove it (see `orphaned`).
                    Err(StoreError::Superseded) => {
                        superseded = true;
                        None
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            None => None,
        };
        let mut state = self.inner.state.lock();
        state.loaded = true;
        if superseded {
            state.orphaned = true;
        }
        if record.is_none() {
            // Unknown, expired or destroyed: the token belonged to that
            // session's history; a fresh session must not inherit it (in a
            // cluster it may name another group's log).
            state.token = ConsistencyToken::NONE;
        }
        state.current = record;
        Ok(())
    }

    /// Loads the session now (once per request; later calls are free).
    /// Reads and writes load on their own; call it to see a load failure
    /// early, or before [`id`](Self::id) or
    /// [`expiry_date`](Self::expiry_date).
    pub async fn load(&self) -> Result<()> {
        self.ensure_loaded().await
    }

    /// The id of the stored session, once known: `None` before the session
    /// is loaded, for a new session not yet saved, and between
    /// [`cycle_id`](Self::cycle_id) and the save that gives the new id.
    pub fn id(&self) -> Option<SessionId> {
        let state = self.inner.state.lock();
        if state.rotate {
            return None;
        }
        state.current.as_ref().map(|(id, _)| *id)
    }

    /// Opts this request into compare-and-set: the final save applies only if
    /// the session is still at the version this request loaded. If another
    /// request changed it meanwhile, the save fails with
    /// [`StoreError::VersionConflict`](crate::StoreError::VersionConflict):
    /// from [`save`](Self::save) as an error, at the end of the request as a
    /// `409 Conflict` response that replaces the handler's.
    pub fn expect_unchanged(&self) {
        self.inner.state.lock().expect_unchanged = true;
    }

    /// Writes the pending changes now and returns the store's answer (for
    /// example a version conflict, or `Unavailable`), instead of leaving the
    /// save to the end of the request where failures replace the response.
    pub async fn save(&self) -> Result<()> {
        let _io = self.inner.io.lock().await;
        self.commit_locked().await
    }
}
