//! A session's life as a whole: new id on login (`cycle_id`), the end on
//! logout (`destroy`, tower-sessions' `flush` and `delete`), and when it
//! expires (`set_expiry`, `expiry`, `expiry_date`, `expiry_age`).

use super::error::Result;
use super::state::State;
use super::Session;
use crate::clock::UnixMillis;
use crate::expiry::{date_time, std_duration, unix_millis, Expiry};
use crate::store::ConsistencyToken;
use crate::transport::ClientUpdate;

impl Session {
    /// Gives the session a new id, keeping its data. Call it on login (and
    /// any privilege change) so that an id an attacker planted or saw before
    /// is worthless afterwards. The move happens at save time, together with
    /// the request's other changes; a new session gets a fresh id anyway.
    ///
    /// From this call until the save, [`id`](Self::id) is `None`: the old id
    /// is on its way out and the new one does not exist yet (as for a new
    /// session before its first save). Call [`save`](Self::save) first if
    /// the handler needs the new id.
    pub async fn cycle_id(&self) -> Result<()> {
        self.ensure_loaded().await?;
        let mut state = self.inner.state.lock();
        if state.current.is_some() {
            state.rotate = true;
            state.modified = true;
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
        if let Some(id) = id {
            self.delete_stored(id).await?;
        }
        let mut state = self.inner.state.lock();
        let had_client_state = id.is_some() || state.client_update != ClientUpdate::Keep;
        // The session is gone, and with it the point in the store's history
        // the client had seen: a session made later in this request starts
        // from its own write's token, never the old session's.
        *state = State {
            loaded: true,
            token: ConsistencyToken::NONE,
            modified: true,
            ..State::default()
        };
        if had_client_state {
            state.client_update = ClientUpdate::Remove;
        }
        Ok(())
    }

    /// tower-sessions' name for [`destroy`](Self::destroy): removes all data,
    /// deletes the session from the store and removes the cookie.
    pub async fn flush(&self) -> Result<()> {
        self.destroy().await
    }

    /// Deletes the session from the store; here the same as
    /// [`destroy`](Self::destroy).
    ///
    /// tower-sessions' `delete` leaves the handle's data in place, and a
    /// later save writes it back under the deleted id: a deleted id comes
    /// back to life. Ids here are only ever reused by the store that minted
    /// them, never revived, so `delete` also forgets the data and the id.
    pub async fn delete(&self) -> Result<()> {
        self.destroy().await
    }

    /// Sets when this session ends, as tower-sessions' `set_expiry`:
    ///
    /// - `Some(Expiry::AtDateTime(t))`: at `t` (for example a long
    ///   "remember me"), capped by the layer's absolute lifetime. Later
    ///   requests still renew by the idle timeout, but never shorten a
    ///   longer deadline.
    /// - `Some(Expiry::OnInactivity(d))`: `d` from now, renewed by the
    ///   layer's idle timeout afterwards.
    /// - `Some(Expiry::OnSessionEnd)`: this response's cookie has no
    ///   `Max-Age` (the browser drops it when it closes); the store still
    ///   ends the session after the idle timeout.
    /// - `None`: the layer's settings.
    pub fn set_expiry(&self, expiry: Option<Expiry>) {
        let now = self.inner.context.clock.now();
        let requested =
            match expiry {
                Some(Expiry::AtDateTime(at)) => Some(unix_millis(at)),
                Some(Expiry::OnInactivity(idle)) => Some(now.saturating_add(
                    u64::try_from(std_duration(idle).as_millis()).unwrap_or(u64::MAX),
                )),
                Some(Expiry::OnSessionEnd) | None => None,
            };
        let mut state = self.inner.state.lock();
        state.requested_expiry = requested;
        state.expiry = expiry;
        state.expiry_touched = true;
        state.modified = true;
    }

    /// What [`set_expiry`](Self::set_expiry) set in this request (`None`:
    /// the layer's settings apply).
    pub fn expiry(&self) -> Option<Expiry> {
        self.inner.state.lock().expiry
    }

    /// When the session will end if nothing else happens: its deadline after
    /// this request's save. For a session not loaded yet (or new), the
    /// deadline a new session would get now; call [`load`](Self::load) first
    /// to see a stored session's.
    pub fn expiry_date(&self) -> time::OffsetDateTime {
        date_time(self.expires_at())
    }

    /// How long until [`expiry_date`](Self::expiry_date) (zero if past).
    pub fn expiry_age(&self) -> time::Duration {
        let now = self.inner.context.clock.now();
        let left = self.expires_at().saturating_sub(now);
        time::Duration::milliseconds(i64::try_from(left).unwrap_or(i64::MAX))
    }

    /// The deadline behind [`expiry_date`](Self::expiry_date), in Unix ms.
    fn expires_at(&self) -> UnixMillis {
        let context = &self.inner.context;
        let now = context.clock.now();
        let state = self.inner.state.lock();
        let created_at = state.current.as_ref().map_or(now, |(_, r)| r.created_at);
        if let Some(at) = state.requested_expiry {
            return context.expiry.requested(created_at, at);
        }
        match &state.current {
            Some((_, record)) => context
                .expiry
                .renewal(record, now, state.has_changes() || context.always_save)
                .unwrap_or(record.expires_at),
            None => context.expiry.initial(now),
        }
    }

    /// Whether this request changed the session: recorded a change (an
    /// insert of the value already held is none), saved one, rotated the id
    /// or deleted the session. Reads are not changes.
    pub fn is_modified(&self) -> bool {
        self.inner.state.lock().modified
    }
}
