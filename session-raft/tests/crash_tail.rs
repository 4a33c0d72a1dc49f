//! A follower whose log file ends in a torn or garbled record (a crash in
//! the middle of a write) restarts from its data directory, cuts that tail
//! off, catches up from the leader and serves every acknowledged write.
//!
//! Three durable nodes over real sockets; sessions written through
//! `RaftNode::store()`; the follower stopped with `shutdown_abruptly`, more
//! sessions written without it, the last record of its last segment file
//! damaged on disk, the node started again from the same data directory.
//!
//! The damaged record is one the follower wrote after it had acknowledged
//! all its entries, as a real torn write is: a record the leader was told
//! is durable must not be lost, and openraft's leader refuses (panics on) a
//! follower whose log went back behind what it acknowledged.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use openraft::storage::RaftLogStorage;
use session_core::{Committed, SessionId, SessionStore};
use session_raft::internals::LogStore;

const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The newest segment file of the log in `dir`.
fn last_segment(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files.pop().expect("the log has a segment file")
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The file ends inside its last record (the write stopped halfway).
    Torn,
    /// Its last record is overwritten with garbage.
    Garbled,
}

/// Damages the last record of the last segment in `log_dir` (found by the
/// magic that starts every record, `RSwl`).
fn damage(log_dir: &Path, how: Damage) {
    let path = last_segment(log_dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes
        .windows(4)
        .rposition(|w| w == b"RSwl")
        .expect("a record");
    assert!(last > 0, "more than the segment's first record");
    match how {
        Damage::Torn => {
            let cut = last + (bytes.len() - last) / 2;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(cut as u64).unwrap();
        }
        Damage::Garbled => {
            let mut x: u32 = 0x9e37_79b9;
            for byte in &mut bytes[last + 16..] {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

/// The last log index and the committed index of the log in `dir`, read
/// with the log store itself (the node is down).
async fn log_state(dir: &Path) -> (u64, u64) {
    let mut log = LogStore::open(dir).expect("the log opens");
    let state = log.get_log_state().await.unwrap();
    let committed = log.read_committed().await.unwrap();
    (
        state.last_log_id.map_or(0, |id| id.index),
        committed.map_or(0, |id| id.index),
    )
}

async fn write_sessions(
    cluster: &TestCluster,
    via: u64,
    values: std::ops::Range<u64>,
    acknowledged: &mut Vec<(SessionId, u64, Committed)>,
) {
    for value in values {
        let id = new_id();
        let outcome = cluster
            .node(via)
            .store()
            .create(&id, new_session(value))
            .await
            .expect("write acknowledged");
        acknowledged.push((id, value, outcome));
    }
}

/// Waits until `node` has applied everything acknowledged, then checks
/// every acknowledged write with a read at its consistency token.
async fn check_all_present(
    cluster: &TestCluster,
    node: u64,
    acknowledged: &[(SessionId, u64, Committed)],
) {
    let last = acknowledged.last().unwrap().2.token.index;
    eventually(
        Duration::from_secs(20),
        "the follower catches up",
        || async { (cluster.node(node).store().applied_index() >= last).then_some(()) },
    )
    .await;
    let store = cluster.node(node).store();
    for (id, value, outcome) in acknowledged {
        let record = store
            .load(id, outcome.token, now())
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("session {value} is missing on node {node}"));
        assert_eq!(value_of(&record), *value);
    }
    assert_eq!(
        cluster.node(node).status().session_count,
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_damaged_log_tail_restarts_and_catches_up() {
    let mut cluster = TestCluster::start(3, true, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let follower = followers[0];
    let log_dir = cluster.data_dir(follower).unwrap().join("log");
    let mut acknowledged = Vec::new();
    let mut next = 0;
    for how in [Damage::Torn, Damage::Garbled] {
        // Writes through the leader and through the follower (forwarded).
        write_sessions(&cluster, leader, next..next + 40, &mut acknowledged).await;
        write_sessions(&cluster, follower, next + 40..next + 50, &mut acknowledged).await;
        check_all_present(&cluster, follower, &acknowledged).await;
        cluster.crash_node(follower).await;
        // More writes while it is down: it has to catch up on them.
        write_sessions(&cluster, leader, next + 50..next + 80, &mut acknowledged).await;
        next += 80;

        // The follower had applied everything, so its last record is its
        // lazily written committed log id, written after its last entry: a
        // crash while writing it tears no entry the leader was told of.
        let (last, committed) = log_state(&log_dir).await;
        damage(&log_dir, how);
        let (last_after, committed_after) = log_state(&log_dir).await;
        assert_eq!(last_after, last, "{how:?}: the entries are all kept");
        assert!(
            committed_after <= committed,
            "{how:?}: committed {committed_after} after the cut, {committed} before"
        );

        cluster.start_node(follower).await;
        check_all_present(&cluster, follower, &acknowledged).await;
    }
    // The log goes on after the cut, and survives a plain restart.
    write_sessions(&cluster, leader, next..next + 20, &mut acknowledged).await;
    check_all_present(&cluster, follower, &acknowledged).await;
    cluster.crash_node(follower).await;
    cluster.start_node(follower).await;
    check_all_present(&cluster, follower, &acknowledged).await;
    cluster.shutdown().await;
}
