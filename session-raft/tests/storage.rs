//! Storage tests: openraft's conformance suite against both log store
//! variants with the state machine, and the session-specific behaviour the
//! node relies on (deterministic apply, rotation, expiry, snapshots, restart
//! from a data directory, corrupt snapshots).

use std::collections::BTreeSet;

use futures::stream;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{EntryPayload, RaftLogReader, RaftSnapshotBuilder, StorageHelper};
use session_core::store::testing::new_session;
use session_core::{ChangeSet, SessionId};
use session_raft::internals::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use session_raft::internals::Command;
use session_raft::internals::{LogStore, StateMachineStore};
use tempfile::TempDir;

struct MemoryBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore> for MemoryBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachineStore), StorageError> {
        Ok(((), LogStore::in_memory(), StateMachineStore::in_memory()))
    }
}

struct DurableBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for DurableBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("open log");
        let sm = StateMachineStore::open(dir.path()).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() -> Result<(), StorageError> {
    Suite::test_all(MemoryBuilder).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_wal() -> Result<(), StorageError> {
    Suite::test_all(DurableBuilder).await
}

// ---- helpers ---------------------------------------------------------------

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

fn command_entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(std::sync::Arc::new(command)),
    }
}

fn membership_entry(index: u64) -> Entry {
    openraft::testing::membership_ent::<TypeConfig>(1, 1, index, vec![BTreeSet::from([1])])
}

fn set(key: &str, value: u8) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set(key.to_owned(), vec![value]);
    changes
}

fn id() -> SessionId {
    SessionId::generate(None).expect("random id")
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|entry| Ok((entry, None)));
    sm.apply(stream::iter(items)).await.expect("apply");
}

/// A history touching every command kind, including refused commands.
fn history(ids: &[SessionId; 4]) -> Vec<Entry> {
    let [a, b, c, d] = *ids;
    let mut rotate = set("login", 1);
    rotate.rotate_to = Some(d);
    vec![
        membership_entry(1),
        command_entry(
            2,
            Command::Create {
                id: a,
                session: new_session(1_000, 10_000, &[("k", &[1])]),
                max_sessions: None,
            },
        ),
        command_entry(
            3,
            Command::Create {
                id: b,
                session: new_session(1_000, 2_000, &[("k", &[2])]),
                max_sessions: None,
            },
        ),
        command_entry(
            4,
            Command::Create {
                id: c,
                session: new_session(1_000, 50_000, &[("k", &[3])]),
                max_sessions: None,
            },
        ),
        // Refused: a is live.
        command_entry(
            5,
            Command::Create {
                id: a,
                session: new_session(1_500, 9_000, &[("k", &[9])]),
                max_sessions: None,
            },
        ),
        command_entry(
            6,
            Command::Apply {
                id: a,
                changes: set("n", 7),
                now: 1_600,
            },
        ),
        // Refused: b expired at 2_000.
        command_entry(
            7,
            Command::Apply {
                id: b,
                changes: set("n", 7),
                now: 2_000,
            },
        ),
        command_entry(
            8,
            Command::Apply {
                id: c,
                changes: rotate,
                now: 2_100,
            },
        ),
        command_entry(9, Command::ExpireBefore { now: 2_500 }),
        command_entry(10, Command::Delete { id: a }),
        command_entry(11, Command::Delete { id: a }),
    ]
}

// ---- state machine behaviour -------------------------------------------------

#[tokio::test]
async fn apply_is_deterministic() {
    let ids = [id(), id(), id(), id()];
    let mut first = StateMachineStore::in_memory();
    let mut second = StateMachineStore::in_memory();
    apply(&mut first, history(&ids)).await;
    // The second replica gets the same entries in different batches.
    let entries = history(&ids);
    let (head, tail) = entries.split_at(4);
    apply(&mut second, head.to_vec()).await;
    apply(&mut second, tail.to_vec()).await;

    let (r1, r2) = (first.reader(), second.reader());
    assert_eq!(r1.session_count(), r2.session_count());
    assert_eq!(r1.applied_index(), 11);
    assert_eq!(r2.applied_index(), 11);
    for id in &ids {
        assert_eq!(r1.get(id, 0), r2.get(id, 0));
    }
    assert_eq!(
        first.applied_state().await.unwrap(),
        second.applied_state().await.unwrap()
    );
}

#[tokio::test]
async fn history_has_the_expected_outcome() {
    let ids = [id(), id(), id(), id()];
    let [a, b, c, d] = ids;
    let mut sm = StateMachineStore::in_memory();
    apply(&mut sm, history(&ids)).await;
    let reader = sm.reader();
    // a deleted, b expired and dropped, c rotated to d.
    assert!(reader.get(&a, 0).is_none());
    assert!(reader.get(&b, 0).is_none());
    assert!(reader.get(&c, 0).is_none());
    let rotated = reader.get(&d, 3_000).expect("rotated session");
    assert_eq!(rotated.data.get("k"), Some(&[3][..]));
    assert_eq!(rotated.data.get("login"), Some(&[1][..]));
    assert_eq!(
        rotated.version, 8,
        "version is the log index of the last change"
    );
    assert_eq!(reader.session_count(), 1);
    // Expiry filter on reads.
    assert!(reader.get(&d, 50_000).is_none());
}

