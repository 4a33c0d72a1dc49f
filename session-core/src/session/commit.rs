//! Saving a session: create, apply (with rotation and renewal), delete when
//! emptied, and the end-of-request finish the layer calls.
//!
//! Every store call here runs under the handle's io lock, so the saves of one
//! request are ordered; the state mutex is only held between awaits.

use std::mem;
use std::sync::Arc;

use tracing::Instrument as _;

use super::error::{Result, SessionError};
use super::state::merge;
use super::Session;
use crate::clock::UnixMillis;
use crate::id::SessionId;
use crate::record::{ChangeSet, NewSession, SessionData, SessionRecord};
use crate::store::{Committed, StoreError};
use crate::transport::ClientUpdate;

/// How many fresh ids to try when the store says one is taken. With 128
/// random bits a second try is already astronomically unlikely.
const ID_ATTEMPTS: usize = 4;

/// What the layer must do once the handler is done.
#[derive(Debug)]
pub(crate) struct Finish {
    /// Cookie/header update for the response.
    pub(crate) update: ClientUpdate,
    /// The final save failed: the response is replaced according to this.
    pub(crate) error: Option<SessionError>,
}

/// The write a commit decided on.
enum Plan {
    /// Store a new session with this data.
    Create {
        data: SessionData,
        expires_at: UnixMillis,
    },
    /// Delete the session `id`: the handler left it empty.
    Delete { id: SessionId },
    /// Apply `send` to the existing session `id`.
    Apply {
        id: SessionId,
        record: Arc<SessionRecord>,
        send: ChangeSet,
        rotate: bool,
        /// Only the layer's sliding renewal: failing it must not fail the request.
        renewal_only: bool,
    },
}

/// The pieces of state taken out for a write, to put back if it fails.
struct Taken {
    changes: ChangeSet,
    rotate: bool,
    requested_expiry: Option<UnixMillis>,
    expiry_touched: bool,
}

/// A fresh id for a new session (tagged with this node's mesh) or for a
/// rotated one (`rotating`: tagged with the old id's mesh, because the data
/// stays in the mesh that owns it, and the id must keep routing there even
/// when a node of another mesh served the login).
fn mint(session: &Session, rotating: Option<&SessionId>) -> Result<SessionId> {
    let mesh = match rotating {
        Some(old) => old.mesh(),
        None => session.inner.context.store.mesh_tag(),
    };
    SessionId::generate(mesh).map_err(|e| SessionError::Store(StoreError::Backend(e.to_string())))
}

impl Session {
    /// Called by the layer after the handler: the final save. Cheap when the
    /// handler never touched the session. `server_error`: the handler
    /// answered 5xx, so its unsaved changes are dropped (as tower-sessions
    /// does): a failing handler may have stopped halfway. Changes it saved
    /// explicitly ([`save`](Session::save), `destroy`) stand.
    pub(crate) async fn finish(&self, server_error: bool) -> Finish {
        {
            let mut state = self.inner.state.lock();
            if server_error {
                if state.has_changes() {
                    tracing::debug!("handler answered 5xx: session changes not saved");
                }
                state.changes = ChangeSet::default();
                state.rotate = false;
                state.requested_expiry = None;
                state.expiry_touched = false;
                return Finish {
                    update: state.client_update,
                    error: None,
                };
            }
            if !self.must_commit(&state) && state.client_update == ClientUpdate::Keep {
                return Finish {
                    update: ClientUpdate::Keep,
                    error: None,
                };
            }
        }
        let _io = self.inner.io.lock().await;
        let error = self.commit_locked().await.err();
        let update = self.inner.state.lock().client_update;
        Finish { update, error }
    }

    /// Whether a commit has anything to look at: the session was used, has
    /// changes, or the layer renews every session (`always_save`).
    fn must_commit(&self, state: &super::state::State) -> bool {
        state.loaded
            || state.has_changes()
            || (self.inner.context.always_save && self.inner.incoming.is_some())
    }

