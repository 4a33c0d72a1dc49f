//! Snapshots: the whole session map plus the Raft position it reflects (last
//! applied log id and membership), as one file.
//!
//! The same bytes are the snapshot file on disk and the body sent to a
//! follower, and they stream in both directions: a build writes records one
//! by one into the file, a transfer reads it in chunks, a receiver spools the
//! body to a file and decodes it record by record. No step holds the whole
//! snapshot in memory (the in-memory state machine of `--ephemeral` keeps its
//! snapshots in memory, as it keeps everything), so a snapshot has no size
//! cap of its own; a receiver bounds what it accepts (`max_snapshot_bytes`).
//!
//! Layout (see [`frame`]; the payload in [`format`]): `magic (8) | format version (u32 LE) | payload
//! length (u64 LE) | FNV-1a 64 checksum of the payload (u64 LE) | payload`,
//! where the payload is bincode 2 (serde API, standard config) of the last
//! applied log id, the membership, the record count and the records. Reading
//! checks the header and the checksum before bincode sees a byte, then
//! decodes one record at a time, each under a limit no larger than the bytes
//! left, so corrupt or hostile bytes give an error, never a panic or a huge
//! allocation.
//!
//! - [`data`]: [`SnapshotData`], a snapshot's bytes in a file or in memory.
//! - [`format`]: writing and reading the layout above.
//! - [`dir`]: the snapshot file of a data directory, replaced atomically.

mod data;
mod dir;
mod format;
pub mod frame;

use std::io;

pub use data::{SnapshotData, SnapshotReader};

/// A snapshot as openraft hands it around: metadata and payload.
pub(crate) type Snapshot = openraft::alias::SnapshotOf<crate::types::TypeConfig, SnapshotData>;
#[doc(hidden)]
pub use dir::inject_write_failures;
pub(crate) use dir::{spool_file, SnapshotDir, WriteSeek};
pub(crate) use format::{read, write, SnapshotContents};

use crate::types::SnapshotMeta;
#[cfg(test)]
use crate::types::{LogId, StoredMembership};
#[cfg(test)]
use session_core::{SessionId, SessionRecord};
#[cfg(test)]
use std::sync::Arc;

/// Why a snapshot was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Too short, bad magic, unknown version, or a length that does not
    /// match the bytes.
    #[error("snapshot header invalid: {0}")]
    Header(String),
    /// The payload does not match its checksum.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// The payload does not decode.
    #[error("snapshot payload does not decode: {0}")]
    Decode(String),
    /// The contents do not match the metadata sent with them.
    #[error("snapshot contents do not match its metadata")]
    Mismatch,
    /// Encoding failed (should not happen for our types).
    #[error("snapshot encoding failed: {0}")]
    Encode(String),
    /// Reading or writing the snapshot's file failed (disk full, I/O error).
    #[error("snapshot file: {0}")]
    Io(#[from] io::Error),
}

impl From<SnapshotError> for io::Error {
    fn from(error: SnapshotError) -> Self {
        let kind = match &error {
            SnapshotError::Io(e) => e.kind(),
            SnapshotError::Encode(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// Encodes a snapshot of `records` at the given Raft position into memory
/// (tests; nodes write files, see [`write`]).
#[cfg(test)]
pub(crate) fn encode(
    last_applied: &Option<LogId>,
    last_membership: &StoredMembership,
    records: &[(SessionId, Arc<SessionRecord>)],
) -> Result<Vec<u8>, SnapshotError> {
    let mut out = io::Cursor::new(Vec::new());
    let facts = crate::storage::state_machine::GroupFacts::default();
    write(&mut out, last_applied, last_membership, &facts, records)?;
    Ok(out.into_inner())
}

/// Decodes and validates snapshot bytes held in memory. Never panics.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<SnapshotContents, SnapshotError> {
    read(&SnapshotData::from(bytes.to_vec()))
}

/// Checks that `data` is a whole, uncorrupted snapshot matching `meta`: a
/// receiver runs this before `Raft::install_full_snapshot`, because openraft
/// treats a failing `install_snapshot` as a storage fault and stops the
/// node; a bad transfer is refused instead. Reads the whole snapshot, so run
/// it on a blocking thread.
pub fn verify_data(meta: &SnapshotMeta, data: &SnapshotData) -> Result<(), SnapshotError> {
    let contents = read(data)?;
    if contents.last_applied != meta.last_log_id || contents.last_membership != meta.last_membership
    {
        return Err(SnapshotError::Mismatch);
    }
    Ok(())
}

/// [`verify_data`] for bytes in memory (fuzzing, tests).
pub fn verify(meta: &SnapshotMeta, bytes: &[u8]) -> Result<(), SnapshotError> {
    verify_data(meta, &SnapshotData::from(bytes.to_vec()))
}
