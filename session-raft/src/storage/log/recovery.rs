//! Opening the durable log: finding its segment files, replaying them into a
//! [`LogIndex`], and cutting off a torn tail.
//!
//! # Torn tail or damage?
//!
//! The writer writes one batch of frames, fdatasyncs it, and only then
//! writes the next (see [`super::writer`]), so at most one batch, the last,
//! is ever on its way to disk. A crash (power loss, kernel panic) can leave
//! any part of that batch missing, zeroed or garbled, in any order: the
//! kernel writes its pages back in no particular order. Everything before
//! it was fsync'd, and nothing in it was acknowledged yet (its callbacks
//! fire after the fdatasync).
//!
//! So on open, frames are read in order and grouped into batches (a batch
//! ends with a frame marked as its last). At the first frame that does not
//! check out, or at a file end inside a batch:
//!
//! - in a segment other than the last, the log is damaged: open fails;
//! - in the last segment, the rest of the file is searched for frames that
//!   do check out. One of a *later* batch means that the damaged batch had
//!   been fsync'd before it was written: damage in the middle, open fails
//!   with a message naming the file and offsets. Otherwise the damage is the
//!   torn last batch: the file is cut back to the end of the last complete
//!   batch (and fsync'd), with a warning. A batch is thus all or nothing.
//!
//! Frames that check out but do not decode are damage too (never a panic).
//!
//! A last batch damaged *after* its fsync (by the disk, or by hand) looks
//! the same as a torn one and is cut off too, although its writes were
//! acknowledged. For a follower that means its log goes back behind what
//! it told the leader, which openraft's leader does not accept for durable
//! members (`allow_log_reversion` is off): it panics. A real torn write
//! never does that, since nothing in it was acknowledged.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::frame::{self, Frame, Record, FORMAT, HEADER_LEN, MAGIC};
use super::index::{Loc, LogIndex};

/// The file today's layout must not find: the redb database of versions
/// before the write-ahead log.
pub(super) const OLD_REDB_FILE: &str = "raft-log.redb";

/// File name of segment `seq`.
pub(super) fn segment_name(seq: u32) -> String {
    format!("segment-{seq:010}.wal")
}

fn segment_seq(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".wal")?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn damaged(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Makes `dir`'s entries (created or removed files) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens segment `seq` for reads and appends.
fn open_segment(path: &Path) -> io::Result<Arc<File>> {
    Ok(Arc::new(
        File::options().read(true).append(true).open(path)?,
    ))
}

/// Creates segment `seq` holding only its state record (its own write
/// batch `batch`), fsync'd with its directory entry, and returns it with its
/// length.
pub(super) fn create_segment(
    dir: &Path,
    seq: u32,
    state: &[u8],
    batch: u32,
) -> io::Result<(Arc<File>, u64)> {
    use std::io::Write as _;
    let path = dir.join(segment_name(seq));
    let file = File::options()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&path)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + state.len());
    frame::write_frame(&mut bytes, seq, batch, true, state);
    (&file).write_all(&bytes)?;
    file.sync_data()?;
    sync_dir(dir)?;
    Ok((Arc::new(file), bytes.len() as u64))
}

/// One segment file as the log found it.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) seq: u32,
    pub(super) file: Arc<File>,
    /// Highest entry index ever written to it.
    pub(super) max_index: Option<u64>,
}

/// The replayed log.
#[derive(Debug)]
pub(super) struct Recovered {
    pub(super) index: LogIndex,
    /// Ascending; the last is the one appended to.
    pub(super) segments: Vec<Segment>,
    /// Bytes in the last segment.
    pub(super) tail_len: u64,
    /// Number of the next write batch.
    pub(super) next_batch: u32,
}

/// How far a segment's bytes read back.
#[derive(Debug)]
pub(super) struct Scan {
    /// Frames of the complete write batches, in order.
    pub(super) frames: Vec<Frame>,
    /// Bytes up to the end of the last complete batch.
    pub(super) complete: usize,
    /// Number the batch after the complete ones has.
    pub(super) next_batch: Option<u32>,
    /// Where and why reading stopped early, with the number of the batch the
    /// damage is in (if known).
    pub(super) damage: Option<(usize, String, Option<u32>)>,
}