    /// Writes pending changes (and a due renewal). The caller holds the io lock.
    pub(super) async fn commit_locked(&self) -> Result<()> {
        {
            let mut state = self.inner.state.lock();
            if !self.must_commit(&state) {
                return Ok(());
            }
            if state.orphaned && state.has_changes() {
                // The session this request loaded is gone (see `orphaned`):
                // these changes have nowhere to go, and must not start a new
                // session that would replace the browser's newer cookie.
                state.changes = ChangeSet::default();
                state.rotate = false;
                state.requested_expiry = None;
                state.expiry_touched = false;
                return Err(StoreError::NotFound.into());
            }
        }
        // A clear() alone does not load; whether there is anything to clear
        // is only known now.
        self.load_locked().await?;
        let now = self.inner.context.clock.now();
        let Some((plan, taken)) = self.plan(now) else {
            return Ok(());
        };
        let result = match plan {
            Plan::Create { data, expires_at } => self.create(data, expires_at, now).await,
            Plan::Delete { id } => self.delete_emptied(id).await,
            Plan::Apply {
                id,
                record,
                send,
                rotate,
                renewal_only,
            } => {
                let result = self
                    .apply(id, &record, send, &taken.changes, rotate, now)
                    .await;
                if let (Err(error), true) = (&result, renewal_only) {
                    // The handler only read; a missed renewal is retried on a
                    // later request and must not turn a good read into a 503.
                    tracing::warn!(%error, "sliding renewal not written");
                    return Ok(());
                }
                result
            }
        };
        if result.is_err() {
            let mut state = self.inner.state.lock();
            let newer = mem::take(&mut state.changes);
            state.changes = merge(taken.changes, newer);
            state.rotate |= taken.rotate;
            state.requested_expiry = state.requested_expiry.or(taken.requested_expiry);
            state.expiry_touched |= taken.expiry_touched;
        }
        result
    }

    /// Decides what to write, taking the pending changes out of the state.
    fn plan(&self, now: UnixMillis) -> Option<(Plan, Taken)> {
        let context = &self.inner.context;
        let mut state = self.inner.state.lock();
        let emptied = state.is_empty();
        let taken = Taken {
            changes: mem::take(&mut state.changes),
            rotate: mem::take(&mut state.rotate),
            requested_expiry: state.requested_expiry.take(),
            expiry_touched: mem::take(&mut state.expiry_touched),
        };
        let plan = match state.current.clone() {
            // Clearing or removing from a session that was never stored
            // leaves nothing to store: no session is created for that.
            None if taken.changes.set.is_empty() => return None,
            None => Plan::Create {
                data: taken.changes.set.iter().collect(),
                expires_at: taken
                    .requested_expiry
                    .map_or(context.expiry.initial(now), |at| {
                        context.expiry.requested(now, at)
                    }),
            },
            // A session the handler emptied is deleted, not kept as an
            // empty record behind a cookie (as tower-sessions does).
            Some((id, _)) if emptied && !taken.changes.is_empty() => Plan::Delete { id },
            Some((id, record)) => {
                let data_changed = !taken.changes.is_empty() || taken.rotate;
                let handler_changed = data_changed || taken.expiry_touched;
                let expires_at = match taken.requested_expiry {
                    Some(at) => Some(context.expiry.requested(record.created_at, at)),
                    None => {
                        context
                            .expiry
                            .renewal(&record, now, handler_changed || context.always_save)
                    }
                };
                if !handler_changed && expires_at.is_none() {
                    return None;
                }
                // The one copy of the changes a write makes: `taken` keeps
                // them to put back on failure and to mirror on success.
                let send = ChangeSet {
                    clear: taken.changes.clear,
                    remove: taken.changes.remove.clone(),
                    set: taken.changes.set.clone(),
                    expires_at,
                    rotate_to: None,
                    size_limit: context.size_limit,
                    expected_version: state.expect_unchanged.then_some(record.version),
                };
                Plan::Apply {
                    id,
                    record,
                    send,
                    rotate: taken.rotate,
                    renewal_only: !data_changed && taken.requested_expiry.is_none(),
                }
            }
        };
        Some((plan, taken))
    }

