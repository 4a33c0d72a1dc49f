//! The replicated session map: sharded for concurrent reads, written only by
//! the state machine's apply step.
//!
//! Readers ([`SessionReader`]) take one shard's read lock for one lookup, so
//! request handlers on many threads do not contend with each other, and only
//! briefly with the single writer. Records are `Arc`s: a read hands out a
//! shared pointer, and the writer changes a record copy-on-write
//! (`Arc::make_mut`), so a record being read or captured by a snapshot is never
//! mutated under its holder and is only copied when actually shared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use session_core::store::Tombstones;
use session_core::{
    ChangeSet, NewSession, SessionId, SessionRecord, StoreError, UnixMillis, Version,
};
use tokio::sync::watch;

use crate::command::{Command, CommandResponse, FULL_RETRY_AFTER};

/// Number of shards; a power of two so that the shard is a mask of the id.
const SHARD_COUNT: usize = 64;

type Shard = HashMap<SessionId, Arc<SessionRecord>>;

/// State shared by the state machine (the only writer) and its readers.
#[derive(Debug)]
pub(crate) struct SessionMap {
    shards: Box<[RwLock<Shard>]>,
    /// Number of records, kept exactly by the single writer.
    count: AtomicUsize,
    /// Log index of the last applied entry (0 before any).
    applied: watch::Sender<u64>,
    /// This group's cluster id (0 until an [`Command::InitCluster`] is
    /// applied); see [`GroupFacts`].
    cluster_id: AtomicU64,
    /// Newest time a committed create or change carried; see [`GroupFacts`].
    newest_write_time: AtomicU64,
    /// Ids moved by a rotation or deleted moments ago, so that a load racing
    /// a login or logout is told so (advisory: not in snapshots).
    tombstones: Tombstones,
}

/// What the state machine knows of its group besides the sessions; part of
/// every snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct GroupFacts {
    /// The group's cluster id, 0 while unknown.
    pub(crate) cluster_id: u64,
    /// Newest `now` of a committed change or `created_at` of a committed
    /// create: the group's own notion of "now", as stamped by whichever
    /// members proposed writes. The leader's expiry stamp is bounded by it
    /// (see `NodeConfig::with_expiry_clock_bound`).
    pub(crate) newest_write_time: UnixMillis,
}

