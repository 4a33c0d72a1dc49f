//! In-memory [`SessionStore`] for a single node and for tests.
//!
//! Records live in a fixed number of shards, each a `RwLock<HashMap>`, so
//! readers of different sessions rarely meet on one lock. Records are
//! `Arc`-shared with readers; a write copies a record only when a reader
//! still holds the old one (`Arc::make_mut`), so a load is a map lookup and a
//! reference-count increment.
//!
//! One atomic counter per store numbers every write; its value is both the
//! record's new version and the consistency token (one node is always
//! up to date, so loads ignore tokens).
//!
//! Expired records are never returned; a background task (started when the
//! store is built inside a Tokio runtime) removes them periodically and stops
//! when the store is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::clock::{Clock, UnixMillis};
use crate::id::SessionId;
use crate::record::{ChangeSet, NewSession, SessionRecord};
use crate::store::{Committed, ConsistencyToken, SessionStore, StoreError, Tombstones, Version};

/// Settings for [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreConfig {
    /// Number of shards (at least 1); more shards mean less lock contention.
    pub shards: usize,
    /// How often the background task removes expired records; `None` turns
    /// the task off (expired records are still never returned).
    pub purge_interval: Option<Duration>,
    /// Clock the purge task reads to decide what has expired.
    pub clock: Clock,
    /// Refuse new sessions beyond this many (`None`: no limit), so that a
    /// flood of anonymous sessions cannot exhaust memory.
    pub max_sessions: Option<usize>,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            purge_interval: Some(Duration::from_secs(60)),
            clock: Clock::system(),
            max_sessions: None,
        }
    }
}

/// Map of one shard.
type Shard = RwLock<HashMap<SessionId, Arc<SessionRecord>>>;

/// State shared between the store handle and its purge task.
#[derive(Debug)]
struct Shared {
    /// The sessions, split by the first random byte of their id.
    shards: Box<[Shard]>,
    /// Last version handed out; also the consistency token.
    last_version: AtomicU64,
    /// Number of stored records (live or not yet purged).
    count: AtomicUsize,
    /// See [`MemoryStoreConfig::max_sessions`].
    max_sessions: Option<usize>,
    /// Ids moved or deleted moments ago (see [`Tombstones`]).
    tombstones: Tombstones,
    /// Time of deletes, which carry none.
    clock: Clock,
}

/// Aborts the purge task when the store goes away, so that no task outlives it.
#[derive(Debug)]
struct PurgeGuard(tokio::task::JoinHandle<()>);

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A sharded in-memory session store. Not replicated: sessions are lost when
/// the process ends. Clones share the same sessions (and one purge task,
/// which stops when the last clone is dropped), so keep a clone to reach the
/// store after handing it to the layer.
///
/// ```
/// use session_core::{MemoryStore, MemoryStoreConfig};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::new(MemoryStoreConfig {
///     max_sessions: Some(1_000_000),
///     ..MemoryStoreConfig::default()
/// });
/// assert!(store.is_empty());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    /// The data, also reachable (weakly) from the purge task.
    shared: Arc<Shared>,
    /// Stops the purge task when the last clone drops; `None` when no task runs.
    _purger: Option<Arc<PurgeGuard>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(MemoryStoreConfig::default())
    }
}

impl MemoryStore {
    /// Builds a store. The purge task starts only if this is called inside a
    /// Tokio runtime and `config.purge_interval` is set.
    pub fn new(config: MemoryStoreConfig) -> Self {
        let shards = (0..config.shards.max(1))
            .map(|_| RwLock::new(HashMap::new()))
            .collect();
        let shared = Arc::new(Shared {
            shards,
            last_version: AtomicU64::new(0),
            count: AtomicUsize::new(0),
            max_sessions: config.max_sessions,
            tombstones: Tombstones::default(),
            clock: config.clock.clone(),
        });
        let purger = match (config.purge_interval, tokio::runtime::Handle::try_current()) {
            (Some(every), Ok(runtime)) => {
                let weak = Arc::downgrade(&shared);
                Some(Arc::new(PurgeGuard(runtime.spawn(purge_loop(
                    weak,
                    every,
                    config.clock,
                )))))
            }
            _ => None,
        };
        Self {
            shared,
            _purger: purger,
        }
    }

