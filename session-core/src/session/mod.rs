//! The [`Session`] handle a handler works with.
//!
//! The API follows tower-sessions (`get`, `insert`, `remove`, `clear`,
//! `cycle_id`, ...) so that moving over is mostly a change of imports. What
//! differs underneath: the handle records a [`ChangeSet`](crate::ChangeSet)
//! and the layer sends only that, so concurrent requests changing different
//! keys of one session both keep their writes.
//!
//! The handle is lazy: nothing is loaded until the handler first reads or
//! writes, the record is loaded once per request and cached, and nothing is
//! written when nothing changed.

mod commit;
mod error;
mod state;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::expiry::ExpiryPolicy;
use crate::id::SessionId;
use crate::store::{ConsistencyToken, SessionStore};

pub(crate) use error::retry_after_secs;
use error::Result;
pub use error::{Result as SessionResult, SessionError};
pub(crate) use state::ClientUpdate;
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
}

/// How many fresh ids to try when the store says one is taken. With 128
/// random bits a second try is already astronomically unlikely.
const ID_ATTEMPTS: usize = 4;

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

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(bincode::serde::decode_from_slice(bytes, bincode::config::standard())?.0)
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
        let record = match &self.inner.incoming {
            Some(id) => {
                let context = &self.inner.context;
                metrics::counter!("session_loads_total").increment(1);
                context
                    .store
                    .load(id, token, context.clock.now())
                    .instrument(tracing::debug_span!("session_load", id = ?id))
                    .await?
                    .map(|record| (*id, record))
            }
            None => None,
        };
        let mut state = self.inner.state.lock();
        state.loaded = true;
        state.current = record;
        Ok(())
    }

    /// The value under `key`, decoded as `T`; `None` if absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.ensure_loaded().await?;
        let state = self.inner.state.lock();
        state.value(key).map(decode).transpose()
    }

    /// Sets `key` to `value` (saved at the end of the request, or by
    /// [`save`](Self::save)). Fails with [`SessionError::TooLarge`] if the
    /// session would exceed the layer's size limit; nothing is recorded then.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        let bytes = encode(&value)?;
        self.ensure_loaded().await?;
        let mut state = self.inner.state.lock();
        let limit = self.inner.context.size_limit as usize;
        let size = state.size_with(key, bytes.len());
        if limit > 0 && size > limit {
            return Err(SessionError::TooLarge { size, limit });
        }
        state.changes.set(key.to_owned(), bytes);
        Ok(())
    }

    /// Removes `key`, returning its value decoded as `T`. The key is removed
    /// even if decoding fails (the error is still returned).
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.ensure_loaded().await?;
        let mut state = self.inner.state.lock();
        let Some(old) = state.value(key).map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        state.changes.remove(key);
        decode(&old).map(Some)
    }

    /// Removes every key (the session itself and its id stay).
    pub async fn clear(&self) {
        // No load needed: a clear means the same whatever was stored. The
        // layer loads at the end if it has to (to know whether to write).
        self.inner.state.lock().changes.clear();
    }

    /// Whether `key` is set.
    pub async fn contains_key(&self, key: &str) -> Result<bool> {
        self.ensure_loaded().await?;
        Ok(self.inner.state.lock().value(key).is_some())
    }

    /// Whether the session holds no keys (a new session is empty).
    pub async fn is_empty(&self) -> Result<bool> {
        self.ensure_loaded().await?;
        Ok(self.inner.state.lock().is_empty())
    }

    /// The id of the stored session, once known: `None` before the session
    /// is loaded or for a new session not yet saved. After
    /// [`cycle_id`](Self::cycle_id) it is the new id only once saved.
    pub fn id(&self) -> Option<SessionId> {
        self.inner.state.lock().current.as_ref().map(|(id, _)| *id)
    }

    /// Gives the session a new id, keeping its data. Call it on login (and
    /// any privilege change) so that an id an attacker planted or saw before
    /// is worthless afterwards. The move happens at save time, together with
    /// the request's other changes; a new session gets a fresh id anyway.
    pub async fn cycle_id(&self) -> Result<()> {
        self.ensure_loaded().await?;
        let mut state = self.inner.state.lock();
        if state.current.is_some() {
            state.rotate = true;
        }
        Ok(())
    }

    /// Deletes the session from the store now and removes the client's
    /// cookie (logout). Values inserted afterwards start a new session with a
    /// new id.
    pub async fn destroy(&self) -> Result<()> {
        let _io = self.inner.io.lock().await;
        let id = {
            let state = self.inner.state.lock();
            if state.loaded {
                state.current.as_ref().map(|(id, _)| *id)
            } else {
                self.inner.incoming
            }
        };
        let token = match id {
            Some(id) => {
                let committed = self
                    .inner
                    .context
                    .store
                    .delete(&id)
                    .instrument(tracing::debug_span!("session_delete", id = ?id))
                    .await?;
                metrics::counter!("session_deletes_total").increment(1);
                Some(committed.token)
            }
            None => None,
        };
        let mut state = self.inner.state.lock();
        let had_client_state = id.is_some() || state.client_update != ClientUpdate::Keep;
        *state = State {
            loaded: true,
            token: token.unwrap_or(state.token),
            ..State::default()
        };
        if had_client_state {
            state.client_update = ClientUpdate::Remove;
        }
        Ok(())
    }

    /// Sets the session to expire `expires_in` from now (for example a long
    /// "remember me"), capped by the layer's absolute lifetime. Later
    /// requests still renew by the idle timeout, but never shorten a longer
    /// deadline.
    pub fn set_expiry(&self, expires_in: Duration) {
        let at = self
            .inner
            .context
            .clock
            .now()
            .saturating_add(u64::try_from(expires_in.as_millis()).unwrap_or(u64::MAX));
        self.inner.state.lock().requested_expiry = Some(at);
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
