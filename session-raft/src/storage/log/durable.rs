//! The durable log: the write-ahead log's operations as the log store calls
//! them, its reads, and its life cycle (open, drop).
//!
//! A write is encoded on the caller's thread and queued for the writer (see
//! [`super::shared`]); nothing here waits for the disk except `save_vote`
//! and `truncate_after`, which await the fsync of their record. Reads are
//! served from the cache of the log's tail, and otherwise read back from the
//! segment files with one positioned read per entry, checksum checked.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use bytes::Bytes;
use openraft::storage::IOFlushed;
use parking_lot::Mutex;

use super::frame::{self, Record, HEADER_LEN};
use super::index::Loc;
use super::op::{Done, Target};
use super::recovery::{self, purgeable};
use super::shared::{stopped, Cached, Queued, Shared, State, QUEUE_BYTES};
use super::writer::Writer;
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// Takes the directory's lock: two logs appending to the same files would
/// destroy each other's records.
fn lock(dir: &Path) -> io::Result<File> {
    let path = dir.join("wal.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "raft log in {} is in use (by another process, or another LogStore here)",
                dir.display()
            ),
        )),
        Err(errno) => Err(io::Error::new(
            io::Error::from(errno).kind(),
            format!("locking {}: {errno}", path.display()),
        )),
    }
}

/// The durable log (see the module docs).
pub(super) struct DurableLog {
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
    _lock: File,
}

impl std::fmt::Debug for DurableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (purged, last) = self.state();
        f.debug_struct("DurableLog")
            .field("purged", &purged)
            .field("last", &last)
            .finish_non_exhaustive()
    }
}

