//! Raft log storage: the vote, the log entries, the purge point and the
//! committed log id, either durable on disk ([`LogStore::open`]) or in memory
//! ([`LogStore::in_memory`], for `--ephemeral` and tests), behind one type so
//! that the node picks at run time.
//!
//! # The durable log: a segmented write-ahead log of our own
//!
//! A Raft log is appended at its end, cut at its end (a conflicting suffix)
//! and dropped at its start (behind a snapshot), so it is kept as a
//! write-ahead log: records in write order in segment files
//! (`segment-NNNNNNNNNN.wal` in the log directory, closed at
//! [`SEGMENT_BYTES`](shared::SEGMENT_BYTES)), each record framed with its
//! length and a CRC-32 ([`frame`]). Every write appends one record: an
//! entry, a vote, the committed log id, a truncation or a purge point; each
//! segment starts with a record of the whole state but the entries, so that
//! the oldest segments can be deleted once a purge has passed them.
//!
//! The first version kept the log in redb: every append was a transaction
//! that RaftCore awaited (with its fsync) on a blocking thread, and it wrote
//! about 28 KB to disk per 72-byte entry appended alone and 570-600 bytes
//! per entry 64 to a transaction (copy-on-write B-tree pages;
//! `benches/log.rs`). Here an append writes its record and nothing else: a
//! 16-byte header and a kind byte over the encoded entry, and returns
//! before it is on disk. The kernel still writes whole 4 KiB pages, so an
//! append synced on its own costs a page; appends sharing an fdatasync
//! share their pages (about 3x the entry at 64 in flight).
//!
//! Why not the `raft-log` crate (chunked files, a checksum per record, a
//! flush worker with group commit, purge by deleting whole chunks, by
//! openraft's author)? Its version 0.4.6 (with `chunked-wal` 0.2.3) fails
//! our crash rules. On open it stops at the first record that does not
//! decode and cuts the file there only if the record is incomplete or the
//! rest is zeros: a garbled last record (a torn write that left garbage) is
//! an open error, so a node could not restart after such a crash; and a
//! damaged length inside an earlier record reads as "incomplete", so every
//! valid, acknowledged record after it is silently cut off. Records also
//! carry no length, so damage cannot be stepped over to check what follows.
//! Its cache also keeps every entry of the open chunk (up to 1 GB by
//! default) in memory.
//!
//! # What is durable when
//!
//! All writes go, in call order, through one queue to one writer thread
//! ([`writer`]), which writes whatever has queued up as one batch, issues
//! one fdatasync for it, and then reports every write of the batch as done.
//! Under load many appends share one fdatasync (group commit); RaftCore
//! never waits on the disk:
//!
//! - `append` places its records and queues them, and returns; openraft's
//!   `IOFlushed` callback fires once an fdatasync covers them.
//! - `save_vote` and `truncate_after` return only once an fdatasync covers
//!   their record: a vote must never be forgotten, and entries the leader
//!   overwrote must never come back. Being in the same queue, they keep
//!   their order with appends and purges.
//! - The committed log id and purges are lazy: their records wait for the
//!   next batch that is synced anyway (or at most about 200 ms), held on
//!   the callers' side so that they do not wake the writer (a committed id
//!   comes with nearly every append; see `State::held`). Losing them in a
//!   crash is harmless. The committed id only lets start-up re-apply
//!   committed entries before a leader is heard from; an older one means
//!   fewer are re-applied at once and the rest once the leader sends its
//!   commit index (the state machine is rebuilt from its snapshot at start
//!   either way). Purged entries merely reappear and are purged again. A
//!   purged segment's file is deleted only after the purge record is
//!   synced, so no entry disappears without the record that says it was
//!   purged.
//!
//! `/metrics` counts the fdatasyncs (`session_raft_log_syncs_total`) and,
//! as before, the encoded entry bytes made durable
//! (`session_raft_log_bytes_appended_total`): their ratio shows how well
//! appends share syncs.
//!
//! # Crashes
//!
//! Only the batch being written can be torn by a crash, and none of its
//! writes was acknowledged yet. On open, a damaged or incomplete record
//! that is followed by nothing valid of a later write is that torn tail: it
//! is cut off, back to the end of the last complete batch (a batch is all
//! or nothing), with a warning. Damage anywhere else (an earlier segment,
//! or valid records of a later write after it) is refused with an error
//! that names the file and offsets: the log never silently loses entries
//! from its middle. See [`recovery`].
//!
//! # Memory
//!
//! In memory the log keeps, per entry, only where its record is (16 bytes;
//! openraft's snapshot policy purges the log behind each snapshot), plus a
//! cache of the encoded entries at its tail: up to
//! [`CACHE_BYTES`](shared::CACHE_BYTES) of entries already written, plus
//! those still queued for the writer, at most
//! [`QUEUE_BYTES`](shared::QUEUE_BYTES) (an append waits for room beyond
//! that). Older entries are read back from the files, checksum checked.
//!
//! Entries, votes and log ids are encoded with bincode 2 (serde API) and
//! decoded under a length limit ([`crate::bincode_limit`]); a value that
//! fails to decode is an `InvalidData` error, not a panic. A data directory
//! still holding the redb file of the first version is refused at open.

