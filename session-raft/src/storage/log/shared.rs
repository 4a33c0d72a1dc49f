//! What the callers of the durable log and its writer thread share: the
//! in-memory [`LogIndex`], the cache of the log's tail, the open segment
//! files, and the placing and queueing of records.
//!
//! A write (append, vote, truncation, ...) is placed (its segment and offset
//! decided, the next segment started when the current one is full),
//! recorded in the index and queued for the [writer](super::writer) under
//! one lock, so that the queue order, the file layout and what readers see
//! always agree.
//!
//! The cache holds the encoded entries of a suffix of the log: at most
//! [`CACHE_BYTES`] of those the writer has written (older ones are read back
//! from the files), plus every entry still queued, since those cannot be
//! read back yet. The queue holds at most [`QUEUE_BYTES`] of entries (an
//! append waits for room), so memory stays bounded even if the disk stalls.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::frame::{self, Record, HEADER_LEN, MAX_BODY};
use super::index::{Loc, LogIndex};
use super::op::{Done, Op, Target};
use crate::types::Entry;

/// A segment is closed once it holds this many bytes (it may exceed them
/// by its last record).
pub(super) const SEGMENT_BYTES: u64 = 16 << 20;
/// Encoded entries of the log's tail kept in memory once written.
pub(super) const CACHE_BYTES: usize = 8 << 20;
/// Entries of the log's tail also kept decoded, at most: what replication
/// to a follower that keeps up and the state machine read back, handed out
/// as clones that share the command (see `crate::types::TypeConfig`)
/// instead of decoding the bytes once per reader. A count, since a
/// decoded command is several times its encoded size (1,000 small entries
/// take under 1 MB).
pub(super) const DECODED_ENTRIES: usize = 1024;
/// Encoded entries queued for the writer and not yet written, at most.
pub(super) const QUEUE_BYTES: u32 = 64 << 20;

/// One cached entry.
pub(super) struct Cached {
    pub(super) index: u64,
    /// Its queue position: evictable once the writer got this far.
    pub(super) seq: u64,
    pub(super) body: Bytes,
    /// The entry itself, for the last [`DECODED_ENTRIES`] of the cache.
    pub(super) entry: Option<Entry>,
}

/// Everything callers and the writer share, under one lock.
pub(super) struct State {
    pub(super) index: LogIndex,
    /// Encoded entries of a suffix of the log, in index order.
    pub(super) cache: VecDeque<Cached>,
    pub(super) cache_bytes: usize,
    pub(super) files: BTreeMap<u32, Arc<File>>,
    /// Segment numbers (ascending; the last is appended to) with the
    /// highest entry index each ever got.
    pub(super) segments: Vec<(u32, Option<u64>)>,
    /// Bytes the current segment will have once the queue is written.
    pub(super) tail: u64,
    pub(super) next_seq: u64,
    /// Queue position the writer has written up to.
    pub(super) written: u64,
    pub(super) failed: Option<String>,
    pub(super) tx: Option<Sender<Op>>,
    /// Lazy records queued since the last write that was not: held here
    /// rather than sent, so that they do not wake the writer (a committed id
    /// comes with nearly every append, and each wake-up is two context
    /// switches). The next write that is not lazy takes them along, ahead of
    /// itself; otherwise the writer collects them when it has been idle for
    /// `LAZY_DELAY`. Always behind everything sent and ahead of everything
    /// queued later, since both happen under the state lock.
    pub(super) held: Vec<Op>,
}

/// What the writer thread shares with the callers.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// Room in the queue, in encoded entry bytes.
    pub(super) queue: tokio::sync::Semaphore,
    /// Queue position covered by the last fdatasync (tests check that no
    /// write is reported done before it).
    pub(super) synced: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// The writer has written the queue up to `seq` (not yet synced).
    pub(super) fn wrote(&self, seq: u64) {
        let mut state = self.state.lock();
        state.written = state.written.max(seq);
        state.evict();
    }

    pub(super) fn add_file(&self, seq: u32, file: Arc<File>) {
        self.state.lock().files.insert(seq, file);
    }

    pub(super) fn remove_file(&self, seq: u32) {
        self.state.lock().files.remove(&seq);
    }

    pub(super) fn fail(&self, message: String) {
        self.state.lock().failed.get_or_insert(message);
    }

    /// Everything queued up to `seq` is on disk.
    pub(super) fn synced(&self, seq: u64) {
        self.synced
            .fetch_max(seq, std::sync::atomic::Ordering::Release);
    }

    pub(super) fn release(&self, permits: u64) {
        if permits > 0 {
            self.queue.add_permits(permits as usize);
        }
    }
}

/// An operation about to be queued (see [`Op`]).
pub(super) struct Queued {
    pub(super) body: Bytes,
    pub(super) lazy: bool,
    pub(super) done: Option<Done>,
    pub(super) permits: u32,
    pub(super) entry_bytes: u64,
    pub(super) delete: Vec<u32>,
}