impl SessionMap {
    pub(crate) fn new() -> Self {
        let shards = (0..SHARD_COUNT)
            .map(|_| RwLock::new(Shard::new()))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            shards,
            count: AtomicUsize::new(0),
            applied: watch::Sender::new(0),
            cluster_id: AtomicU64::new(0),
            newest_write_time: AtomicU64::new(0),
            tombstones: Tombstones::default(),
        }
    }

    /// The group facts now.
    pub(crate) fn facts(&self) -> GroupFacts {
        GroupFacts {
            cluster_id: self.cluster_id.load(Ordering::Acquire),
            newest_write_time: self.newest_write_time.load(Ordering::Relaxed),
        }
    }

    /// Removes a session; one deleted at a known time (a logout) leaves a
    /// tombstone.
    fn delete(&self, id: &SessionId, at: Option<UnixMillis>) {
        let mut shard = self.shard(id).write();
        if shard.remove(id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            if let Some(at) = at {
                self.tombstones.bury(*id, at);
            }
        }
    }

    fn saw_write_time(&self, at: UnixMillis) {
        self.newest_write_time.fetch_max(at, Ordering::Relaxed);
    }

    /// Ids are 128 random bits, so their first bytes spread evenly over shards.
    fn shard_index(id: &SessionId) -> usize {
        let bytes = id.random_bytes();
        (usize::from(bytes[0]) | (usize::from(bytes[1]) << 8)) & (SHARD_COUNT - 1)
    }

    fn shard(&self, id: &SessionId) -> &RwLock<Shard> {
        &self.shards[Self::shard_index(id)]
    }

    /// Publishes `index` as applied, waking token waiters.
    pub(crate) fn publish_applied(&self, index: u64) {
        self.applied.send_if_modified(|current| {
            if *current == index {
                false
            } else {
                *current = index;
                true
            }
        });
    }

    /// Applies one command at log index `index`. Deterministic: reads no
    /// clock and no randomness, only the command and the map.
    /// Takes the command by value: the entry is ours once applied, so a new
    /// session's data moves into the map without a copy.
    pub(crate) fn apply_command(&self, command: Command, index: u64) -> CommandResponse {
        let result = match command {
            Command::Create {
                id,
                session,
                max_sessions,
            } => {
                self.saw_write_time(session.created_at);
                self.create(&id, session, max_sessions, index)
            }
            Command::Apply { id, changes, now } => {
                self.saw_write_time(now);
                self.change(&id, &changes, now, index)
            }
            Command::Delete { id } => {
                self.delete(&id, None);
                Ok(index)
            }
            Command::DeleteAt { id, now } => {
                self.delete(&id, Some(now));
                Ok(index)
            }
            Command::ExpireBefore { now } => {
                self.expire_before(now);
                self.tombstones.purge(now);
                Ok(index)
            }
            Command::InitCluster { cluster_id } => {
                // First one wins: two leaders may each have proposed one.
                let _ = self.cluster_id.compare_exchange(
                    0,
                    cluster_id,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                Ok(index)
            }
        };
        CommandResponse { result }
    }

    fn create(
        &self,
        id: &SessionId,
        session: NewSession,
        max_sessions: Option<u64>,
        index: u64,
    ) -> Result<Version, StoreError> {
        // The creation time is the proposer's clock and decides whether an old
        // record under this id still counts as live.
        let now = session.created_at;
        let mut shard = self.shard(id).write();
        let replaced = match shard.get(id) {
            Some(existing) if !existing.is_expired(now) => return Err(StoreError::IdExists),
            Some(_) => true,
            None => false,
        };
        // Only this (single) writer changes the count, so the check cannot
        // race; it depends on the entry and the map alone, hence is the same
        // on every replica. Reusing an expired record's id adds no record.
        if let (Some(max), false) = (max_sessions, replaced) {
            if self.count.load(Ordering::Relaxed) as u64 >= max {
                return Err(StoreError::unavailable(
                    FULL_RETRY_AFTER,
                    format!("session store is full ({max} sessions)"),
                ));
            }
        }
        let record = session.into_record(index)?;
        shard.insert(*id, Arc::new(record));
        if !replaced {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(index)
    }

    fn change(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: UnixMillis,
        index: u64,
    ) -> Result<Version, StoreError> {
        match changes.rotate_to {
            Some(new_id) if new_id != *id => {
                self.change_and_rotate(id, new_id, changes, now, index)
            }
            _ => {
                let mut shard = self.shard(id).write();
                let record = match shard.get_mut(id) {
                    Some(record) if !record.is_expired(now) => record,
                    _ => return Err(StoreError::NotFound),
                };
                Arc::make_mut(record).apply(changes, index)?;
                Ok(index)
            }
        }
    }

    /// Applies `changes` and moves the record from `old_id` to `new_id`, with
    /// both shards locked (in index order, so never deadlocking) so that no
    /// reader sees the session under both ids or under neither.
    fn change_and_rotate(
        &self,
        old_id: &SessionId,
        new_id: SessionId,
        changes: &ChangeSet,
        now: UnixMillis,
        index: u64,
    ) -> Result<Version, StoreError> {
        let (old_index, new_index) = (Self::shard_index(old_id), Self::shard_index(&new_id));
        let rotate = |old_shard: &mut Shard, new_shard: Option<&mut Shard>| {
            match old_shard.get(old_id) {
                Some(record) if !record.is_expired(now) => {}
                _ => return Err(StoreError::NotFound),
            }
            let taken = |shard: &Shard| shard.get(&new_id).is_some_and(|r| !r.is_expired(now));
            let target_taken = match &new_shard {
                Some(shard) => taken(shard),
                None => taken(old_shard),
            };
            if target_taken {
                return Err(StoreError::IdExists);
            }
            let mut record = old_shard.remove(old_id).ok_or(StoreError::NotFound)?;
            if let Err(error) = Arc::make_mut(&mut record).apply(changes, index) {
                // Nothing changed: put the record back where it was.
                old_shard.insert(*old_id, record);
                return Err(error);
            }
            let replaced = match new_shard {
                Some(shard) => shard.insert(new_id, record),
                None => old_shard.insert(new_id, record),
            };
            // While the shards are still locked: a reader never sees the old
            // id gone without its tombstone.
            self.tombstones.bury(*old_id, now);
            Ok(replaced.is_some())
        };
        let replaced_expired = if old_index == new_index {
            let mut shard = self.shards[old_index].write();
            rotate(&mut shard, None)?
        } else if old_index < new_index {
            let mut old_shard = self.shards[old_index].write();
            let mut new_shard = self.shards[new_index].write();
            rotate(&mut old_shard, Some(&mut new_shard))?
        } else {
            let mut new_shard = self.shards[new_index].write();
            let mut old_shard = self.shards[old_index].write();
            rotate(&mut old_shard, Some(&mut new_shard))?
        };
        if replaced_expired {
            // An expired record under the new id was overwritten: one fewer.
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(index)
    }

    fn expire_before(&self, now: UnixMillis) {
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let before = shard.len();
            shard.retain(|_, record| !record.is_expired(now));
            self.count
                .fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }

    /// Every record, as shared pointers: a consistent view when the caller
    /// holds the writer's `&mut` (no apply can run meanwhile).
    pub(crate) fn capture(&self) -> Vec<(SessionId, Arc<SessionRecord>)> {
        let mut all = Vec::with_capacity(self.count.load(Ordering::Relaxed));
        for shard in self.shards.iter() {
            let shard = shard.read();
            all.extend(shard.iter().map(|(id, record)| (*id, Arc::clone(record))));
        }
        all
    }

    /// Replaces the whole contents (snapshot install).
    pub(crate) fn replace_all(&self, records: Vec<(SessionId, SessionRecord)>, facts: GroupFacts) {
        self.cluster_id.store(facts.cluster_id, Ordering::Release);
        self.newest_write_time
            .store(facts.newest_write_time, Ordering::Relaxed);
        let mut fresh: Vec<Shard> = (0..SHARD_COUNT).map(|_| Shard::new()).collect();
        for (id, record) in records {
            fresh[Self::shard_index(&id)].insert(id, Arc::new(record));
        }
        let mut count = 0;
        for (slot, shard) in self.shards.iter().zip(fresh) {
            count += shard.len();
            *slot.write() = shard;
        }
        self.count.store(count, Ordering::Relaxed);
    }
}

/// A cheap, clonable, read-only handle onto the state machine's session map.
///
/// Obtained with [`crate::StateMachineStore::reader`]; it stays valid for the
/// life of the process and sees every apply and snapshot install.
#[derive(Debug, Clone)]
pub struct SessionReader {
    map: Arc<SessionMap>,
}

impl SessionReader {
    pub(crate) fn new(map: Arc<SessionMap>) -> Self {
        Self { map }
    }

    /// The session under `id`, unless missing or expired at `now`.
    pub fn get(&self, id: &SessionId, now: UnixMillis) -> Option<Arc<SessionRecord>> {
        let shard = self.map.shard(id).read();
        shard
            .get(id)
            .filter(|record| !record.is_expired(now))
            .cloned()
    }

    /// Number of records held, including expired ones not yet dropped by an
    /// expire-before command.
    pub fn session_count(&self) -> usize {
        self.map.count.load(Ordering::Relaxed)
    }

    /// Whether any record has expired at `now`. The leader's expiry timer
    /// asks this first so that an idle cluster does not grow its log with
    /// expire-before entries that would drop nothing. One read-locked scan.
    pub fn any_expired(&self, now: UnixMillis) -> bool {
        self.map
            .shards
            .iter()
            .any(|shard| shard.read().values().any(|r| r.is_expired(now)))
    }

    /// Log index of the last applied entry (0 before any). A write whose
    /// consistency token is `<=` this is visible to [`Self::get`].
    pub fn applied_index(&self) -> u64 {
        *self.map.applied.borrow()
    }

    /// This group's cluster id: the history its log indexes belong to (0
    /// until the first leader's [`Command::InitCluster`] is applied here).
    pub fn cluster_id(&self) -> u64 {
        self.map.cluster_id.load(Ordering::Acquire)
    }

    /// Whether `id` was moved by a login or deleted by a logout moments
    /// before `now` (see `session_core::store::Tombstones`).
    pub(crate) fn superseded(&self, id: &SessionId, now: UnixMillis) -> bool {
        self.map.tombstones.is_buried(id, now)
    }

    /// Newest time a committed write carried (see `GroupFacts`).
    pub(crate) fn newest_write_time(&self) -> UnixMillis {
        self.map.newest_write_time.load(Ordering::Relaxed)
    }

    /// A receiver of the applied index, to wait until a consistency token's
    /// index is applied, e.g. with `receiver.wait_for(|i| *i >= token)`.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.map.applied.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use session_core::SessionData;

    use super::*;

    fn new_session(created_at: u64, expires_at: u64) -> NewSession {
        let mut data = SessionData::new();
        data.insert("k".into(), vec![1]);
        NewSession {
            data,
            created_at,
            expires_at,
            size_limit: 0,
        }
    }

    fn id() -> SessionId {
        SessionId::generate(None).unwrap()
    }

    fn create(map: &SessionMap, id: SessionId, index: u64, at: u64, until: u64) -> CommandResponse {
        map.apply_command(
            Command::Create {
                id,
                session: new_session(at, until),
                max_sessions: None,
            },
            index,
        )
    }

    fn change(
        map: &SessionMap,
        id: SessionId,
        changes: ChangeSet,
        now: u64,
        index: u64,
    ) -> CommandResponse {
        map.apply_command(Command::Apply { id, changes, now }, index)
    }

    #[test]
    fn create_refuses_a_live_id_but_reuses_an_expired_one() {
        let map = SessionMap::new();
        let a = id();
        assert_eq!(create(&map, a, 1, 0, 100).result, Ok(1));
        assert_eq!(
            create(&map, a, 2, 99, 500).result,
            Err(StoreError::IdExists)
        );
        assert_eq!(create(&map, a, 3, 100, 500).result, Ok(3));
        assert_eq!(map.count.load(Ordering::Relaxed), 1);
        let mut oversized = new_session(0, 100);
        oversized.size_limit = 4;
        assert!(matches!(
            map.apply_command(
                Command::Create {
                    id: id(),
                    session: oversized,
                    max_sessions: None,
                },
                4
            )
            .result,
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(map.count.load(Ordering::Relaxed), 1);
    }

    fn create_bounded(map: &SessionMap, id: SessionId, index: u64, at: u64) -> CommandResponse {
        map.apply_command(
            Command::Create {
                id,
                session: new_session(at, at + 100),
                max_sessions: Some(2),
            },
            index,
        )
    }

    #[test]
    fn create_beyond_max_sessions_is_refused_until_room_appears() {
        let map = SessionMap::new();
        let (a, b, c) = (id(), id(), id());
        assert_eq!(create_bounded(&map, a, 1, 0).result, Ok(1));
        assert_eq!(create_bounded(&map, b, 2, 0).result, Ok(2));
        let refused = create_bounded(&map, c, 3, 0).result;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable { retry_after, .. }) if *retry_after == FULL_RETRY_AFTER),
            "{refused:?}"
        );
        assert!(map.shard(&c).read().get(&c).is_none());
        // Existing sessions keep working while full.
        let mut changes = ChangeSet::default();
        changes.set("n".into(), vec![1]);
        assert_eq!(change(&map, a, changes, 10, 4).result, Ok(4));
        // A create without a limit (an older entry) is not refused.
        assert_eq!(create(&map, id(), 5, 0, 100).result, Ok(5));
        assert_eq!(map.count.load(Ordering::Relaxed), 3);
        // Room appears after a delete...
        map.apply_command(Command::Delete { id: b }, 6);
        assert!(create_bounded(&map, c, 7, 0).result.is_err(), "3 > 2 still");
        map.apply_command(Command::Delete { id: c }, 8);
        map.apply_command(Command::Delete { id: a }, 9);
        assert_eq!(create_bounded(&map, c, 10, 0).result, Ok(10));
        // ...and after expiry: an expired record still counts until dropped,
        // but its own id may be reused at once.
        assert!(create_bounded(&map, id(), 11, 500).result.is_err());
        assert_eq!(create_bounded(&map, c, 12, 500).result, Ok(12));
        assert_eq!(map.count.load(Ordering::Relaxed), 2);
        map.apply_command(Command::ExpireBefore { now: 10_000 }, 13);
        assert_eq!(create_bounded(&map, b, 14, 10_000).result, Ok(14));
    }

    #[test]
    fn change_reports_missing_expired_conflict_and_too_large() {
        let map = SessionMap::new();
        let a = id();
        create(&map, a, 1, 0, 100);
        assert_eq!(
            change(&map, id(), ChangeSet::default(), 0, 2).result,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            change(&map, a, ChangeSet::default(), 100, 3).result,
            Err(StoreError::NotFound)
        );
        let stale = ChangeSet {
            expected_version: Some(7),
            ..ChangeSet::default()
        };
        assert_eq!(
            change(&map, a, stale, 50, 4).result,
            Err(StoreError::VersionConflict { current: 1 })
        );
        let mut big = ChangeSet {
            size_limit: 10,
            ..ChangeSet::default()
        };
        big.set("big".into(), vec![0; 64]);
        assert!(matches!(
            change(&map, a, big.clone(), 50, 5).result,
            Err(StoreError::TooLarge { .. })
        ));
        // A failed rotation leaves the record where it was.
        let b = id();
        big.rotate_to = Some(b);
        assert!(matches!(
            change(&map, a, big, 50, 6).result,
            Err(StoreError::TooLarge { .. })
        ));
        let record = map.shard(&a).read().get(&a).cloned().unwrap();
        assert_eq!(record.version, 1);
        assert!(map.shard(&b).read().get(&b).is_none());
        let ok = ChangeSet {
            expected_version: Some(1),
            ..ChangeSet::default()
        };
        assert_eq!(change(&map, a, ok, 50, 7).result, Ok(7));
    }

    #[test]
    fn change_copies_a_record_only_while_it_is_shared() {
        let map = SessionMap::new();
        let a = id();
        create(&map, a, 1, 0, 100);
        let held = map.shard(&a).read().get(&a).cloned().unwrap();
        let mut changes = ChangeSet::default();
        changes.set("n".into(), vec![2]);
        change(&map, a, changes.clone(), 0, 2);
        assert_eq!(held.version, 1, "a reader's record never changes under it");
        drop(held);
        let before = Arc::as_ptr(&map.shard(&a).read().get(&a).cloned().unwrap());
        change(&map, a, changes, 0, 3);
        let after = Arc::as_ptr(map.shard(&a).read().get(&a).unwrap());
        assert_eq!(before, after, "unshared record changed in place");
    }
}
