//! Tests of the durable log through [`LogStore`]; those of a damaged or
//! incomplete data directory are in [`damage`].

use std::io;
use std::path::{Path, PathBuf};

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt as _;
use openraft::{EntryPayload, RaftLogReader};
use session_core::{ChangeSet, SessionId};

use super::frame::{self, Record, SegmentState, FORMAT, HEADER_LEN};
use super::recovery::{later_write, scan, OLD_REDB_FILE};
use super::LogStore;
use crate::command::Command;
use crate::types::{Entry, LogId, TypeConfig, Vote};

mod damage;

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

/// A session write carrying `value_len` bytes.
fn entry(index: u64, value_len: usize) -> Entry {
    let mut changes = ChangeSet::default();
    changes.set("k".into(), vec![index as u8; value_len]);
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(std::sync::Arc::new(Command::Apply {
            id: SessionId::generate(None).unwrap(),
            changes,
            now: index,
        })),
    }
}

/// Appends and waits for the flush callback.
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    log.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

/// Appends entries `indexes`, one append (one write batch) each.
async fn append_each(log: &mut LogStore, indexes: std::ops::RangeInclusive<u64>) {
    for i in indexes {
        append(log, vec![entry(i, 20)]).await;
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().expect("a segment file")
}

async fn indexes(log: &mut LogStore) -> Vec<u64> {
    let entries = log.try_get_log_entries(..).await.unwrap();
    entries.iter().map(|e| e.log_id.index).collect()
}

/// The records of segment `path`, and how many write batches it has.
fn records(path: &Path) -> (Vec<Record>, usize) {
    let data = std::fs::read(path).unwrap();
    let seq: u32 = path.to_str().unwrap()[path.to_str().unwrap().len() - 14..][..10]
        .parse()
        .unwrap();
    let found = scan(&data, seq, None).unwrap();
    assert!(found.damage.is_none(), "{:?}", found.damage);
    let batches = found.frames.iter().filter(|f| f.last).count();
    let records = found
        .frames
        .iter()
        .map(|f| frame::decode(&data[f.body.clone()]).unwrap())
        .collect();
    (records, batches)
}

#[tokio::test]
async fn reopen_preserves_vote_entries_committed_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(3, 2);
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        log.save_vote(&vote).await.unwrap();
        append(&mut log, (1..=10).map(|i| entry(i, 30)).collect()).await;
        append_each(&mut log, 11..=20).await;
        log.save_committed(Some(log_id(15))).await.unwrap();
        log.purge(log_id(5)).await.unwrap();
        log.truncate_after(Some(log_id(18))).await.unwrap();
        // Dropped without any shutdown call; the lazy records are written
        // by the writer before the drop returns.
    }
    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(15)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(5)));
    assert_eq!(state.last_log_id, Some(log_id(18)));
    assert_eq!(indexes(&mut log).await, (6..=18).collect::<Vec<_>>());
    let read = log.try_get_log_entries(7..8).await.unwrap();
    assert!(matches!(
        &read[0].payload,
        EntryPayload::Normal(command) if matches!(**command, Command::Apply { now: 7, .. })
    ));
    // The log goes on where it was cut.
    append_each(&mut log, 19..=19).await;
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(19))
    );
}

#[tokio::test]
async fn save_vote_and_truncate_are_written_when_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append_each(&mut log, 1..=3).await;
    log.save_vote(&Vote::new(2, 1)).await.unwrap();
    log.truncate_after(Some(log_id(1))).await.unwrap();
    // Read from the file while the log is still open.
    let (found, _) = records(&last_segment(dir.path()));
    assert!(matches!(found[found.len() - 2], Record::Vote(v) if v == Vote::new(2, 1)));
    assert!(matches!(found[found.len() - 1], Record::Truncate(Some(id)) if id == log_id(1)));
}

fn durable(log: &LogStore) -> &super::durable::DurableLog {
    match &*log.backend {
        super::Backend::Durable(durable) => durable,
        super::Backend::Memory(_) => unreachable!("a durable log"),
    }
}

#[tokio::test]
async fn a_callback_fires_only_after_the_fsync_that_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    for i in 1..=20 {
        append(&mut log, vec![entry(i, 20)]).await;
        let (queued, synced) = durable(&log).progress();
        assert!(
            synced >= queued,
            "append {i}: synced up to {synced} of {queued}"
        );
    }
}

