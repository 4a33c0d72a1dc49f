//! The write-ahead log's bytes: how one record is framed in a segment file,
//! and what its body holds.
//!
//! A frame is a 16-byte header and a body:
//!
//! ```text
//! 0..4    magic  b"RSwl"  (lets recovery find frames again after damage)
//! 4..8    len    u32 LE   body length, 1..=MAX_BODY
//! 8..12   batch  u32 LE   number of the write batch; top bit set on the
//!                         batch's last frame
//! 12..16  crc    u32 LE   CRC-32 of the segment number (u32 LE), bytes
//!                         0..12 and the body
//! 16..    body            record kind (one byte), then the value in bincode
//! ```
//!
//! The segment number is in the checksum so that a frame copied from (or
//! left on a reused disk block by) another segment file does not check out.
//! The batch number and its end bit let recovery tell a torn last write from
//! damage in the middle (see [`super::recovery`]).

use std::fmt;
use std::io;
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bincode_limit;
use crate::types::{Entry, LogId, Vote};

/// First bytes of every frame.
pub(super) const MAGIC: [u8; 4] = *b"RSwl";
/// Length of a frame header.
pub(super) const HEADER_LEN: usize = 16;
/// Longest body a frame may have; a longer claim is damage. No entry comes
/// near it: RPC bodies and sessions are limited far below.
pub(super) const MAX_BODY: usize = 256 << 20;
/// Set in the batch word of the last frame of a write batch.
const END_OF_BATCH: u32 = 1 << 31;

/// Version of this layout, recorded in every segment's first record.
pub(super) const FORMAT: u32 = 1;

/// Record kinds (first byte of a body).
pub(super) const ENTRY: u8 = 1;
const VOTE: u8 = 2;
const COMMITTED: u8 = 3;
const TRUNCATE: u8 = 4;
const PURGE: u8 = 5;
const STATE: u8 = 6;

fn checksum(segment: u32, head: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment.to_le_bytes());
    hasher.update(head);
    hasher.update(body);
    hasher.finalize()
}

/// Appends the frame of `body` to `out`.
pub(super) fn write_frame(out: &mut Vec<u8>, segment: u32, batch: u32, last: bool, body: &[u8]) {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&MAGIC);
    head[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    let batch = (batch & !END_OF_BATCH) | if last { END_OF_BATCH } else { 0 };
    head[8..12].copy_from_slice(&batch.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&checksum(segment, &head, body).to_le_bytes());
    out.extend_from_slice(body);
}

/// Number of a write batch as stored (end bit cleared): batch numbers wrap
/// at 2^31, and recovery only ever compares them for equality.
pub(super) fn batch_number(batch: u32) -> u32 {
    batch & !END_OF_BATCH
}

/// One frame found in a segment's bytes.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    /// Offset of its header in the segment.
    pub(super) offset: usize,
    /// Its write batch number.
    pub(super) batch: u32,
    /// Whether it is the last frame of its batch.
    pub(super) last: bool,
    /// Where its body is in the segment.
    pub(super) body: Range<usize>,
}

impl Frame {
    /// Offset just past it.
    pub(super) fn end(&self) -> usize {
        self.body.end
    }
}

/// Why no frame checks out at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bad {
    /// Fewer bytes left than a header, or than the header's length claims.
    Short,
    /// The first four bytes are not the magic.
    Magic,
    /// A length of zero or beyond [`MAX_BODY`].
    Length,
    /// Everything is there but the checksum does not match.
    Checksum,
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bad::Short => "the record is cut short",
            Bad::Magic => "no record header",
            Bad::Length => "the record header has an impossible length",
            Bad::Checksum => "the record's checksum does not match",
        })
    }
}

