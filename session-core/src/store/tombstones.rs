//! Ids that were rotated away or deleted a moment ago.
//!
//! A browser sends requests in parallel. When one of them logs in (the
//! session moves to a new id) or out (the session is deleted), the others
//! may still be on their way with the old cookie. To the store such a
//! request looks like one for a session that never existed, and the layer
//! would answer it with a fresh session and a new cookie, or a removal; the
//! last response wins, so the user who just logged in would be logged out.
//! So a store remembers the ids it moved or deleted for a short window and
//! answers a load of one with [`StoreError::Superseded`](crate::StoreError):
//! the layer then leaves the client's cookie alone and starts nothing.
//!
//! The memory is advisory and bounded: entries older than the window are
//! purged, and past [`MAX_TOMBSTONES`] the oldest half is dropped (a request
//! racing one of those gets the ordinary "not found" answer).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::UnixMillis;
use crate::id::SessionId;

/// How long a moved or deleted id is remembered by default: longer than a
/// request may take in flight.
pub const SUPERSEDED_WINDOW: Duration = Duration::from_secs(30);

/// Most ids remembered at once.
pub const MAX_TOMBSTONES: usize = 1 << 16;

/// Recently moved or deleted ids, with the time each went away.
#[derive(Debug)]
pub struct Tombstones {
    /// Id -> time it was moved or deleted.
    entries: Mutex<HashMap<SessionId, UnixMillis>>,
    /// How long an entry counts, in milliseconds.
    window_ms: u64,
}

impl Default for Tombstones {
    fn default() -> Self {
        Self::new(SUPERSEDED_WINDOW)
    }
}

impl Tombstones {
    /// Remembers ids for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Records that `id` was moved or deleted at `at`.
    pub fn bury(&self, id: SessionId, at: UnixMillis) {
        let mut entries = self.entries.lock();
        entries.insert(id, at);
        if entries.len() > MAX_TOMBSTONES {
            let mut times: Vec<UnixMillis> = entries.values().copied().collect();
            let (_, median, _) = times.select_nth_unstable(MAX_TOMBSTONES / 2);
            let median = *median;
            entries.retain(|_, at| *at > median);
        }
    }

    /// Whether `id` was moved or deleted within the window before `now`.
    pub fn is_buried(&self, id: &SessionId, now: UnixMillis) -> bool {
        self.entries
            .lock()
            .get(id)
            .is_some_and(|at| at.saturating_add(self.window_ms) > now)
    }

    /// Forgets the entries older than the window at `now`.
    pub fn purge(&self, now: UnixMillis) {
        let window = self.window_ms;
        self.entries
            .lock()
            .retain(|_, at| at.saturating_add(window) > now);
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_remembered_for_the_window_only() {
        let graves = Tombstones::new(Duration::from_secs(30));
        let id = SessionId::generate(None).unwrap();
        assert!(!graves.is_buried(&id, 1_000));
        graves.bury(id, 1_000);
        assert!(graves.is_buried(&id, 1_000));
        assert!(graves.is_buried(&id, 30_999));
        assert!(!graves.is_buried(&id, 31_000));
        graves.purge(31_000);
        assert!(graves.is_empty());
    }

    #[test]
    fn memory_stays_bounded() {
        let graves = Tombstones::new(Duration::from_secs(3600));
        for at in 0..(MAX_TOMBSTONES as u64 + 10) {
            graves.bury(SessionId::generate(None).unwrap(), at);
        }
        assert!(graves.len() <= MAX_TOMBSTONES);
    }
}
