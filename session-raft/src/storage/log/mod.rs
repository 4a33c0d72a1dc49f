//! Raft log storage: the vote, the log entries, the purge point and the
//! committed log id, either durable on disk ([`LogStore::open`]) or in memory
//! ([`LogStore::in_memory`], for `--ephemeral` and tests), behind one type so
//! that the node picks at run time.
//!
//! # Why redb
//!
//! The durable variant keeps everything in one [redb] database file
//! (`raft-log.redb` in the data directory). redb gives crash-safe, atomic
//! transactions with an fsync on commit (`Durability::Immediate`), so "append
//! these entries" or "truncate and append" is all-or-nothing across a power
//! loss without any recovery code of ours; a hand-written segmented WAL would
//! need its own framing, torn-write detection, segment rotation and purge
//! logic, all of which is where durability bugs hide. Group commit comes from
//! openraft itself, which hands the log store batches of entries, each batch
//! one transaction and one fsync. The cost is some write amplification (a
//! copy-on-write B-tree), acceptable for session-sized entries.
//!
//! Durability rules: the vote, appended entries and truncations are committed
//! with an fsync before openraft hears they are done (`save_vote` returns, the
//! append's `IOFlushed` callback fires). The committed log id and purges are
//! committed without their own fsync: losing them on a crash is harmless
//! (committed is re-learned from the leader; purged entries merely reappear),
//! and they become durable with the next fsync'd commit anyway.
//!
//! Entries, votes and log ids are encoded with bincode 2 (serde API); a value
//! that fails to decode is reported as an `InvalidData` error, not a panic.
//!
//! [redb]: https://docs.rs/redb

mod durable;
mod memory;

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
    /// earlier run left there.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = DurableLog::open(&dir.join("raft-log.redb"))?;
        Ok(Self {
            backend: Arc::new(Backend::Durable(log)),
        })
    }

    /// Whether this log survives a restart.
    pub fn is_durable(&self) -> bool {
        matches!(*self.backend, Backend::Durable(_))
    }

    /// Runs a write on a blocking thread for the durable backend (it may
    /// fsync), inline for the memory backend.
    async fn write<T, F>(&self, op: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Backend) -> io::Result<T> + Send + 'static,
    {
        match &*self.backend {
            Backend::Memory(_) => op(&self.backend),
            Backend::Durable(_) => {
                let backend = Arc::clone(&self.backend);
                tokio::task::spawn_blocking(move || op(&backend))
                    .await
                    .map_err(io::Error::other)?
            }
        }
    }
}

impl Backend {
    fn save_vote(&self, vote: &Vote) -> io::Result<()> {
        match self {
            Backend::Memory(log) => {
                log.save_vote(*vote);
                Ok(())
            }
            Backend::Durable(log) => log.save_vote(vote),
        }
    }

    fn save_committed(&self, committed: Option<LogId>) -> io::Result<()> {
        match self {
            Backend::Memory(log) => {
                log.save_committed(committed);
                Ok(())
            }
            Backend::Durable(log) => log.save_committed(committed),
        }
    }

    fn append(&self, entries: Vec<Entry>) -> io::Result<()> {
        match self {
            Backend::Memory(log) => {
                log.append(entries);
                Ok(())
            }
            Backend::Durable(log) => log.append(&entries),
        }
    }

    fn truncate_after(&self, keep_until: Option<u64>) -> io::Result<()> {
        match self {
            Backend::Memory(log) => {
                log.truncate_after(keep_until);
                Ok(())
            }
            Backend::Durable(log) => log.truncate_after(keep_until),
        }
    }

    fn purge(&self, log_id: LogId) -> io::Result<()> {
        match self {
            Backend::Memory(log) => {
                log.purge(log_id);
                Ok(())
            }
            Backend::Durable(log) => log.purge(log_id),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = index_bounds(&range);
        // Reads are served inline: they hit redb's page cache and the caller
        // (replication) wants them now.
        match &*self.backend {
            Backend::Memory(log) => Ok(log.entries(start, end)),
            Backend::Durable(log) => log.entries(start, end),
        }
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match &*self.backend {
            Backend::Memory(log) => Ok(log.vote()),
            Backend::Durable(log) => log.vote(),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let (last_purged_log_id, last_log_id) = match &*self.backend {
            Backend::Memory(log) => log.state(),
            Backend::Durable(log) => log.state()?,
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
        let vote = *vote;
        self.write(move |backend| backend.save_vote(&vote)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.write(move |backend| backend.save_committed(committed))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        match &*self.backend {
            Backend::Memory(log) => Ok(log.committed()),
            Backend::Durable(log) => log.committed(),
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
        // Awaited here (not fire-and-forget) so that a following truncate or
        // purge cannot overtake this write.
        let result = self.write(move |backend| backend.append(entries)).await;
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.io_completed(Err(io::Error::new(error.kind(), error.to_string())));
                Err(error)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let keep_until = last_log_id.map(|id| id.index);
        self.write(move |backend| backend.truncate_after(keep_until))
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.write(move |backend| backend.purge(log_id)).await
    }
}
