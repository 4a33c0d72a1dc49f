//! What the state machine has applied: the session map (a
//! [`session_core::store::SessionMap`], the one `MemoryStore` keeps too, with
//! log indexes as versions) and the Raft facts around it: the applied index
//! that token waiters watch, the group's cluster id and newest write time.
//! Written only by the apply step (one writer), read by [`SessionReader`]s.
//!
//! Readers take one shard's read lock for one lookup, so request handlers on
//! many threads do not contend with each other, and only briefly with the
//! writer; a record being read or captured by a snapshot is never mutated
//! under its holder (the map is copy-on-write).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use session_core::store::{CreateError, SessionMap};
use session_core::{SessionId, SessionRecord, StoreError, UnixMillis};
use tokio::sync::watch;

use crate::command::{Command, CommandResponse, FULL_RETRY_AFTER};

/// Number of shards of the session map.
const SHARD_COUNT: usize = 64;

/// State shared by the state machine (the only writer) and its readers.
#[derive(Debug)]
pub(crate) struct AppliedState {
    /// The sessions; their count is exact, there being one writer.
    sessions: SessionMap,
    /// Log index of the last applied entry (0 before any).
    applied: watch::Sender<u64>,
    /// This group's cluster id (0 until an [`Command::InitCluster`] is
    /// applied); see [`GroupFacts`].
    cluster_id: AtomicU64,
    /// Newest time a committed create or change carried; see [`GroupFacts`].
    newest_write_time: AtomicU64,
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

impl AppliedState {
    pub(crate) fn new() -> Self {
        Self {
            sessions: SessionMap::new(SHARD_COUNT),
            applied: watch::Sender::new(0),
            cluster_id: AtomicU64::new(0),
            newest_write_time: AtomicU64::new(0),
        }
    }

    /// The group facts now.
    pub(crate) fn facts(&self) -> GroupFacts {
        GroupFacts {
            cluster_id: self.cluster_id.load(Ordering::Acquire),
            newest_write_time: self.newest_write_time.load(Ordering::Relaxed),
        }
    }