#[tokio::test]
async fn a_lazy_record_waits_off_the_writer_and_is_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    append_each(&mut log, 1..=3).await;
    log.save_committed(Some(log_id(2))).await.unwrap();
    // Nothing went to the writer for it (no wake-up)...
    assert_eq!(durable(&log).held(), 1);
    // ...and the next append takes it along, ahead of itself.
    append_each(&mut log, 4..=4).await;
    assert_eq!(durable(&log).held(), 0);
    let (found, _) = records(&last_segment(dir.path()));
    assert!(matches!(found[found.len() - 2], Record::Committed(Some(id)) if id == log_id(2)));

    // Alone, it is collected once the writer has been idle for LAZY_DELAY.
    log.save_committed(Some(log_id(3))).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (queued, synced) = durable(&log).progress();
        if synced >= queued {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lazy record never synced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (found, _) = records(&last_segment(dir.path()));
    assert!(matches!(found[found.len() - 1], Record::Committed(Some(id)) if id == log_id(3)));
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    let mut waiting = Vec::new();
    // A large first write keeps the writer busy (even on a disk whose
    // fsync costs nothing) while the small appends queue up behind it.
    for i in 1..=301 {
        let (tx, rx) = TypeConfig::oneshot();
        let size = if i == 1 { 4 << 20 } else { 20 };
        log.append([entry(i, size)], IOFlushed::signal(tx))
            .await
            .unwrap();
        waiting.push(rx);
    }
    for rx in waiting {
        rx.await.unwrap().unwrap();
    }
    let (found, batches) = records(&last_segment(dir.path()));
    assert_eq!(
        found.len(),
        302,
        "the segment's state record and 301 entries"
    );
    // One batch is one write and one fdatasync; the appends did not wait
    // for each other, so they went out together.
    assert!(batches < 150, "{batches} batches for 301 appends");
}

#[tokio::test]
async fn an_append_over_the_tail_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let replaced = openraft::testing::log_id::<TypeConfig>(2, 1, 3);
    let expected = vec![log_id(1), log_id(2), replaced];
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        append_each(&mut log, 1..=5).await;
        let mut replacement = entry(3, 20);
        replacement.log_id = replaced;
        append(&mut log, vec![replacement]).await;
        let entries = log.try_get_log_entries(..).await.unwrap();
        let ids: Vec<LogId> = entries.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, expected);
    }
    let mut log = LogStore::open(dir.path()).unwrap();
    let entries = log.try_get_log_entries(..).await.unwrap();
    let ids: Vec<LogId> = entries.iter().map(|e| e.log_id).collect();
    assert_eq!(ids, expected);
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(replaced)
    );
}

#[tokio::test]
async fn segments_rotate_and_purge_deletes_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let big = 1 << 20;
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        for i in 1..=40 {
            append(&mut log, vec![entry(i, big)]).await;
        }
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 3, "{files:?}");
        // The cache keeps a bounded tail; older entries come from disk.
        let (_, cached_bytes) = durable(&log).cache_stats();
        assert!(cached_bytes <= super::shared::CACHE_BYTES, "{cached_bytes}");
        assert_eq!(indexes(&mut log).await, (1..=40).collect::<Vec<_>>());
        log.purge(log_id(30)).await.unwrap();
        assert_eq!(indexes(&mut log).await, (31..=40).collect::<Vec<_>>());
    }
    // Segment 1 held entries 1..=16 and segment 2 17..=32: only the first
    // held nothing but purged entries.
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let mut log = LogStore::open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(30)));
    assert_eq!(indexes(&mut log).await, (31..=40).collect::<Vec<_>>());
    append(&mut log, vec![entry(41, 10)]).await;
    assert!(HEADER_LEN < big);
}

#[tokio::test]
async fn a_data_directory_of_the_redb_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(OLD_REDB_FILE), b"redb").unwrap();
    let error = LogStore::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(
        message.contains(dir.path().join(OLD_REDB_FILE).to_str().unwrap()),
        "{message}"
    );
    assert!(message.contains("older"), "{message}");
    assert!(message.contains("remove"), "{message}");
}

#[tokio::test]
async fn a_log_in_use_is_not_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(dir.path()).unwrap();
    let error = LogStore::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    drop(log);
    LogStore::open(dir.path()).unwrap();
}

#[tokio::test]
async fn the_newest_entries_are_served_shared_and_older_ones_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path()).unwrap();
    let count = super::shared::DECODED_ENTRIES as u64 + 100;
    let appended: Vec<Entry> = (1..=count).map(|i| entry(i, 20)).collect();
    append(&mut log, appended.clone()).await;
    let read = log.try_get_log_entries(1..count + 1).await.unwrap();
    assert_eq!(read, appended, "the same entries, decoded or not");
    let command = |entry: &Entry| match &entry.payload {
        EntryPayload::Normal(command) => std::sync::Arc::clone(command),
        other => panic!("{other:?}"),
    };
    for (k, (read, appended)) in read.iter().zip(&appended).enumerate() {
        // Replication and the state machine get the appended command itself
        // for the newest entries (no decode, no copy), a decoded copy before.
        let shared = std::sync::Arc::ptr_eq(&command(read), &command(appended));
        assert_eq!(shared, k >= 100, "entry {}", k + 1);
    }
}