#[tokio::test]
async fn rotate_refuses_a_taken_id_and_changes_nothing() {
    let (a, b) = (id(), id());
    let mut sm = StateMachineStore::in_memory();
    let mut rotate = set("x", 1);
    rotate.rotate_to = Some(b);
    apply(
        &mut sm,
        vec![
            command_entry(
                1,
                Command::Create {
                    id: a,
                    session: new_session(0, 1_000, &[("k", &[1])]),
                    max_sessions: None,
                },
            ),
            command_entry(
                2,
                Command::Create {
                    id: b,
                    session: new_session(0, 1_000, &[("k", &[2])]),
                    max_sessions: None,
                },
            ),
            command_entry(
                3,
                Command::Apply {
                    id: a,
                    changes: rotate.clone(),
                    now: 10,
                },
            ),
        ],
    )
    .await;
    let reader = sm.reader();
    assert_eq!(reader.get(&a, 10).unwrap().version, 1);
    assert_eq!(reader.get(&a, 10).unwrap().data.get("x"), None);
    assert_eq!(reader.get(&b, 10).unwrap().data.get("k"), Some(&[2][..]));
    assert_eq!(reader.session_count(), 2);

    // Once b has expired (at the command's time), the rotation goes through.
    apply(
        &mut sm,
        vec![command_entry(
            4,
            Command::Apply {
                id: a,
                changes: rotate,
                now: 1_000,
            },
        )],
    )
    .await;
    assert!(
        reader.get(&a, 1_000).is_none(),
        "a expired at 1000 too: refused"
    );
    apply(&mut sm, vec![command_entry(5, Command::Delete { id: b })]).await;
    let mut renew = set("x", 1);
    renew.rotate_to = Some(b);
    renew.expires_at = Some(5_000);
    apply(
        &mut sm,
        vec![command_entry(
            6,
            Command::Apply {
                id: a,
                changes: renew,
                now: 500,
            },
        )],
    )
    .await;
    assert!(reader.get(&a, 500).is_none());
    assert_eq!(reader.get(&b, 2_000).unwrap().version, 6);
    assert_eq!(reader.session_count(), 1);
}

#[tokio::test]
async fn expire_before_drops_exactly_the_expired() {
    let ids: Vec<SessionId> = (0..100).map(|_| id()).collect();
    let mut sm = StateMachineStore::in_memory();
    let entries = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            command_entry(
                i as u64 + 1,
                Command::Create {
                    id: *id,
                    session: new_session(0, i as u64 * 10, &[("k", &[0])]),
                    max_sessions: None,
                },
            )
        })
        .collect();
    apply(&mut sm, entries).await;
    apply(
        &mut sm,
        vec![command_entry(101, Command::ExpireBefore { now: 500 })],
    )
    .await;
    let reader = sm.reader();
    assert_eq!(
        reader.session_count(),
        49,
        "expires_at <= 500 is gone: 0..=50"
    );
    for (i, id) in ids.iter().enumerate() {
        // Read with time 0 so that only ExpireBefore decides presence.
        assert_eq!(reader.get(id, 0).is_some(), i * 10 > 500, "session {i}");
    }
}

#[tokio::test]
async fn watch_applied_wakes_waiters() {
    let mut sm = StateMachineStore::in_memory();
    let reader = sm.reader();
    let mut watch = reader.watch_applied();
    let waiter = tokio::spawn(async move { *watch.wait_for(|index| *index >= 3).await.unwrap() });
    apply(
        &mut sm,
        vec![
            membership_entry(1),
            openraft::testing::blank_ent::<TypeConfig>(1, 1, 2),
        ],
    )
    .await;
    apply(
        &mut sm,
        vec![command_entry(3, Command::ExpireBefore { now: 0 })],
    )
    .await;
    assert_eq!(waiter.await.unwrap(), 3);
    assert_eq!(reader.applied_index(), 3);
}

// ---- snapshots ---------------------------------------------------------------

#[tokio::test]
async fn snapshot_build_install_round_trip() {
    let ids = [id(), id(), id(), id()];
    let mut leader = StateMachineStore::in_memory();
    apply(&mut leader, history(&ids)).await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(11)));

    // Changes after the snapshot was taken are not in it.
    apply(
        &mut leader,
        vec![command_entry(12, Command::Delete { id: ids[3] })],
    )
    .await;

    let dir = TempDir::new().unwrap();
    let mut follower = StateMachineStore::open(dir.path()).unwrap();
    apply(
        &mut follower,
        vec![command_entry(
            1,
            Command::Create {
                id: ids[0],
                session: new_session(0, 99_999, &[("old", &[0])]),
                max_sessions: None,
            },
        )],
    )
    .await;
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .unwrap();
    let reader = follower.reader();
    assert!(
        reader.get(&ids[0], 0).is_none(),
        "install replaces the whole map"
    );
    assert_eq!(
        reader.get(&ids[3], 3_000).unwrap().data.get("k"),
        Some(&[3][..])
    );
    assert_eq!(reader.session_count(), 1);
    assert_eq!(reader.applied_index(), 11);
    let (applied, membership) = follower.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(11)));
    assert_eq!(membership.log_id(), &Some(log_id(1)));

    // The installed snapshot is the current one, and survives a reopen.
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
    drop(follower);
    let mut reopened = StateMachineStore::open(dir.path()).unwrap();
    assert_eq!(reopened.applied_state().await.unwrap().0, Some(log_id(11)));
    assert!(reopened.reader().get(&ids[3], 3_000).is_some());
    assert_eq!(
        reopened.get_current_snapshot().await.unwrap().unwrap().meta,
        snapshot.meta
    );
}