    async fn create(
        &self,
        data: SessionData,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<()> {
        let context = &self.inner.context;
        let mut attempt = 0;
        let (id, committed) = loop {
            attempt += 1;
            let id = mint(self, None)?;
            let session = NewSession {
                data: data.clone(),
                created_at: now,
                expires_at,
                size_limit: context.size_limit,
            };
            let result = context
                .store
                .create(&id, session)
                .instrument(tracing::debug_span!("session_create", id = ?id))
                .await;
            match result {
                Err(StoreError::IdExists) if attempt < ID_ATTEMPTS => continue,
                Err(error) => return Err(error.into()),
                Ok(committed) => break (id, committed),
            }
        };
        self.inner.context.metrics.get().creates.increment(1);
        let record = SessionRecord {
            data,
            created_at: now,
            expires_at,
            version: committed.version,
        };
        self.saved(id, record, committed);
        Ok(())
    }

    /// Sends `send` to the store and mirrors `changes` (the same changes,
    /// as the handler made them) into this request's copy of the record.
    async fn apply(
        &self,
        id: SessionId,
        record: &SessionRecord,
        mut send: ChangeSet,
        changes: &ChangeSet,
        rotate: bool,
        now: UnixMillis,
    ) -> Result<()> {
        let store = &self.inner.context.store;
        let expires_at = send.expires_at;
        let mut attempt = 0;
        let (committed, saved_id) = loop {
            attempt += 1;
            let new_id = if rotate {
                Some(mint(self, Some(&id))?)
            } else {
                None
            };
            // Only a rotation is ever retried (its fresh id was taken), so
            // only then does an attempt need a copy of its own.
            let mut this = if rotate && attempt < ID_ATTEMPTS {
                send.clone()
            } else {
                mem::take(&mut send)
            };
            this.rotate_to = new_id;
            let result = store
                .apply(&id, this, now)
                .instrument(tracing::debug_span!("session_apply", id = ?id, rotate))
                .await;
            match result {
                Err(StoreError::IdExists) if rotate && attempt < ID_ATTEMPTS => continue,
                Err(StoreError::NotFound) => {
                    // Deleted, expired or rotated under us. A login racing
                    // this request (another tab, a parallel fetch) may have
                    // moved the session to a new id and already sent its
                    // cookie: removing or replacing the cookie here would
                    // log that user out, as the last response wins. So the
                    // cookie is left alone and the changes are dropped.
                    let mut state = self.inner.state.lock();
                    state.current = None;
                    state.orphaned = true;
                    return Err(StoreError::NotFound.into());
                }
                Err(error) => return Err(error.into()),
                Ok(committed) => break (committed, new_id.unwrap_or(id)),
            }
        };
        self.inner.context.metrics.get().writes.increment(1);
        // Mirror the write locally, so later reads in this request see it
        // without another load. The store did the checks; the handler's
        // change set carries none (no expected version, no size limit), and
        // the expiry is the one sent.
        let mut updated = record.clone();
        if updated.apply(changes, committed.version).is_ok() {
            updated.expires_at = expires_at.unwrap_or(record.expires_at);
            self.saved(saved_id, updated, committed);
        }
        Ok(())
    }

    /// Deletes `id` from the store (counted and traced); the one place the
    /// layer deletes, for logouts and for emptied sessions alike.
    pub(super) async fn delete_stored(&self, id: SessionId) -> Result<()> {
        self.inner
            .context
            .store
            .delete(&id)
            .instrument(tracing::debug_span!("session_delete", id = ?id))
            .await?;
        self.inner.context.metrics.get().deletes.increment(1);
        Ok(())
    }

    /// Deletes a session the handler emptied, and removes the cookie.
    async fn delete_emptied(&self, id: SessionId) -> Result<()> {
        self.delete_stored(id).await?;
        let mut state = self.inner.state.lock();
        state.current = None;
        state.token = crate::store::ConsistencyToken::NONE;
        state.client_update = ClientUpdate::Remove;
        Ok(())
    }

    /// Records a successful write in the state.
    fn saved(&self, id: SessionId, record: SessionRecord, committed: Committed) {
        let mut state = self.inner.state.lock();
        // A later write of the same history has a higher index; one of
        // another history (the session moved group) replaces it too.
        state.token = committed.token;
        state.client_update = ClientUpdate::Set {
            id,
            token: state.token,
            expires_at: record.expires_at,
            browser_session: self.inner.context.browser_session
                || state.expiry == Some(crate::expiry::Expiry::OnSessionEnd),
        };
        state.modified = true;
        state.current = Some((id, Arc::new(record)));
    }
}

#[cfg(test)]
mod tests;