impl Queued {
    pub(super) fn new(body: Vec<u8>, lazy: bool, done: Option<Done>) -> Queued {
        Queued {
            body: body.into(),
            lazy,
            done,
            permits: 0,
            entry_bytes: 0,
            delete: Vec::new(),
        }
    }
}

pub(super) fn stopped() -> io::Error {
    io::Error::other("raft log: the writer thread has stopped")
}

impl State {
    pub(super) fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(message) => Err(io::Error::other(message.clone())),
            None => Ok(()),
        }
    }

    pub(super) fn evict(&mut self) {
        while self.cache_bytes > CACHE_BYTES {
            match self.cache.front() {
                Some(front) if front.seq <= self.written => {
                    self.cache_bytes -= front.body.len();
                    self.cache.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Caches the entry just appended at `index`, after dropping any cached
    /// entry it replaces (an append at or before the last index replaces the
    /// log from there).
    pub(super) fn push_cache(&mut self, index: u64, seq: u64, body: Bytes, entry: Entry) {
        while let Some(back) = self.cache.back().filter(|c| c.index >= index) {
            self.cache_bytes -= back.body.len();
            self.cache.pop_back();
        }
        self.cache_bytes += body.len();
        self.cache.push_back(Cached {
            index,
            seq,
            body,
            entry: Some(entry),
        });
        // Only the newest stay decoded; older ones are decoded on demand.
        if let Some(older) = self
            .cache
            .len()
            .checked_sub(DECODED_ENTRIES + 1)
            .and_then(|k| self.cache.get_mut(k))
        {
            older.entry = None;
        }
    }

    /// Drops cached entries that are no longer in the log.
    pub(super) fn trim_cache(&mut self) {
        let (first, next) = (self.index.first_index(), self.index.next_index());
        while let Some(back) = self.cache.back().filter(|c| c.index >= next) {
            self.cache_bytes -= back.body.len();
            self.cache.pop_back();
        }
        while let Some(front) = self.cache.front().filter(|c| c.index < first) {
            self.cache_bytes -= front.body.len();
            self.cache.pop_front();
        }
    }

    pub(super) fn cached(&self, index: u64) -> Option<&Cached> {
        let front = self.cache.front()?.index;
        let found = self
            .cache
            .get(usize::try_from(index.checked_sub(front)?).ok()?)?;
        (found.index == index).then_some(found)
    }

    pub(super) fn send(&mut self, target: Target, queued: Queued) -> io::Result<u64> {
        let seq = self.next_seq;
        let op = Op {
            seq,
            target,
            body: queued.body,
            lazy: queued.lazy,
            done: queued.done,
            permits: queued.permits,
            entry_bytes: queued.entry_bytes,
            delete: queued.delete,
        };
        let Some(tx) = &self.tx else {
            return Err(stopped());
        };
        if op.lazy {
            self.held.push(op);
        } else {
            // The held lazy records first: they were queued earlier.
            let mut failed = false;
            for op in self.held.drain(..).chain(std::iter::once(op)) {
                let unsent = if failed {
                    Some(op)
                } else {
                    tx.send(op).err().map(|mpsc::SendError(op)| op)
                };
                if let Some(op) = unsent {
                    failed = true;
                    if let Some(done) = op.done {
                        done.complete(Err(&(io::ErrorKind::Other, stopped().to_string())));
                    }
                }
            }
            if failed {
                return Err(stopped());
            }
        }
        self.next_seq += 1;
        Ok(seq)
    }

    /// Sends the held lazy records to the writer; whether there were any.
    pub(super) fn release_held(&mut self) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        let any = !self.held.is_empty();
        for op in self.held.drain(..) {
            // A writer that is gone has failed every later write anyway;
            // lazy records have nobody waiting on them.
            let _ = tx.send(op);
        }
        any
    }

    /// Places a record at the end of the log (starting the next segment
    /// first if the current one is full) and queues it.
    pub(super) fn queue(&mut self, queued: Queued) -> io::Result<(Loc, u64)> {
        if queued.body.len() > MAX_BODY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "raft log: a record of {} bytes is too large",
                    queued.body.len()
                ),
            ));
        }
        if self.tail >= SEGMENT_BYTES {
            let seq = self.segments.last().map_or(1, |(seq, _)| seq + 1);
            let state = frame::encode(&Record::State(self.index.state()))?;
            let len = (HEADER_LEN + state.len()) as u64;
            self.send(Target::NewSegment(seq), Queued::new(state, false, None))?;
            self.segments.push((seq, None));
            self.tail = len;
        }
        let segment = self.segments.last().map_or(1, |(seq, _)| *seq);
        let loc = Loc {
            segment,
            len: queued.body.len() as u32,
            offset: self.tail,
        };
        let seq = self.send(
            Target::Append {
                segment,
                offset: self.tail,
            },
            queued,
        )?;
        self.tail += (HEADER_LEN as u64) + u64::from(loc.len);
        Ok((loc, seq))
    }
}
