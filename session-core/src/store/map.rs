//! [`SessionMap`]: the sessions of one store in memory, for store writers.
//!
//! Both stores of this workspace keep their sessions in one of these:
//! [`MemoryStore`](crate::MemoryStore) writes it from request tasks, the Raft
//! state machine (`session_raft`) from its apply step, with the log index as
//! each record's version. The map is what the two share: records split over
//! shards, each a `RwLock<HashMap>`, so readers of different sessions rarely
//! meet on one lock; records are `Arc`s, so a read is a lookup and a
//! reference-count increment, and a write copies a record only while a reader
//! (or a snapshot) still holds it (`Arc::make_mut`); an exact count, checked
//! against the store's session limit; and the [`Tombstones`] of ids moved or
//! deleted a moment ago.
//!
//! The map reads no clock and draws no versions: times come as arguments
//! (the Raft store applies the leader's stamp on every replica), and each
//! write takes a `next_version` function, called once under the shard's
//! write lock, only when the write is going to happen (so that versions drawn
//! from a shared counter only ever grow per record).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::UnixMillis;
use crate::id::SessionId;
use crate::record::{ChangeSet, NewSession, SessionRecord};
use crate::store::{StoreError, Tombstones, Version};

/// The records of one shard.
type Shard = HashMap<SessionId, Arc<SessionRecord>>;

/// Sharded, copy-on-write session records with an exact count and the
/// tombstones of superseded ids.
///
/// ```
/// use session_core::store::SessionMap;
/// use session_core::{ChangeSet, NewSession, SessionData, SessionId, StoreError};
///
/// let map = SessionMap::new(64);
/// let id = SessionId::generate(None).unwrap();
/// let session = NewSession {
///     data: SessionData::new(),
///     created_at: 1_000,
///     expires_at: 2_000,
///     size_limit: 0,
/// };
/// // The version comes from the store: a counter, or the Raft log index.
/// assert_eq!(map.create(id, session, Some(10), || 1), Ok(1));
///
/// let mut changes = ChangeSet::default();
/// changes.set("user".into(), b"\"alice\"".to_vec());
/// let login = SessionId::generate(None).unwrap();
/// assert_eq!(map.rotate(&id, login, &changes, 1_500, || 2), Ok(2));
/// assert!(map.get(&id, 1_500).is_none());
/// assert!(map.is_superseded(&id, 1_500), "a request racing the login is told");
/// assert_eq!(map.get(&login, 1_500).unwrap().version, 2);
///
/// // Expired at `expires_at`: not served, removed by `expire`.
/// assert!(map.get(&login, 2_000).is_none());
/// assert_eq!(map.apply(&login, &changes, 2_000, || 3), Err(StoreError::NotFound));
/// assert_eq!(map.expire(2_000), 1);
/// assert!(map.is_empty());
/// ```
pub struct SessionMap {
    /// The records, split by the first random byte of their id.
    shards: Box<[RwLock<Shard>]>,
    /// Shard of each value of that byte (`byte % shards`), looked up rather
    /// than divided: the read path is only this, one lock and one clone.
    shard_of: [u8; 256],
    /// Number of records, live or expired and not yet removed: what the
    /// session limit counts. Changed only under a shard's write lock.
    count: AtomicUsize,
    /// Ids moved by a rotation or deleted moments ago (advisory: a snapshot
    /// does not carry them).
    tombstones: Tombstones,
}

/// Why [`SessionMap::create`] stored nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// The map holds `max_sessions` records already; each store words its
    /// own [`StoreError::Unavailable`] (and retry hint) for this.
    Full {
        /// The limit that was reached.
        max_sessions: usize,
    },
    /// The store's answer as it is: [`StoreError::IdExists`] (a live
    /// session has the id) or [`StoreError::TooLarge`].
    Refused(StoreError),
}

impl SessionMap {
    /// Most shards a map uses: one per value of an id's first random byte.
    pub const MAX_SHARDS: usize = 256;

    /// An empty map of `shards` shards (at least 1, at most
    /// [`Self::MAX_SHARDS`]).
    pub fn new(shards: usize) -> Self {
        let shards = shards.clamp(1, Self::MAX_SHARDS);
        let mut shard_of = [0u8; 256];
        for (byte, shard) in shard_of.iter_mut().enumerate() {
            // `byte % shards` < shards <= 256, so it fits a u8.
            *shard = (byte % shards) as u8;
        }
        Self {
            shards: (0..shards).map(|_| RwLock::new(Shard::new())).collect(),
            shard_of,
            count: AtomicUsize::new(0),
            tombstones: Tombstones::default(),
        }
    }

    #[inline]
    fn shard_index(&self, id: &SessionId) -> usize {
        usize::from(self.shard_of[usize::from(id.random_bytes()[0])])
    }

    #[inline]
    fn shard(&self, id: &SessionId) -> &RwLock<Shard> {
        &self.shards[self.shard_index(id)]
    }