impl DurableLog {
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock = lock(dir)?;
        let recovered = recovery::recover(dir)?;
        let current = recovered
            .segments
            .last()
            .map(|s| (s.seq, Arc::clone(&s.file)));
        let (seq, file) = current.ok_or_else(|| io::Error::other("raft log: no segment"))?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                index: recovered.index,
                cache: VecDeque::new(),
                cache_bytes: 0,
                files: recovered
                    .segments
                    .iter()
                    .map(|s| (s.seq, Arc::clone(&s.file)))
                    .collect(),
                segments: recovered
                    .segments
                    .iter()
                    .map(|s| (s.seq, s.max_index))
                    .collect(),
                tail: recovered.tail_len,
                next_seq: 1,
                written: 0,
                failed: None,
                tx: Some(tx),
                held: Vec::new(),
            }),
            queue: tokio::sync::Semaphore::new(QUEUE_BYTES as usize),
            synced: Default::default(),
        });
        let writer = Writer::new(
            PathBuf::from(dir),
            Arc::clone(&shared),
            (seq, file, recovered.tail_len),
            recovered.next_batch,
        );
        let writer = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            shared,
            writer: Some(writer),
            _lock: lock,
        })
    }

    pub(super) fn vote(&self) -> Option<Vote> {
        self.shared.state.lock().index.vote
    }

    pub(super) fn committed(&self) -> Option<LogId> {
        self.shared.state.lock().index.committed
    }

    /// Last purged log id, and the last log id (the purge point if no entry
    /// is left).
    pub(super) fn state(&self) -> (Option<LogId>, Option<LogId>) {
        let state = self.shared.state.lock();
        (state.index.purged, state.index.last())
    }

    /// Durable when it returns.
    pub(super) async fn save_vote(&self, vote: &Vote) -> io::Result<()> {
        let body = frame::encode(&Record::Vote(*vote))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = self.shared.state.lock();
            state.check()?;
            state.queue(Queued::new(body, false, Some(Done::Waiter(tx))))?;
            state.index.vote = Some(*vote);
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Lazy: durable with the next fsync.
    pub(super) fn save_committed(&self, committed: Option<LogId>) -> io::Result<()> {
        let body = frame::encode(&Record::Committed(committed))?;
        let mut state = self.shared.state.lock();
        state.check()?;
        state.queue(Queued::new(body, true, None))?;
        state.index.committed = committed;
        Ok(())
    }

    /// Queues `entries`; `callback` fires once an fsync covers them.
    pub(super) async fn append(
        &self,
        entries: Vec<Entry>,
        callback: IOFlushed<TypeConfig>,
    ) -> io::Result<()> {
        let mut callback = Some(callback);
        let result = self.queue_entries(entries, &mut callback).await;
        if let (Err(error), Some(callback)) = (&result, callback) {
            callback.io_completed(Err(io::Error::new(error.kind(), error.to_string())));
        }
        result
    }

    async fn queue_entries(
        &self,
        entries: Vec<Entry>,
        callback: &mut Option<IOFlushed<TypeConfig>>,
    ) -> io::Result<()> {
        let encoded = entries
            .into_iter()
            .map(|entry| Ok((Bytes::from(frame::encode_entry(&entry)?), entry)))
            .collect::<io::Result<Vec<(Bytes, Entry)>>>()?;
        if let Some(pair) = encoded
            .windows(2)
            .find(|p| p[1].1.log_id.index != p[0].1.log_id.index + 1)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "raft log: appended entries {} and {} are not consecutive",
                    pair[0].1.log_id, pair[1].1.log_id
                ),
            ));
        }
        let bytes: usize = encoded.iter().map(|(body, _)| body.len()).sum();
        let permits = bytes.min(QUEUE_BYTES as usize) as u32;
        if permits > 0 {
            self.shared
                .queue
                .acquire_many(permits)
                .await
                .map_err(|_| stopped())?
                .forget();
        }
        let mut state = self.shared.state.lock();
        let checked = state.check().and_then(|()| match encoded.first() {
            Some((_, first)) => state.index.check_append(first.log_id.index),
            None => Ok(()),
        });
        if let Err(error) = checked {
            self.shared.release(u64::from(permits));
            return Err(error);
        }
        let Some(last) = encoded.len().checked_sub(1) else {
            // Nothing to write: complete once what is queued is durable.
            let done = callback.take().map(Done::Flushed);
            state.send(Target::Barrier, Queued::new(Vec::new(), false, done))?;
            return Ok(());
        };
        for (k, (body, entry)) in encoded.into_iter().enumerate() {
            let log_id = entry.log_id;
            let mut queued = Queued {
                body: body.clone(),
                lazy: false,
                done: None,
                permits: 0,
                entry_bytes: body.len() as u64,
                delete: Vec::new(),
            };
            if k == last {
                // The whole append's budget comes back with its last entry.
                queued.done = callback.take().map(Done::Flushed);
                queued.permits = permits;
            }
            let (loc, seq) = match state.queue(queued) {
                Ok(placed) => placed,
                Err(error) => {
                    if k < last {
                        self.shared.release(u64::from(permits));
                    }
                    return Err(error);
                }
            };
            state.index.append(log_id, loc);
            state.push_cache(log_id.index, seq, body, entry);
            if let Some((_, max)) = state.segments.last_mut() {
                *max = (*max).max(Some(log_id.index));
            }
        }
        state.evict();
        Ok(())
    }

    /// Durable when it returns, so that entries the leader overwrote never
    /// come back.
    pub(super) async fn truncate_after(&self, keep: Option<LogId>) -> io::Result<()> {
        let body = frame::encode(&Record::Truncate(keep))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = self.shared.state.lock();
            state.check()?;
            if !state.index.truncates(keep) {
                return Ok(());
            }
            state.queue(Queued::new(body, false, Some(Done::Waiter(tx))))?;
            state.index.truncate_after(keep);
            state.trim_cache();
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Lazy: the record is durable with the next fsync, and only then are
    /// the segment files that held nothing but purged entries deleted.
    pub(super) fn purge(&self, upto: LogId) -> io::Result<()> {
        let body = frame::encode(&Record::Purge(upto))?;
        let mut state = self.shared.state.lock();
        state.check()?;
        if !state.index.purges(&upto) {
            return Ok(());
        }
        let gone = purgeable(&state.segments, Some(upto.index));
        let delete = state.segments.drain(..gone).map(|(seq, _)| seq).collect();
        let mut queued = Queued::new(body, true, None);
        queued.delete = delete;
        state.queue(queued)?;
        state.index.purge(upto);
        state.trim_cache();
        Ok(())
    }

    /// The entries at `start..end` (`end` `None`: to the last) that the log
    /// holds.
    pub(super) fn entries(&self, start: u64, end: Option<u64>) -> io::Result<Vec<Entry>> {
        enum Source {
            Decoded(Entry),
            Cached(Bytes),
            File(Arc<File>, Loc),
        }
        let sources = {
            let state = self.shared.state.lock();
            let range = state.index.clip(start, end);
            let mut sources = Vec::with_capacity((range.end - range.start) as usize);
            for index in range {
                match state.cached(index) {
                    Some(Cached {
                        entry: Some(entry), ..
                    }) => {
                        sources.push(Source::Decoded(entry.clone()));
                        continue;
                    }
                    Some(cached) => {
                        sources.push(Source::Cached(cached.body.clone()));
                        continue;
                    }
                    None => {}
                }
                let loc = state.index.get(index).ok_or_else(|| {
                    io::Error::other(format!("raft log: entry {index} has no location"))
                })?;
                let file = state.files.get(&loc.segment).ok_or_else(|| {
                    io::Error::other(format!("raft log: segment {} is not open", loc.segment))
                })?;
                sources.push(Source::File(Arc::clone(file), loc));
            }
            sources
        };
        // Files are read without the lock: records are never rewritten in
        // place, and a deleted segment's open file stays readable.
        sources
            .into_iter()
            .map(|source| match source {
                Source::Decoded(entry) => Ok(entry),
                Source::Cached(body) => frame::decode_entry(&body),
                Source::File(file, loc) => {
                    let mut buf = vec![0; HEADER_LEN + loc.len as usize];
                    file.read_exact_at(&mut buf, loc.offset)?;
                    frame::decode_entry(frame::check(&buf, loc.segment)?)
                }
            })
            .collect()
    }

    /// The last queue position handed out, and the last one synced (tests).
    #[cfg(test)]
    pub(super) fn progress(&self) -> (u64, u64) {
        let queued = self.shared.state.lock().next_seq - 1;
        let synced = self
            .shared
            .synced
            .load(std::sync::atomic::Ordering::Acquire);
        (queued, synced)
    }

    /// Lazy records held back from the writer (tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.shared.state.lock().held.len()
    }

    /// Cached entries and their bytes (tests).
    #[cfg(test)]
    pub(super) fn cache_stats(&self) -> (usize, usize) {
        let state = self.shared.state.lock();
        (state.cache.len(), state.cache_bytes)
    }
}

impl Drop for DurableLog {
    /// Lets the writer write and sync what is queued, and waits for it, so
    /// that a log reopened after this sees everything.
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.release_held();
        drop(state.tx.take());
        drop(state);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
