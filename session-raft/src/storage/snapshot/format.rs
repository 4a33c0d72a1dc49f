//! The snapshot layout (see the parent module), written and read as a
//! stream.
//!
//! The payload is bincode of `(last_applied, last_membership, facts,
//! records)` (format version 2; version 1 had no `facts`, the group's
//! cluster id and newest write time, and is refused: nothing was deployed
//! with it). The records are a sequence: its count followed by its
//! elements, so writing the count and then each record is the same as
//! encoding the whole.

use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use serde::ser::SerializeTuple as _;
use serde::Serialize;
use session_core::{SessionId, SessionRecord};

use super::frame::{self, Checksum, HEADER_LEN};
use super::{SnapshotData, SnapshotError};
use crate::bincode_limit;
use crate::storage::state_machine::GroupFacts;
use crate::types::{LogId, SnapshotMeta, StoredMembership};

/// Bound on the encoded log id and membership (a membership lists members'
/// ids and addresses: kilobytes).
const POSITION_LIMIT: usize = 1 << 20;
/// Bound on one record's claims: never more than the bytes left in the
/// payload could hold, and never more than this (a session beyond 4 GiB is
/// corruption).
const MAX_RECORD_BYTES: usize = 1 << 32;
/// Chunk size of checksum and copy passes.
const CHUNK: usize = 64 << 10;

/// Decoded snapshot contents.
#[derive(Debug)]
pub(crate) struct SnapshotContents {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) last_membership: StoredMembership,
    pub(crate) facts: GroupFacts,
    pub(crate) records: Vec<(SessionId, SessionRecord)>,
}

impl SnapshotContents {
    pub(crate) fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }
}

/// Passes bytes on while counting and checksumming them.
struct Summing<W> {
    inner: W,
    sum: Checksum,
    len: u64,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.sum.update(&buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `(id, record)` serialized as a 2-tuple, like `(SessionId, SessionRecord)`.
struct Pair<'a>(&'a SessionId, &'a SessionRecord);

impl Serialize for Pair<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(self.0)?;
        tuple.serialize_element(self.1)?;
        tuple.end()
    }
}

fn put<T: Serialize, W: Write>(out: &mut W, value: &T) -> Result<(), SnapshotError> {
    bincode::serde::encode_into_std_write(value, out, bincode_limit::encode_config())
        .map(drop)
        .map_err(|e| match e {
            bincode::error::EncodeError::Io { inner, .. } => SnapshotError::Io(inner),
            other => SnapshotError::Encode(other.to_string()),
        })
}

/// Writes a snapshot of `records` at the given Raft position to `out`,
/// which must be empty: the payload streams out record by record, then the
/// header (length, checksum) is written in front. Blocking.
pub(crate) fn write<W: Write + Seek + ?Sized>(
    out: &mut W,
    last_applied: &Option<LogId>,
    last_membership: &StoredMembership,
    facts: &GroupFacts,
    records: &[(SessionId, Arc<SessionRecord>)],
) -> Result<(), SnapshotError> {
    out.write_all(&[0u8; HEADER_LEN])?;
    let mut payload = Summing {
        inner: BufWriter::with_capacity(CHUNK, &mut *out),
        sum: Checksum::default(),
        len: 0,
    };
    put(&mut payload, last_applied)?;
    put(&mut payload, last_membership)?;
    put(&mut payload, facts)?;
    put(&mut payload, &(records.len() as u64))?;
    for (id, record) in records {
        put(&mut payload, &Pair(id, record))?;
    }
    payload.flush()?;
    let (sum, len) = (payload.sum.value(), payload.len);
    drop(payload);
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&frame::header(len, sum))?;
    out.flush()?;
    Ok(())
}

/// Checks the header of `data` and returns the payload length and checksum.
fn check_header(data: &SnapshotData) -> Result<(u64, u64), SnapshotError> {
    let mut header = [0u8; HEADER_LEN];
    if data.len() < HEADER_LEN as u64 {
        return Err(SnapshotError::Header(format!(
            "{} bytes, shorter than the {HEADER_LEN} byte header",
            data.len()
        )));
    }
    data.reader().read_exact(&mut header)?;
    let declared = frame::parse_header(&header).map_err(SnapshotError::Header)?;
    let declared_len = declared.len;
    let actual_len = data.len() - HEADER_LEN as u64;
    if declared_len != actual_len {
        return Err(SnapshotError::Header(format!(
            "declared payload length {declared_len}, actual {actual_len}"
        )));
    }
    Ok((declared_len, declared.sum))
}

/// The payload of `data` (after the header), at most `len` bytes.
fn payload(
    data: &SnapshotData,
    len: u64,
) -> Result<io::Take<super::SnapshotReader>, SnapshotError> {
    let mut reader = data.reader();
    io::copy(&mut (&mut reader).take(HEADER_LEN as u64), &mut io::sink())?;
    Ok(reader.take(len))
}

/// Bytes not yet decoded from `reader`.
fn left(reader: &BufReader<io::Take<super::SnapshotReader>>) -> usize {
    let unread = reader.get_ref().limit() as usize;
    unread + reader.buffer().len()
}

fn take<T: serde::de::DeserializeOwned>(
    reader: &mut BufReader<io::Take<super::SnapshotReader>>,
    limit: usize,
) -> Result<T, SnapshotError> {
    let limit = limit.min(left(reader).saturating_mul(bincode_limit::CLAIMS_PER_BYTE));
    bincode_limit::decode_read(reader, limit).map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// Reads and validates a whole snapshot: header, then the checksum over the
/// payload (one pass), then the records one by one (a second pass). Never
/// panics; blocking for files.
pub(crate) fn read(data: &SnapshotData) -> Result<SnapshotContents, SnapshotError> {
    let (len, expected_sum) = check_header(data)?;
    let mut sum = Checksum::default();
    let mut sums = payload(data, len)?;
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let read = sums.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        sum.update(&chunk[..read]);
    }
    if sum.value() != expected_sum {
        return Err(SnapshotError::Checksum);
    }
    let mut reader = BufReader::with_capacity(CHUNK, payload(data, len)?);
    let last_applied = take(&mut reader, POSITION_LIMIT)?;
    let last_membership = take(&mut reader, POSITION_LIMIT)?;
    let facts = take(&mut reader, POSITION_LIMIT)?;
    let count: u64 = take(&mut reader, 16)?;
    // Grown as records arrive, never sized from the untrusted count.
    let mut records = Vec::new();
    for _ in 0..count {
        records.push(take(&mut reader, MAX_RECORD_BYTES)?);
    }
    if left(&reader) != 0 {
        return Err(SnapshotError::Decode(format!(
            "{} trailing bytes after the snapshot",
            left(&reader)
        )));
    }
    Ok(SnapshotContents {
        last_applied,
        last_membership,
        facts,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_facts_survive_a_snapshot() {
        let facts = GroupFacts {
            cluster_id: 0x1234_5678_9abc_def0,
            newest_write_time: 1_800_000_000_000,
        };
        let mut out = io::Cursor::new(Vec::new());
        write(&mut out, &None, &StoredMembership::default(), &facts, &[]).unwrap();
        let contents = read(&SnapshotData::from(out.into_inner())).unwrap();
        assert_eq!(contents.facts, facts);
    }
}