/// The frame at `offset` of `data` (the bytes of segment `segment`).
pub(super) fn frame_at(data: &[u8], offset: usize, segment: u32) -> Result<Frame, Bad> {
    let Some(head) = data.get(offset..offset.saturating_add(HEADER_LEN)) else {
        return Err(Bad::Short);
    };
    if head[..4] != MAGIC {
        return Err(Bad::Magic);
    }
    let word = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let len = word(4) as usize;
    if len == 0 || len > MAX_BODY {
        return Err(Bad::Length);
    }
    let start = offset + HEADER_LEN;
    let Some(body) = data.get(start..start + len) else {
        return Err(Bad::Short);
    };
    if checksum(segment, &head[..12], body) != word(12) {
        return Err(Bad::Checksum);
    }
    Ok(Frame {
        offset,
        batch: batch_number(word(8)),
        last: word(8) & END_OF_BATCH != 0,
        body: start..start + len,
    })
}

/// What a segment's first record holds: everything but the entries, so that
/// the segments before it can be deleted without losing the vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SegmentState {
    /// Layout version ([`FORMAT`]).
    pub(super) format: u32,
    pub(super) vote: Option<Vote>,
    pub(super) committed: Option<LogId>,
    pub(super) purged: Option<LogId>,
    /// Log id of the last entry, or the purge point if no entry is left.
    pub(super) last: Option<LogId>,
}

/// A decoded record.
#[derive(Debug)]
pub(super) enum Record {
    Entry(Box<Entry>),
    Vote(Vote),
    Committed(Option<LogId>),
    /// Entries after this log id (all if `None`) are gone.
    Truncate(Option<LogId>),
    /// Entries up to and including this log id are gone.
    Purge(LogId),
    State(SegmentState),
}

fn body<T: Serialize>(kind: u8, value: &T) -> io::Result<Vec<u8>> {
    let mut out = vec![kind];
    bincode::serde::encode_into_std_write(value, &mut out, bincode_limit::encode_config())
        .map_err(io::Error::other)?;
    Ok(out)
}

/// The body of `record`.
pub(super) fn encode(record: &Record) -> io::Result<Vec<u8>> {
    match record {
        Record::Entry(entry) => body(ENTRY, entry),
        Record::Vote(vote) => body(VOTE, vote),
        Record::Committed(committed) => body(COMMITTED, committed),
        Record::Truncate(keep) => body(TRUNCATE, keep),
        Record::Purge(upto) => body(PURGE, upto),
        Record::State(state) => body(STATE, state),
    }
}

/// The body of an entry record.
pub(super) fn encode_entry(entry: &Entry) -> io::Result<Vec<u8>> {
    body(ENTRY, entry)
}

/// Decodes a stored value. No length prefix inside it may claim more than
/// the value's own bytes could hold, so a damaged prefix is refused before
/// bincode allocates for it.
fn value<T: DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    match bincode_limit::decode_slice(bytes, bytes.len()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log: trailing bytes in stored {what}"),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log: stored {what} does not decode: {e}"),
        )),
    }
}

/// Decodes a record body.
pub(super) fn decode(body: &[u8]) -> io::Result<Record> {
    let (kind, rest) = body
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "raft log: empty record"))?;
    Ok(match *kind {
        ENTRY => Record::Entry(Box::new(value(rest, "log entry")?)),
        VOTE => Record::Vote(value(rest, "vote")?),
        COMMITTED => Record::Committed(value(rest, "committed log id")?),
        TRUNCATE => Record::Truncate(value(rest, "truncation")?),
        PURGE => Record::Purge(value(rest, "purge point")?),
        STATE => Record::State(value(rest, "segment state")?),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("raft log: unknown record kind {other}"),
            ))
        }
    })
}

/// Decodes the body of an entry record.
pub(super) fn decode_entry(body: &[u8]) -> io::Result<Entry> {
    match body.split_first() {
        Some((&ENTRY, rest)) => value(rest, "log entry"),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "raft log: an entry's location holds another kind of record",
        )),
    }
}

/// Checks a frame read back from disk (an entry at a known location in
/// segment `segment`) and returns its body.
pub(super) fn check(frame: &[u8], segment: u32) -> io::Result<&[u8]> {
    match frame_at(frame, 0, segment) {
        Ok(found) if found.end() == frame.len() => Ok(&frame[found.body]),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "raft log: a stored entry's length changed",
        )),
        Err(bad) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log: stored entry is damaged: {bad}"),
        )),
    }
}