mod durable;
mod frame;
mod index;
mod memory;
mod op;
mod recovery;
mod shared;
mod writer;

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::RaftLogReader;

use crate::types::{Entry, LogId, TypeConfig, Vote};

use durable::DurableLog;
use memory::MemoryLog;

/// The Raft log store. Cheap to clone: clones share the same log (openraft's
/// log reader is such a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Memory(MemoryLog),
    Durable(DurableLog),
}

/// Inclusive start and exclusive end of a range of log indexes.
fn index_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => i.checked_add(1),
        Bound::Excluded(i) => Some(*i),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl LogStore {
    /// A log kept in memory only: lost when the process exits.
    pub fn in_memory() -> Self {
        Self {
            backend: Arc::new(Backend::Memory(MemoryLog::default())),
        }
    }

    /// The durable log in `dir` (created if missing), reopening what an
    /// earlier run left there. Fails if the directory holds a log of the
    /// older redb layout, is in use by another log, or is damaged other than
    /// at its torn end (see the module docs).
    pub fn open(dir: &Path) -> io::Result<Self> {
        let log = DurableLog::open(dir)?;
        Ok(Self {
            backend: Arc::new(Backend::Durable(log)),
        })
    }

    /// Whether this log survives a restart.
    pub fn is_durable(&self) -> bool {
        matches!(*self.backend, Backend::Durable(_))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = index_bounds(&range);
        // Served inline: from the cache of the tail, else a positioned read
        // per entry (page cache, usually), and replication wants them now.
        match &*self.backend {
            Backend::Memory(log) => Ok(log.entries(start, end)),
            Backend::Durable(log) => log.entries(start, end),
        }
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match &*self.backend {
            Backend::Memory(log) => Ok(log.vote()),
            Backend::Durable(log) => Ok(log.vote()),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let (last_purged_log_id, last_log_id) = match &*self.backend {
            Backend::Memory(log) => log.state(),
            Backend::Durable(log) => log.state(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last_log_id.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        match &*self.backend {
            Backend::Memory(log) => {
                log.save_vote(*vote);
                Ok(())
            }
            Backend::Durable(log) => log.save_vote(vote).await,
        }
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        match &*self.backend {
            Backend::Memory(log) => {
                log.save_committed(committed);
                Ok(())
            }
            Backend::Durable(log) => log.save_committed(committed),
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        match &*self.backend {
            Backend::Memory(log) => Ok(log.committed()),
            Backend::Durable(log) => Ok(log.committed()),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        match &*self.backend {
            Backend::Memory(log) => {
                log.append(entries);
                callback.io_completed(Ok(()));
                Ok(())
            }
            // Returns once the entries are queued; the callback fires when
            // they are synced. Later truncates and purges queue behind them.
            Backend::Durable(log) => log.append(entries, callback).await,
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        match &*self.backend {
            Backend::Memory(log) => {
                log.truncate_after(last_log_id.map(|id| id.index));
                Ok(())
            }
            Backend::Durable(log) => log.truncate_after(last_log_id).await,
        }
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        match &*self.backend {
            Backend::Memory(log) => {
                log.purge(log_id);
                Ok(())
            }
            Backend::Durable(log) => log.purge(log_id),
        }
    }
}

#[cfg(test)]
mod tests;