    fn saw_write_time(&self, at: UnixMillis) {
        self.newest_write_time.fetch_max(at, Ordering::Relaxed);
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

    /// Applies one command at log index `index`, which becomes the version
    /// of the record it writes. Deterministic: reads no clock and no
    /// randomness, only the command and the map.
    /// Takes the command by reference: the log's cache shares the entry
    /// (see `crate::types::TypeConfig`), so a new session's data is copied
    /// into the map; a change set is applied from where it is.
    pub(crate) fn apply_command(&self, command: &Command, index: u64) -> CommandResponse {
        let sessions = &self.sessions;
        let result = match *command {
            Command::Create {
                id,
                ref session,
                max_sessions,
            } => {
                self.saw_write_time(session.created_at);
                // The limit travels as a u64; past usize::MAX it is no limit.
                let limit = max_sessions.map(|max| usize::try_from(max).unwrap_or(usize::MAX));
                sessions
                    .create(id, session.clone(), limit, || index)
                    .map_err(|error| match error {
                        CreateError::Full { .. } => StoreError::unavailable(
                            FULL_RETRY_AFTER,
                            format!(
                                "session store is full ({} sessions)",
                                max_sessions.unwrap_or_default()
                            ),
                        ),
                        CreateError::Refused(error) => error,
                    })
            }
            Command::Apply {
                id,
                ref changes,
                now,
            } => {
                self.saw_write_time(now);
                match changes.rotate_to {
                    // Rotating onto its own id changes the session in place.
                    Some(new_id) if new_id != id => {
                        sessions.rotate(&id, new_id, changes, now, || index)
                    }
                    _ => sessions.apply(&id, changes, now, || index),
                }
            }
            Command::Delete { id } => {
                sessions.delete(&id, None);
                Ok(index)
            }
            Command::DeleteAt { id, now } => {
                sessions.delete(&id, Some(now));
                Ok(index)
            }
            Command::ExpireBefore { now } => {
                sessions.expire(now);
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

    /// Every record, as shared pointers: a consistent view when the caller
    /// holds the writer's `&mut` (no apply can run meanwhile).
    pub(crate) fn capture(&self) -> Vec<(SessionId, Arc<SessionRecord>)> {
        let mut all = Vec::with_capacity(self.sessions.len());
        self.sessions
            .for_each(|id, record| all.push((*id, Arc::clone(record))));
        all
    }

    /// Replaces the whole contents (snapshot install).
    pub(crate) fn replace_all(&self, records: Vec<(SessionId, SessionRecord)>, facts: GroupFacts) {
        self.cluster_id.store(facts.cluster_id, Ordering::Release);
        self.newest_write_time
            .store(facts.newest_write_time, Ordering::Relaxed);
        self.sessions.replace_all(records);
    }
}

/// A cheap, clonable, read-only handle onto the state machine's session map.
///
/// Obtained with [`StateMachineStore::reader`](super::StateMachineStore::reader);
/// it stays valid for the life of the process and sees every apply and
/// snapshot install.
#[derive(Debug, Clone)]
pub struct SessionReader {
    state: Arc<AppliedState>,
}

impl SessionReader {
    pub(crate) fn new(state: Arc<AppliedState>) -> Self {
        Self { state }
    }

    /// The session under `id`, unless missing or expired at `now`.
    pub fn get(&self, id: &SessionId, now: UnixMillis) -> Option<Arc<SessionRecord>> {
        self.state.sessions.get(id, now)
    }

    /// Number of records held, including expired ones not yet dropped by an
    /// expire-before command.
    pub fn session_count(&self) -> usize {
        self.state.sessions.len()
    }

    /// Whether any record has expired at `now`. The leader's expiry timer
    /// asks this first so that an idle cluster does not grow its log with
    /// expire-before entries that would drop nothing. One read-locked scan.
    pub fn any_expired(&self, now: UnixMillis) -> bool {
        self.state.sessions.any_expired(now)
    }

    /// Log index of the last applied entry (0 before any). A write whose
    /// consistency token is `<=` this is visible to [`Self::get`].
    pub fn applied_index(&self) -> u64 {
        *self.state.applied.borrow()
    }

    /// This group's cluster id: the history its log indexes belong to (0
    /// until the first leader's [`Command::InitCluster`] is applied here).
    pub fn cluster_id(&self) -> u64 {
        self.state.cluster_id.load(Ordering::Acquire)
    }

    /// Whether `id` was moved by a login or deleted by a logout moments
    /// before `now` (see `session_core::store::Tombstones`).
    pub(crate) fn superseded(&self, id: &SessionId, now: UnixMillis) -> bool {
        self.state.sessions.is_superseded(id, now)
    }

    /// Newest time a committed write carried (see `GroupFacts`).
    pub(crate) fn newest_write_time(&self) -> UnixMillis {
        self.state.newest_write_time.load(Ordering::Relaxed)
    }

    /// A receiver of the applied index, to wait until a consistency token's
    /// index is applied, e.g. with `receiver.wait_for(|i| *i >= token)`.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.state.applied.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use session_core::store::testing;
    use session_core::ChangeSet;

    use super::*;

    /// The record under `id`, expired or not.
    fn stored(map: &AppliedState, id: &SessionId) -> Option<Arc<SessionRecord>> {
        map.capture()
            .into_iter()
            .find(|(stored, _)| stored == id)
            .map(|(_, record)| record)
    }

    fn id() -> SessionId {
        SessionId::generate(None).unwrap()
    }

    fn create(
        map: &AppliedState,
        id: SessionId,
        index: u64,
        at: u64,
        until: u64,
    ) -> CommandResponse {
        map.apply_command(
            &Command::Create {
                id,
                session: testing::new_session(at, until, &[("k", &[1])]),
                max_sessions: None,
            },
            index,
        )
    }

    fn change(
        map: &AppliedState,
        id: SessionId,
        changes: ChangeSet,
        now: u64,
        index: u64,
    ) -> CommandResponse {
        map.apply_command(&Command::Apply { id, changes, now }, index)
    }

    #[test]
    fn create_refuses_a_live_id_but_reuses_an_expired_one() {
        let map = AppliedState::new();
        let a = id();
        assert_eq!(create(&map, a, 1, 0, 100).result, Ok(1));
        assert_eq!(
            create(&map, a, 2, 99, 500).result,
            Err(StoreError::IdExists)
        );
        assert_eq!(create(&map, a, 3, 100, 500).result, Ok(3));
        assert_eq!(map.sessions.len(), 1);
        let mut oversized = testing::new_session(0, 100, &[("k", &[1])]);
        oversized.size_limit = 4;
        assert!(matches!(
            map.apply_command(
                &Command::Create {
                    id: id(),
                    session: oversized,
                    max_sessions: None,
                },
                4
            )
            .result,
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(map.sessions.len(), 1);
    }

    fn create_bounded(map: &AppliedState, id: SessionId, index: u64, at: u64) -> CommandResponse {
        map.apply_command(
            &Command::Create {
                id,
                session: testing::new_session(at, at + 100, &[("k", &[1])]),
                max_sessions: Some(2),
            },
            index,
        )
    }

    #[test]
    fn create_beyond_max_sessions_is_refused_until_room_appears() {
        let map = AppliedState::new();
        let (a, b, c) = (id(), id(), id());
        assert_eq!(create_bounded(&map, a, 1, 0).result, Ok(1));
        assert_eq!(create_bounded(&map, b, 2, 0).result, Ok(2));
        let refused = create_bounded(&map, c, 3, 0).result;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable { retry_after, .. }) if *retry_after == FULL_RETRY_AFTER),
            "{refused:?}"
        );
        assert!(stored(&map, &c).is_none());
        // Existing sessions keep working while full.
        let mut changes = ChangeSet::default();
        changes.set("n".into(), vec![1]);
        assert_eq!(change(&map, a, changes, 10, 4).result, Ok(4));
        // A create without a limit (an older entry) is not refused.
        assert_eq!(create(&map, id(), 5, 0, 100).result, Ok(5));
        assert_eq!(map.sessions.len(), 3);
        // Room appears after a delete...
        map.apply_command(&Command::Delete { id: b }, 6);
        assert!(create_bounded(&map, c, 7, 0).result.is_err(), "3 > 2 still");
        map.apply_command(&Command::Delete { id: c }, 8);
        map.apply_command(&Command::Delete { id: a }, 9);
        assert_eq!(create_bounded(&map, c, 10, 0).result, Ok(10));
        // ...and after expiry: an expired record still counts until dropped,
        // but its own id may be reused at once.
        assert!(create_bounded(&map, id(), 11, 500).result.is_err());
        assert_eq!(create_bounded(&map, c, 12, 500).result, Ok(12));
        assert_eq!(map.sessions.len(), 2);
        map.apply_command(&Command::ExpireBefore { now: 10_000 }, 13);
        assert_eq!(create_bounded(&map, b, 14, 10_000).result, Ok(14));
    }

    #[test]
    fn change_reports_missing_expired_conflict_and_too_large() {
        let map = AppliedState::new();
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
        let record = stored(&map, &a).unwrap();
        assert_eq!(record.version, 1);
        assert!(stored(&map, &b).is_none());
        let ok = ChangeSet {
            expected_version: Some(1),
            ..ChangeSet::default()
        };
        assert_eq!(change(&map, a, ok, 50, 7).result, Ok(7));
    }

    #[test]
    fn change_copies_a_record_only_while_it_is_shared() {
        let map = AppliedState::new();
        let a = id();
        create(&map, a, 1, 0, 100);
        let held = stored(&map, &a).unwrap();
        let mut changes = ChangeSet::default();
        changes.set("n".into(), vec![2]);
        change(&map, a, changes.clone(), 0, 2);
        assert_eq!(held.version, 1, "a reader's record never changes under it");
        drop(held);
        let before = Arc::as_ptr(&stored(&map, &a).unwrap());
        change(&map, a, changes, 0, 3);
        let after = Arc::as_ptr(&stored(&map, &a).unwrap());
        assert_eq!(before, after, "unshared record changed in place");
    }
}