#[tokio::test]
async fn corrupt_snapshot_bytes_are_an_error_not_a_panic() {
    let ids = [id(), id(), id(), id()];
    let mut leader = StateMachineStore::in_memory();
    apply(&mut leader, history(&ids)).await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let good = snapshot.snapshot.to_vec();

    let mut follower = StateMachineStore::in_memory();
    let mut candidates: Vec<Vec<u8>> = vec![Vec::new(), b"garbage".to_vec(), vec![0xff; 4096]];
    // Every truncation, and a flipped bit at every position.
    candidates.extend((0..good.len()).map(|len| good[..len].to_vec()));
    candidates.extend((0..good.len()).map(|i| {
        let mut bytes = good.clone();
        bytes[i] ^= 0x10;
        bytes
    }));
    let mut longer = good.clone();
    longer.push(0);
    candidates.push(longer);
    assert!(session_raft::internals::snapshot::verify(&snapshot.meta, &good).is_ok());
    for bytes in candidates {
        assert!(session_raft::internals::snapshot::verify(&snapshot.meta, &bytes).is_err());
        let result = follower
            .install_snapshot(&snapshot.meta, bytes.into())
            .await;
        assert!(result.is_err());
    }
    assert_eq!(follower.reader().session_count(), 0, "nothing installed");
    assert_eq!(follower.applied_state().await.unwrap().0, None);

    // A corrupt file in the data directory refuses to open.
    let dir = TempDir::new().unwrap();
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    std::fs::write(dir.path().join("snapshot.bin"), corrupt).unwrap();
    let error = StateMachineStore::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

// ---- restart -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_state_from_snapshot_and_log() {
    let dir = TempDir::new().unwrap();
    let ids = [id(), id(), id(), id()];
    let entries = history(&ids);
    let extra = id();
    let vote = Vote::new_committed(1, 1);
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        log.save_vote(&vote).await.unwrap();
        log.append(entries.clone(), IOFlushed::noop())
            .await
            .unwrap();
        let tail = command_entry(
            12,
            Command::Create {
                id: extra,
                session: new_session(3_000, 90_000, &[("e", &[5])]),
                max_sessions: None,
            },
        );
        log.append([tail.clone()], IOFlushed::noop()).await.unwrap();
        log.save_committed(Some(log_id(12))).await.unwrap();

        apply(&mut sm, entries[..6].to_vec()).await;
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        log.purge(log_id(4)).await.unwrap();
        apply(&mut sm, entries[6..].to_vec()).await;
        apply(&mut sm, vec![tail]).await;
        // An append is only durable once it is on disk: the store is dropped
        // without any shutdown step, as in a crash after the fsync.
    }

    let mut log = LogStore::open(dir.path()).unwrap();
    let mut sm = StateMachineStore::open(dir.path()).unwrap();
    let mut reader = log.get_log_reader().await;
    assert_eq!(reader.read_vote().await.unwrap(), Some(vote));
    let kept = reader.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(kept.first().map(|e| e.log_id.index), Some(5));
    assert_eq!(kept.len(), 8);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(4)));
    assert_eq!(state.last_log_id, Some(log_id(12)));
    // The state machine restarts from its snapshot (index 6)...
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(6)));

    // ...and openraft's start-up re-applies the committed log after it.
    StorageHelper::new(&mut log, &mut sm)
        .with_id(1)
        .get_initial_state()
        .await
        .unwrap();
    let restored = sm.reader();
    assert_eq!(restored.applied_index(), 12);
    assert_eq!(restored.get(&extra, 3_000).unwrap().version, 12);
    assert_eq!(restored.get(&ids[3], 3_000).unwrap().version, 8);
    assert!(restored.get(&ids[0], 0).is_none());
    assert_eq!(restored.session_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_log_truncates_and_reopens() {
    let dir = TempDir::new().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        let entries: Vec<Entry> = (1..=10)
            .map(|i| openraft::testing::blank_ent::<TypeConfig>(1, 1, i))
            .collect();
        log.append(entries, IOFlushed::noop()).await.unwrap();
        log.truncate_after(Some(log_id(7))).await.unwrap();
    }
    let mut log = LogStore::open(dir.path()).unwrap();
    assert!(log.is_durable());
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(7))
    );
    log.truncate_after(None).await.unwrap();
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, None);
}