/// Reads the frames of `data` (segment `seq`), whose first batch should be
/// `expected` (if known).
pub(super) fn scan(data: &[u8], seq: u32, mut expected: Option<u32>) -> io::Result<Scan> {
    let mut frames = Vec::new();
    let mut open: Vec<Frame> = Vec::new();
    let (mut pos, mut complete) = (0, 0);
    let mut damage = None;
    while pos < data.len() {
        match frame::frame_at(data, pos, seq) {
            Ok(found) => {
                let want = open.first().map(|f| f.batch).or(expected);
                if let Some(want) = want.filter(|want| *want != found.batch) {
                    return Err(damaged(format!(
                        "the record at offset {pos} belongs to write batch {}, expected {want}",
                        found.batch
                    )));
                }
                pos = found.end();
                let (batch, last) = (found.batch, found.last);
                open.push(found);
                if last {
                    frames.append(&mut open);
                    complete = pos;
                    expected = Some(frame::batch_number(batch.wrapping_add(1)));
                }
            }
            Err(bad) => {
                damage = Some((pos, bad.to_string()));
                break;
            }
        }
    }
    if damage.is_none() && !open.is_empty() {
        damage = Some((pos, "the file ends inside a write batch".to_owned()));
    }
    let batch = open.first().map(|f| f.batch).or(expected);
    Ok(Scan {
        frames,
        complete,
        next_batch: expected,
        damage: damage.map(|(at, why)| (at, why, batch)),
    })
}

/// Offset of a frame after `from` that checks out and belongs to a batch
/// other than `batch` (a later write), if there is one.
pub(super) fn later_write(
    data: &[u8],
    from: usize,
    seq: u32,
    mut batch: Option<u32>,
) -> Option<usize> {
    let mut pos = from + 1;
    while pos + HEADER_LEN <= data.len() {
        if data[pos..pos + MAGIC.len()] != MAGIC {
            pos += 1;
            continue;
        }
        match frame::frame_at(data, pos, seq) {
            Ok(found) if batch.is_some_and(|b| b != found.batch) => return Some(pos),
            Ok(found) => {
                batch = Some(found.batch);
                pos = found.end();
            }
            Err(_) => pos += 1,
        }
    }
    None
}

/// Cuts segment `path` back to `len` bytes, fsync'd.
fn cut(path: &Path, len: usize) -> io::Result<()> {
    let file = File::options().write(true).open(path)?;
    file.set_len(len as u64)?;
    file.sync_all()
}