    /// The session under `id`, unless missing or expired at `now`: one
    /// shard read lock and a reference-count increment.
    #[inline]
    pub fn get(&self, id: &SessionId, now: UnixMillis) -> Option<Arc<SessionRecord>> {
        self.shard(id)
            .read()
            .get(id)
            .filter(|record| !record.is_expired(now))
            .cloned()
    }

    /// Number of records, including expired ones not yet removed by
    /// [`Self::expire`].
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` was moved by [`Self::rotate`] or removed by a
    /// [`Self::delete`] with a time, within the tombstone window before
    /// `now` (see [`Tombstones`]).
    pub fn is_superseded(&self, id: &SessionId, now: UnixMillis) -> bool {
        self.tombstones.is_buried(id, now)
    }

    /// Whether any record has expired at `now` (one read-locked scan).
    pub fn any_expired(&self, now: UnixMillis) -> bool {
        self.shards
            .iter()
            .any(|shard| shard.read().values().any(|r| r.is_expired(now)))
    }

    /// Stores a new session under `id` with the version `next_version` gives.
    ///
    /// `session.created_at` decides whether a record already under `id` is
    /// live ([`StoreError::IdExists`]) or expired (then replaced, and the id
    /// is free again, as for every store). A create beyond `max_sessions`
    /// records is refused unless it replaces an expired one (expired records
    /// count until [`Self::expire`] removes them). Then the size limit
    /// ([`StoreError::TooLarge`]). Nothing changes on any error.
    pub fn create(
        &self,
        id: SessionId,
        session: NewSession,
        max_sessions: Option<usize>,
        next_version: impl FnOnce() -> Version,
    ) -> Result<Version, CreateError> {
        let now = session.created_at;
        let mut shard = self.shard(&id).write();
        let replaces_expired = match shard.get(&id) {
            Some(existing) if !existing.is_expired(now) => {
                return Err(CreateError::Refused(StoreError::IdExists))
            }
            Some(_) => true,
            None => false,
        };
        // With one writer (the Raft apply step) the count cannot change
        // meanwhile, so every replica decides the same; writers of other
        // shards (MemoryStore) may let a few creates past the limit at once.
        if let (Some(max_sessions), false) = (max_sessions, replaces_expired) {
            if self.len() >= max_sessions {
                return Err(CreateError::Full { max_sessions });
            }
        }
        let version = next_version();
        let record = session.into_record(version).map_err(CreateError::Refused)?;
        shard.insert(id, Arc::new(record));
        if !replaces_expired {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(version)
    }

    /// Applies `changes` to the live session under `id`, in place
    /// (`changes.rotate_to` is not looked at: see [`Self::rotate`]).
    /// [`StoreError::NotFound`] if it is missing or expired at `now`; the
    /// record's own refusals (version conflict, too large) change nothing.
    pub fn apply(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: UnixMillis,
        next_version: impl FnOnce() -> Version,
    ) -> Result<Version, StoreError> {
        let mut shard = self.shard(id).write();
        let record = match shard.get_mut(id) {
            Some(record) if !record.is_expired(now) => record,
            _ => return Err(StoreError::NotFound),
        };
        let version = next_version();
        Arc::make_mut(record).apply(changes, version)?;
        Ok(version)
    }

    /// Applies `changes` and moves the session from `id` to `to` (a login),
    /// leaving a tombstone on `id`. Both shards are locked, in index order so
    /// that two crossing rotations never deadlock, and so that no reader sees
    /// the session under both ids or under neither.
    ///
    /// [`StoreError::NotFound`] if `id` is missing or expired at `now`;
    /// [`StoreError::IdExists`] if a live session has `to` (`to == id`
    /// included); on any error nothing changes. An expired record under `to`
    /// is replaced.
    pub fn rotate(
        &self,
        id: &SessionId,
        to: SessionId,
        changes: &ChangeSet,
        now: UnixMillis,
        next_version: impl FnOnce() -> Version,
    ) -> Result<Version, StoreError> {
        let (from_index, to_index) = (self.shard_index(id), self.shard_index(&to));
        // Called once, in whichever lock order applies.
        let rotate = |from: &mut Shard, target: Option<&mut Shard>| {
            match from.get(id) {
                Some(record) if !record.is_expired(now) => {}
                _ => return Err(StoreError::NotFound),
            }
            let taken = |shard: &Shard| shard.get(&to).is_some_and(|r| !r.is_expired(now));
            if target.as_deref().map_or_else(|| taken(from), taken) {
                return Err(StoreError::IdExists);
            }
            let mut record = from.remove(id).ok_or(StoreError::NotFound)?;
            let version = next_version();
            if let Err(error) = Arc::make_mut(&mut record).apply(changes, version) {
                // Put the record back where it was: nothing changed.
                from.insert(*id, record);
                return Err(error);
            }
            let replaced = match target {
                Some(shard) => shard.insert(to, record),
                None => from.insert(to, record),
            };
            // While the shards are still locked: a reader never sees the old
            // id gone without its tombstone.
            self.tombstones.bury(*id, now);
            Ok((version, replaced.is_some()))
        };
        let (version, replaced_expired) = if from_index == to_index {
            rotate(&mut self.shards[from_index].write(), None)?
        } else if from_index < to_index {
            let mut from = self.shards[from_index].write();
            let mut target = self.shards[to_index].write();
            rotate(&mut from, Some(&mut target))?
        } else {
            let mut target = self.shards[to_index].write();
            let mut from = self.shards[from_index].write();
            rotate(&mut from, Some(&mut target))?
        };
        if replaced_expired {
            // The expired record under `to` is gone: one record fewer.
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(version)
    }

    /// Removes the session under `id`; whether there was one. A removal
    /// with a time (a logout) leaves a tombstone at that time.
    pub fn delete(&self, id: &SessionId, tombstone_at: Option<UnixMillis>) -> bool {
        let mut shard = self.shard(id).write();
        let removed = shard.remove(id).is_some();
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
            if let Some(at) = tombstone_at {
                self.tombstones.bury(*id, at);
            }
        }
        removed
    }

    /// Removes every record expired at `now` and forgets the tombstones
    /// older than their window; returns how many records were removed.
    pub fn expire(&self, now: UnixMillis) -> usize {
        self.tombstones.purge(now);
        let mut removed = 0;
        for shard in self.shards.iter() {
            // A read pass first: most sweeps find nothing, and must not
            // block readers with a write lock for nothing.
            if !shard.read().values().any(|r| r.is_expired(now)) {
                continue;
            }
            let mut shard = shard.write();
            let before = shard.len();
            shard.retain(|_, record| !record.is_expired(now));
            let gone = before - shard.len();
            self.count.fetch_sub(gone, Ordering::Relaxed);
            removed += gone;
        }
        removed
    }

    /// Calls `visit` with every record, expired or not, one shard at a time
    /// under that shard's read lock (so it sees one moment only if no write
    /// runs meanwhile).
    pub fn for_each(&self, mut visit: impl FnMut(&SessionId, &Arc<SessionRecord>)) {
        for shard in self.shards.iter() {
            for (id, record) in shard.read().iter() {
                visit(id, record);
            }
        }
    }

    /// Replaces every record with `records` (a snapshot install). The
    /// tombstones stay: they are about requests in flight, not contents.
    pub fn replace_all(&self, records: impl IntoIterator<Item = (SessionId, SessionRecord)>) {
        let mut fresh: Vec<Shard> = (0..self.shards.len()).map(|_| Shard::new()).collect();
        for (id, record) in records {
            fresh[self.shard_index(&id)].insert(id, Arc::new(record));
        }
        let mut count = 0;
        for (slot, shard) in self.shards.iter().zip(fresh) {
            count += shard.len();
            *slot.write() = shard;
        }
        self.count.store(count, Ordering::Relaxed);
    }
}

impl fmt::Debug for SessionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the shard table: 256 numbers that say nothing.
        f.debug_struct("SessionMap")
            .field("shards", &self.shards)
            .field("count", &self.count)
            .field("tombstones", &self.tombstones)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::new_session;

    fn id() -> SessionId {
        SessionId::generate(None).unwrap()
    }

    #[test]
    fn rotating_onto_an_expired_id_replaces_it_and_keeps_the_count_exact() {
        let map = SessionMap::new(1);
        let (old, stale) = (id(), id());
        map.create(old, new_session(0, 1_000, &[("a", b"1")]), None, || 1)
            .unwrap();
        map.create(stale, new_session(0, 100, &[]), None, || 2)
            .unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(
            map.rotate(&old, stale, &ChangeSet::default(), 100, || 3),
            Ok(3)
        );
        assert_eq!(map.len(), 1, "the expired record under the new id is gone");
        assert_eq!(map.get(&stale, 100).unwrap().data.len(), 1);
    }

    #[test]
    fn rotating_onto_a_live_id_or_its_own_changes_nothing() {
        let map = SessionMap::new(2);
        let (a, b) = (id(), id());
        map.create(a, new_session(0, 1_000, &[]), None, || 1)
            .unwrap();
        map.create(b, new_session(0, 1_000, &[]), None, || 2)
            .unwrap();
        let mut changes = ChangeSet::default();
        changes.set("x".into(), vec![1]);
        let drawn = std::cell::Cell::new(false);
        for to in [b, a] {
            let result = map.rotate(&a, to, &changes, 10, || {
                drawn.set(true);
                3
            });
            assert_eq!(result, Err(StoreError::IdExists));
        }
        assert!(!drawn.get(), "no version is drawn for a refused rotation");
        assert!(map.get(&a, 10).unwrap().data.is_empty());
        assert!(!map.is_superseded(&a, 10));
        assert_eq!(map.len(), 2);
    }
}
