//! In-memory [`SessionStore`] for a single node and for tests.
//!
//! The records live in a [`SessionMap`] (sharded, copy-on-write, so a load
//! is a map lookup and a reference-count increment), the map the Raft store
//! keeps too.
//!
//! One atomic counter per store numbers every write; its value is both the
//! record's new version and the consistency token (one node is always
//! up to date, so loads ignore tokens).
//!
//! Expired records are never returned; a background task (started when the
//! store is built inside a Tokio runtime) removes them periodically and stops
//! when the store is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, UnixMillis};
use crate::id::SessionId;
use crate::record::{ChangeSet, NewSession, SessionRecord};
use crate::store::{
    Committed, ConsistencyToken, CreateError, SessionMap, SessionStore, StoreError, Version,
};

/// Settings for [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreConfig {
    /// Number of shards (1 to 256, one per value of an id's first random
    /// byte; more are not used); more shards mean less lock contention.
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

/// State shared between the store handle and its purge task.
#[derive(Debug)]
struct Shared {
    /// The sessions, with the tombstones of ids moved or deleted moments ago.
    sessions: SessionMap,
    /// Last version handed out; also the consistency token.
    last_version: AtomicU64,
    /// See [`MemoryStoreConfig::max_sessions`].
    max_sessions: Option<usize>,
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
        let shared = Arc::new(Shared {
            sessions: SessionMap::new(config.shards),
            last_version: AtomicU64::new(0),
            max_sessions: config.max_sessions,
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
        self.shared.sessions.len()
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every record expired at `now`; returns how many were removed.
    pub fn purge_expired(&self, now: UnixMillis) -> usize {
        self.shared.sessions.expire(now)
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
        let removed = shared.sessions.expire(clock.now());
        if removed > 0 {
            tracing::debug!(removed, "purged expired sessions");
        }
    }
}

impl Shared {
    /// Hands out the next version. The map calls it under the shard's write
    /// lock, so a record's versions only ever grow.
    fn next_version(&self) -> Version {
        self.last_version.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn committed(version: Version) -> Committed {
        Committed {
            version,
            token: ConsistencyToken::new(0, version),
        }
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
        let sessions = &self.shared.sessions;
        let found = sessions.get(id, now);
        if found.is_none() && sessions.is_superseded(id, now) {
            return Err(StoreError::Superseded);
        }
        Ok(found)
    }

    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError> {
        let shared = &self.shared;
        match shared
            .sessions
            .create(*id, session, shared.max_sessions, || shared.next_version())
        {
            Ok(version) => Ok(Shared::committed(version)),
            Err(CreateError::Full { .. }) => Err(StoreError::unavailable(
                Duration::from_secs(1),
                "memory store is full",
            )),
            Err(CreateError::Refused(error)) => Err(error),
        }
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        let shared = &self.shared;
        let next_version = || shared.next_version();
        let version = match changes.rotate_to {
            None => shared.sessions.apply(id, &changes, now, next_version),
            Some(to) => shared.sessions.rotate(id, to, &changes, now, next_version),
        }?;
        Ok(Shared::committed(version))
    }

    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError> {
        let shared = &self.shared;
        shared.sessions.delete(id, Some(shared.clock.now()));
        Ok(Shared::committed(shared.next_version()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::new_session;

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
        store
            .create(&id, new_session(10_000, 11_000, &[]))
            .await
            .unwrap();
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
            .create(
                &SessionId::generate(None).unwrap(),
                new_session(now, now + 1_000, &[]),
            )
            .await
            .unwrap();
        let second = store
            .create(
                &SessionId::generate(None).unwrap(),
                new_session(now, now + 1_000, &[]),
            )
            .await;
        assert!(matches!(second, Err(StoreError::Unavailable { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_sessions_and_the_purge_task_outlives_all_but_the_last() {
        let store = MemoryStore::default();
        let clone = store.clone();
        let id = SessionId::generate(None).unwrap();
        clone
            .create(&id, new_session(10_000, 11_000, &[]))
            .await
            .unwrap();
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