fn listed_segments(dir: &Path) -> io::Result<Vec<u32>> {
    let mut seqs = Vec::new();
    for item in fs::read_dir(dir)? {
        let name = item?.file_name();
        if let Some(seq) = name.to_str().and_then(segment_seq) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    if let Some(pair) = seqs.windows(2).find(|pair| pair[1] != pair[0] + 1) {
        return Err(damaged(format!(
            "raft log in {}: segment files {} to {} are missing",
            dir.display(),
            segment_name(pair[0] + 1),
            segment_name(pair[1] - 1)
        )));
    }
    Ok(seqs)
}

/// Replays the frames of one segment (the first left on disk if `first`).
fn replay(
    index: &mut LogIndex,
    data: &[u8],
    seq: u32,
    frames: &[Frame],
    first: bool,
) -> io::Result<Option<u64>> {
    let record = |found: &Frame| frame::decode(&data[found.body.clone()]);
    let Some((head, rest)) = frames.split_first() else {
        return Err(damaged("the segment holds no records".into()));
    };
    match record(head)? {
        Record::State(state) if state.format != FORMAT => {
            return Err(damaged(format!(
                "layout version {} is not this version's ({FORMAT})",
                state.format
            )))
        }
        Record::State(state) if first => index.adopt(&state),
        Record::State(state) if state == index.state() => {}
        Record::State(state) => {
            return Err(damaged(format!(
                "its state record {state:?} disagrees with the segments before it ({:?})",
                index.state()
            )))
        }
        _ => {
            return Err(damaged(
                "the segment does not start with a state record".into(),
            ))
        }
    }
    let mut max_index = None;
    for found in rest {
        match record(found)? {
            Record::Entry(entry) => {
                let log_id = entry.log_id;
                index
                    .check_append(log_id.index)
                    .map_err(|e| damaged(e.to_string()))?;
                let loc = Loc {
                    segment: seq,
                    len: found.body.len() as u32,
                    offset: found.offset as u64,
                };
                index.append(log_id, loc);
                max_index = max_index.max(Some(log_id.index));
            }
            Record::Vote(vote) => index.vote = Some(vote),
            Record::Committed(committed) => index.committed = committed,
            Record::Truncate(keep) => index.truncate_after(keep),
            Record::Purge(upto) => index.purge(upto),
            Record::State(_) => {
                return Err(damaged(format!(
                    "a state record at offset {} (only the first record may be one)",
                    found.offset
                )))
            }
        }
    }
    Ok(max_index)
}

/// How many of the oldest segments (never the last) only hold entries up to
/// `purged`, so that their files can go.
pub(super) fn purgeable(segments: &[(u32, Option<u64>)], purged: Option<u64>) -> usize {
    let Some(purged) = purged else { return 0 };
    let older = &segments[..segments.len().saturating_sub(1)];
    older
        .iter()
        .take_while(|(_, max)| max.is_none_or(|max| max <= purged))
        .count()
}

/// Opens (or creates) the log in `dir`.
pub(super) fn recover(dir: &Path) -> io::Result<Recovered> {
    let old = dir.join(OLD_REDB_FILE);
    if old.exists() {
        return Err(damaged(format!(
            "{} is a raft log in the redb layout of an older session-raft version; this \
             version keeps its log as write-ahead segment files and cannot read it (there is \
             no migration): remove this node's data directory, or at least that file, and \
             let the node rejoin its cluster from the leader",
            old.display()
        )));
    }
    let seqs = listed_segments(dir)?;
    let mut index = LogIndex::default();
    let mut segments: Vec<Segment> = Vec::new();
    let (mut tail_len, mut next_batch) = (0u64, None);
    for (k, &seq) in seqs.iter().enumerate() {
        let path = dir.join(segment_name(seq));
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("raft log {}: {e}", path.display()));
        let data = fs::read(&path).map_err(context)?;
        let last = k + 1 == seqs.len();
        let scan = scan(&data, seq, next_batch).map_err(context)?;
        if let Some((at, why, batch)) = &scan.damage {
            check_tail(&path, &data, seq, last, (*at, why, *batch))?;
            cut(&path, scan.complete).map_err(context)?;
            if scan.complete == 0 {
                // Its creation was cut short: nothing in it was ever used.
                fs::remove_file(&path).map_err(context)?;
                sync_dir(dir)?;
                break;
            }
        }
        let max_index = replay(&mut index, &data, seq, &scan.frames, k == 0).map_err(context)?;
        next_batch = scan.next_batch;
        tail_len = scan.complete as u64;
        let file = open_segment(&path).map_err(context)?;
        segments.push(Segment {
            seq,
            file,
            max_index,
        });
    }
    let first_seq = seqs.first().copied().unwrap_or(1);
    if first_seq > 1 {
        if let Some(gap) = index.missing() {
            return Err(damaged(format!(
                "raft log in {}: entries {} to {} are missing (a segment file was removed?)",
                dir.display(),
                gap.start,
                gap.end - 1
            )));
        }
    }
    let next_batch = next_batch.unwrap_or(0);
    let Some(last) = segments.last() else {
        if first_seq > 1 {
            return Err(damaged(format!(
                "raft log in {}: no segment is left to read",
                dir.display()
            )));
        }
        let state = frame::encode(&Record::State(index.state()))?;
        let (file, len) = create_segment(dir, 1, &state, next_batch)?;
        return Ok(Recovered {
            index,
            segments: vec![Segment {
                seq: 1,
                file,
                max_index: None,
            }],
            tail_len: len,
            next_batch: frame::batch_number(next_batch.wrapping_add(1)),
        });
    };
    // What was replayed may be in the page cache only (after a process
    // crash): make it durable before deleting anything on its strength.
    last.file.sync_data()?;
    let maxes: Vec<(u32, Option<u64>)> = segments.iter().map(|s| (s.seq, s.max_index)).collect();
    let gone = purgeable(&maxes, index.purged.map(|p| p.index));
    if gone > 0 {
        for segment in segments.drain(..gone) {
            fs::remove_file(dir.join(segment_name(segment.seq)))?;
        }
        sync_dir(dir)?;
    }
    Ok(Recovered {
        index,
        segments,
        tail_len,
        next_batch,
    })
}

/// Decides about damage found at `at` in segment `path`: a torn tail of the
/// last segment is `Ok` (to be cut), anything else an error saying why.
fn check_tail(
    path: &Path,
    data: &[u8],
    seq: u32,
    last: bool,
    (at, why, batch): (usize, &str, Option<u32>),
) -> io::Result<()> {
    let shown = path.display();
    if !last {
        return Err(damaged(format!(
            "raft log {}: {why} at offset {at}, in a segment that is not the last: the log is \
             damaged; refusing to open it (remove this node's data directory to let it rejoin \
             from the leader)",
            shown
        )));
    }
    if let Some(later) = later_write(data, at, seq, batch) {
        return Err(damaged(format!(
            "raft log {}: {why} at offset {at}, but a valid record of a later write follows at \
             offset {later}: the log is damaged in the middle, not torn at its end; refusing \
             to open it (remove this node's data directory to let it rejoin from the leader)",
            shown
        )));
    }
    tracing::warn!(
        file = %shown,
        offset = at,
        bytes = data.len() - at.min(data.len()),
        "raft log: {why}; cutting off the last write: torn by a crash before its fsync \
         completed (so never acknowledged), or damaged since"
    );
    Ok(())
}