    /// Number of stored records, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every record expired at `now`; returns how many were removed.
    pub fn purge_expired(&self, now: UnixMillis) -> usize {
        self.shared.purge_expired(now)
    }
}

/// Removes expired records every `every` until the store is dropped.
async fn purge_loop(store: Weak<Shared>, every: Duration, clock: Clock) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; nothing to purge yet
    loop {
        ticks.tick().await;
        // Holding only a weak reference between ticks is what lets the store
        // be freed; the guard's abort then ends this task.
        let Some(shared) = store.upgrade() else { break };
        let removed = shared.purge_expired(clock.now());
        if removed > 0 {
            tracing::debug!(removed, "purged expired sessions");
        }
    }
}

impl Shared {
    fn shard_index(&self, id: &SessionId) -> usize {
        id.random_bytes()[0] as usize % self.shards.len()
    }

    fn shard(&self, id: &SessionId) -> &Shard {
        &self.shards[self.shard_index(id)]
    }

    /// Hands out the next version. Called under the shard's write lock, so a
    /// record's versions only ever grow.
    fn next_version(&self) -> Version {
        self.last_version.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn committed(version: Version) -> Committed {
        Committed {
            version,
            token: ConsistencyToken::new(0, version),
        }
    }

    fn purge_expired(&self, now: UnixMillis) -> usize {
        self.tombstones.purge(now);
        let mut removed = 0;
        for shard in self.shards.iter() {
            // A read pass first: most sweeps find nothing, and must not block
            // readers with a write lock for nothing.
            if !shard.read().values().any(|r| r.is_expired(now)) {
                continue;
            }
            let mut map = shard.write();
            let before = map.len();
            map.retain(|_, r| !r.is_expired(now));
            removed += before - map.len();
        }
        self.count.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    fn apply_in_place(
        &self,
        id: &SessionId,
        changes: &ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        let mut map = self.shard(id).write();
        let record = match map.get_mut(id) {
            Some(r) if !r.is_expired(now) => r,
            _ => return Err(StoreError::NotFound),
        };
        let version = self.next_version();
        Arc::make_mut(record).apply(changes, version)?;
        Ok(Self::committed(version))
    }

    fn apply_and_move(
        &self,
        id: &SessionId,
        to: &SessionId,
        changes: &ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        let (from_index, to_index) = (self.shard_index(id), self.shard_index(to));
        // Lock in index order so that two crossing rotations cannot deadlock.
        let (mut first, mut second) = if from_index == to_index {
            (self.shards[from_index].write(), None)
        } else {
            let low = self.shards[from_index.min(to_index)].write();
            let high = self.shards[from_index.max(to_index)].write();
            (low, Some(high))
        };
        let (from_map, to_map) = match second.as_mut() {
            None => (&mut *first, None),
            Some(high) if from_index < to_index => (&mut *first, Some(&mut **high)),
            Some(high) => (&mut **high, Some(&mut *first)),
        };
        let mut record = match from_map.get(id) {
            Some(r) if !r.is_expired(now) => SessionRecord::clone(r),
            _ => return Err(StoreError::NotFound),
        };
        let target = to_map.as_deref().unwrap_or(&*from_map).get(to);
        if target.is_some_and(|r| !r.is_expired(now)) || to == id {
            return Err(StoreError::IdExists);
        }
        let version = self.next_version();
        record.apply(changes, version)?;
        from_map.remove(id);
        self.tombstones.bury(*id, now);
        let replaced = match to_map {
            Some(map) => map.insert(*to, Arc::new(record)),
            None => from_map.insert(*to, Arc::new(record)),
        };
        if replaced.is_some() {
            // An expired record sat on the target id; it is gone now.
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(Self::committed(version))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(
        &self,
        id: &SessionId,
        _token: ConsistencyToken,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let found = {
            let map = self.shared.shard(id).read();
            map.get(id).filter(|r| !r.is_expired(now)).cloned()
        };
        if found.is_none() && self.shared.tombstones.is_buried(id, now) {
            return Err(StoreError::Superseded);
        }
        Ok(found)
    }

    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError> {
        let shared = &self.shared;
        let mut map = shared.shard(id).write();
        // An expired record may still sit on the id until purged: the id is
        // then free again, as for every other store.
        let now_expired = map.get(id).map(|r| r.is_expired(session.created_at));
        if now_expired == Some(false) {
            return Err(StoreError::IdExists);
        }
        if let (Some(max), None) = (shared.max_sessions, now_expired) {
            if shared.count.load(Ordering::Relaxed) >= max {
                return Err(StoreError::unavailable(
                    Duration::from_secs(1),
                    "memory store is full",
                ));
            }
        }
        let version = shared.next_version();
        let record = session.into_record(version)?;
        if map.insert(*id, Arc::new(record)).is_none() {
            shared.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Shared::committed(version))
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        match changes.rotate_to {
            None => self.shared.apply_in_place(id, &changes, now),
            Some(to) => self.shared.apply_and_move(id, &to, &changes, now),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError> {
        let shared = &self.shared;
        let mut map = shared.shard(id).write();
        if map.remove(id).is_some() {
            shared.count.fetch_sub(1, Ordering::Relaxed);
            shared.tombstones.bury(*id, shared.clock.now());
        }
        Ok(Shared::committed(shared.next_version()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SessionData;

    fn new_session(now: UnixMillis) -> NewSession {
        NewSession {
            data: SessionData::new(),
            created_at: now,
            expires_at: now + 1_000,
            size_limit: 0,
        }
    }

    #[tokio::test]
    async fn passes_conformance_suite() {
        crate::store::conformance::run_all(|| MemoryStore::new(MemoryStoreConfig::default())).await;
    }

    #[tokio::test(start_paused = true)]
    async fn purge_task_removes_expired_and_stops_on_drop() {
        let clock = Clock::manual(10_000);
        let store = MemoryStore::new(MemoryStoreConfig {
            purge_interval: Some(Duration::from_secs(1)),
            clock: clock.clone(),
            ..MemoryStoreConfig::default()
        });
        let id = SessionId::generate(None).unwrap();
        store.create(&id, new_session(10_000)).await.unwrap();
        clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(store.is_empty(), "expired record was not purged");

        let weak = Arc::downgrade(&store.shared);
        let handle = store._purger.as_ref().map(|g| g.0.abort_handle()).unwrap();
        drop(store);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(handle.is_finished(), "purge task outlived its store");
        assert!(weak.upgrade().is_none(), "store data was leaked");
    }

    #[tokio::test]
    async fn max_sessions_refuses_with_unavailable() {
        let store = MemoryStore::new(MemoryStoreConfig {
            max_sessions: Some(1),
            ..MemoryStoreConfig::default()
        });
        let now = 5_000;
        store
            .create(&SessionId::generate(None).unwrap(), new_session(now))
            .await
            .unwrap();
        let second = store
            .create(&SessionId::generate(None).unwrap(), new_session(now))
            .await;
        assert!(matches!(second, Err(StoreError::Unavailable { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_sessions_and_the_purge_task_outlives_all_but_the_last() {
        let store = MemoryStore::default();
        let clone = store.clone();
        let id = SessionId::generate(None).unwrap();
        clone.create(&id, new_session(10_000)).await.unwrap();
        assert_eq!(store.len(), 1, "a clone writes into the same map");
        assert!(store
            .load(&id, ConsistencyToken::NONE, 10_000)
            .await
            .unwrap()
            .is_some());
        let handle = store._purger.as_ref().map(|g| g.0.abort_handle()).unwrap();
        drop(store);
        tokio::task::yield_now().await;
        assert!(!handle.is_finished(), "a clone still uses the purge task");
        drop(clone);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(handle.is_finished());
    }

    #[test]
    fn works_without_a_runtime() {
        let store = MemoryStore::default();
        assert!(store._purger.is_none());
    }
}
