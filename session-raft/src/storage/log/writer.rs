//! The writer thread: the one place that writes and fsyncs segment files.
//!
//! Callers queue operations (already encoded, their place in the file
//! already decided, see [`super::durable`]) on a channel and return. The
//! writer takes whatever has queued up, writes it as one batch of frames
//! with one `write`, fdatasyncs, and then completes every operation of the
//! batch (openraft's `IOFlushed` callbacks, `save_vote`'s waiter, ...). While
//! it waits for the disk, new operations queue up and form the next batch:
//! that is the group commit, with no timer and no waiting when idle. One
//! batch is written and synced before the next is started, which is what
//! lets recovery treat the last batch as the only one that can be torn.
//!
//! Lazy operations (the committed log id, a purge) ask for no fsync of their
//! own: they wait in memory for the next batch that does, or at most
//! [`LAZY_DELAY`]. Purged segment files are deleted only after the batch
//! holding the purge record is synced, so no file goes before the record
//! that says why.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{self, HEADER_LEN};
use super::op::{Op, Target};
use super::recovery::{create_segment, segment_name, sync_dir};
use super::shared::Shared;

/// Longest time a lazy operation waits for a batch to ride along with.
const LAZY_DELAY: Duration = Duration::from_millis(200);
/// A batch stops taking queued operations at this many bytes (it always
/// takes one).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// The writer's side: the segment being appended to, and the batch number.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) shared: Arc<Shared>,
    pub(super) file: Arc<File>,
    pub(super) segment: u32,
    pub(super) len: u64,
    pub(super) batch: u32,
    failed: Option<(io::ErrorKind, String)>,
    /// `session_raft_log_syncs_total`, registered when the log opens (with
    /// the member, after the application installed its recorder).
    syncs: metrics::Counter,
    /// `session_raft_log_bytes_appended_total`.
    bytes_appended: metrics::Counter,
}

impl Writer {
    pub(super) fn new(
        dir: PathBuf,
        shared: Arc<Shared>,
        (segment, file, len): (u32, Arc<File>, u64),
        batch: u32,
    ) -> Writer {
        Writer {
            dir,
            shared,
            file,
            segment,
            len,
            batch,
            failed: None,
            syncs: metrics::counter!("session_raft_log_syncs_total"),
            bytes_appended: metrics::counter!("session_raft_log_bytes_appended_total"),
        }
    }

    /// Runs until every sender is gone and everything queued is durable.
    pub(super) fn run(mut self, rx: Receiver<Op>) {
        let mut held: Vec<Op> = Vec::new();
        let mut held_since = Instant::now();
        // Lazy records the callers held back, collected after an idle
        // LAZY_DELAY: due, so written at once.
        let mut collected = false;
        loop {
            let mut ops = std::mem::take(&mut held);
            let holding = !ops.is_empty();
            let (mut closed, mut overdue) = (false, std::mem::take(&mut collected));
            if ops.is_empty() {
                match rx.recv_timeout(LAZY_DELAY) {
                    Ok(op) => ops.push(op),
                    Err(RecvTimeoutError::Timeout) => {
                        collected = self.shared.state.lock().release_held();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.recv_timeout(LAZY_DELAY.saturating_sub(held_since.elapsed())) {
                    Ok(op) => ops.push(op),
                    Err(RecvTimeoutError::Timeout) => overdue = true,
                    Err(RecvTimeoutError::Disconnected) => closed = true,
                }
            }
            let mut bytes: usize = ops.iter().map(|op| op.body.len()).sum();
            while bytes < MAX_BATCH_BYTES && !closed {
                match rx.try_recv() {
                    Ok(op) => {
                        bytes += op.body.len();
                        ops.push(op);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => closed = true,
                }
            }
            if !closed && !overdue && ops.iter().all(|op| op.lazy) {
                if !holding {
                    held_since = Instant::now();
                }
                held = ops;
                continue;
            }
            self.process(ops);
            if closed {
                return;
            }
        }
    }

    /// Writes and syncs `ops` (in order), in as few batches as segment
    /// starts allow.
    fn process(&mut self, ops: Vec<Op>) {
        let mut pending = Vec::new();
        for op in ops {
            if let Target::NewSegment(seq) = op.target {
                self.flush(&mut pending);
                self.start_segment(seq, op);
            } else {
                pending.push(op);
            }
        }
        self.flush(&mut pending);
    }

    fn start_segment(&mut self, seq: u32, op: Op) {
        if self.failed.is_none() {
            match create_segment(&self.dir, seq, &op.body, self.batch) {
                Ok((file, len)) => {
                    self.batch = frame::batch_number(self.batch.wrapping_add(1));
                    self.shared.add_file(seq, Arc::clone(&file));
                    (self.file, self.segment, self.len) = (file, seq, len);
                }
                Err(error) => self.fail(&error),
            }
        }
        self.finish(vec![op], true);
    }

    /// Writes `pending` as one batch and fdatasyncs it.
    fn flush(&mut self, pending: &mut Vec<Op>) {
        if pending.is_empty() {
            return;
        }
        let ops = std::mem::take(pending);
        if self.failed.is_some() {
            return self.finish(ops, false);
        }
        let framed = ops.iter().filter(|op| op.target != Target::Barrier).count();
        let size: usize = ops.iter().map(|op| HEADER_LEN + op.body.len()).sum();
        let mut buf = Vec::with_capacity(size);
        let mut written = 0;
        for op in &ops {
            let Target::Append { segment, offset } = op.target else {
                continue;
            };
            if (segment, offset) != (self.segment, self.len + buf.len() as u64) {
                // A bug in the caller's bookkeeping: reads would find the
                // wrong records, so write nothing more.
                self.fail(&io::Error::other(format!(
                    "record placed at {}:{offset}, but the log is at {}:{}",
                    segment_name(segment),
                    segment_name(self.segment),
                    self.len + buf.len() as u64
                )));
                return self.finish(ops, false);
            }
            written += 1;
            frame::write_frame(&mut buf, segment, self.batch, written == framed, &op.body);
        }
        if !buf.is_empty() {
            let result = (&*self.file).write_all(&buf).map(|()| {
                // Readable from the file from now on (page cache).
                self.shared.wrote(ops.last().map_or(0, |op| op.seq));
            });
            if let Err(error) = result.and_then(|()| self.file.sync_data()) {
                self.fail(&error);
                return self.finish(ops, false);
            }
            self.len += buf.len() as u64;
            self.batch = frame::batch_number(self.batch.wrapping_add(1));
            self.shared.synced(ops.last().map_or(0, |op| op.seq));
            self.syncs.increment(1);
        }
        self.finish(ops, true);
    }

    /// Completes `ops` (successfully only if `synced` and nothing failed),
    /// gives back their queue budget and deletes the files they free.
    fn finish(&mut self, ops: Vec<Op>, synced: bool) {
        let ok = synced && self.failed.is_none();
        let (mut permits, mut entry_bytes) = (0u64, 0u64);
        let mut deleted = false;
        for op in ops {
            permits += u64::from(op.permits);
            entry_bytes += op.entry_bytes;
            if ok {
                for seq in &op.delete {
                    self.shared.remove_file(*seq);
                    let path = self.dir.join(segment_name(*seq));
                    if let Err(error) = std::fs::remove_file(&path) {
                        tracing::warn!(file = %path.display(), %error, "raft log: purged segment not removed");
                    }
                    deleted = true;
                }
            }
            if let Some(done) = op.done {
                done.complete(if ok { Ok(()) } else { Err(self.failure()) });
            }
        }
        if deleted {
            if let Err(error) = sync_dir(&self.dir) {
                tracing::warn!(%error, "raft log: directory sync after purge failed");
            }
        }
        if ok && entry_bytes > 0 {
            self.bytes_appended.increment(entry_bytes);
        }
        self.shared.release(permits);
    }

    fn failure(&self) -> &(io::ErrorKind, String) {
        const UNKNOWN: &(io::ErrorKind, String) = &(io::ErrorKind::Other, String::new());
        self.failed.as_ref().unwrap_or(UNKNOWN)
    }

    /// Stops writing for good: after a failed write or fsync the file's
    /// state is unknown (the kernel may have dropped the dirty pages), so
    /// nothing more may be acknowledged.
    fn fail(&mut self, error: &io::Error) {
        if self.failed.is_none() {
            let message = format!("raft log writer in {}: {error}", self.dir.display());
            tracing::error!("{message}; the log accepts no more writes");
            self.shared.fail(message.clone());
            self.failed = Some((error.kind(), message));
        }
    }
}
