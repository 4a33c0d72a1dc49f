//! Snapshot encoding and snapshot files.
//!
//! A snapshot is the whole session map plus the Raft position it reflects
//! (last applied log id and membership). The same bytes are the snapshot file
//! on disk and the payload sent to a follower, so a snapshot is encoded once.
//!
//! Layout: `magic (8) | format version (u32 LE) | payload length (u64 LE) |
//! FNV-1a 64 checksum of the payload (u64 LE) | payload`, where the payload is
//! bincode 2 (serde API, standard config). Decoding checks every header field,
//! the length limit and the checksum before bincode sees a byte, and bincode
//! runs with a size limit too, so corrupt or hostile bytes give an error, never
//! a panic or a huge allocation.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::ser::SerializeTuple as _;
use serde::{Deserialize, Serialize};
use session_core::{SessionId, SessionRecord};

use crate::types::{LogId, SnapshotMeta, StoredMembership};

/// First bytes of every snapshot.
const MAGIC: &[u8; 8] = b"RSESSNAP";
/// Version of the payload layout; bump on any incompatible change.
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 8;
/// Largest snapshot accepted (1 GiB); larger is treated as corruption.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;
/// File name of the current snapshot inside the data directory.
const SNAPSHOT_FILE: &str = "snapshot.bin";
const SNAPSHOT_TMP_FILE: &str = "snapshot.bin.tmp";

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_SNAPSHOT_BYTES>()
}

/// Decoded snapshot contents.
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotContents {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) last_membership: StoredMembership,
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

/// Borrowed form for encoding straight from the map's shared records, without
/// copying them; serializes exactly like [`SnapshotContents`].
#[derive(Serialize)]
struct SnapshotContentsRef<'a> {
    last_applied: &'a Option<LogId>,
    last_membership: &'a StoredMembership,
    records: RecordsRef<'a>,
}

struct RecordsRef<'a>(&'a [(SessionId, Arc<SessionRecord>)]);

impl Serialize for RecordsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(id, record)| Pair(id, record)))
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

/// Why snapshot bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Too short, bad magic, unknown version, wrong length, or too large.
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
}

impl From<SnapshotError> for io::Error {
    fn from(error: SnapshotError) -> Self {
        let kind = match error {
            SnapshotError::Encode(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// FNV-1a, 64 bit: cheap, dependency-free detection of corrupted bytes (not a
/// defence against forgery; peers are authenticated by the cluster secret).
fn checksum(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Encodes a snapshot of `records` at the given Raft position.
pub(crate) fn encode(
    last_applied: &Option<LogId>,
    last_membership: &StoredMembership,
    records: &[(SessionId, Arc<SessionRecord>)],
) -> Result<Vec<u8>, SnapshotError> {
    let contents = SnapshotContentsRef {
        last_applied,
        last_membership,
        records: RecordsRef(records),
    };
    let mut out = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(&contents, &mut out, bincode_config())
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let payload_len = out.len() - HEADER_LEN;
    if payload_len > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::Encode(format!(
            "snapshot of {payload_len} bytes exceeds the {MAX_SNAPSHOT_BYTES} byte limit"
        )));
    }
    let sum = checksum(&out[HEADER_LEN..]);
    out[..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&(payload_len as u64).to_le_bytes());
    out[20..28].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Decodes and validates snapshot bytes. Never panics.
pub(crate) fn decode(bytes: &[u8]) -> Result<SnapshotContents, SnapshotError> {
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotError::Header(format!(
            "{} bytes, shorter than the {HEADER_LEN} byte header",
            bytes.len()
        )));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if &header[..8] != MAGIC {
        return Err(SnapshotError::Header(
            "not a session snapshot (bad magic)".into(),
        ));
    }
    let field = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..range.len()].copy_from_slice(&header[range]);
        out
    };
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Header(format!(
            "format version {version}, expected {FORMAT_VERSION}"
        )));
    }
    let declared_len = u64::from_le_bytes(field(12..20));
    if declared_len > MAX_SNAPSHOT_BYTES as u64 || declared_len != payload.len() as u64 {
        return Err(SnapshotError::Header(format!(
            "declared payload length {declared_len}, actual {}, limit {MAX_SNAPSHOT_BYTES}",
            payload.len()
        )));
    }
    if u64::from_le_bytes(field(20..28)) != checksum(payload) {
        return Err(SnapshotError::Checksum);
    }
    let (contents, used): (SnapshotContents, usize) =
        bincode::serde::decode_from_slice(payload, bincode_config())
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(SnapshotError::Decode(format!(
            "{} trailing bytes after the snapshot",
            payload.len() - used
        )));
    }
    Ok(contents)
}

/// Checks snapshot bytes received from a peer, before they go to
/// `Raft::install_full_snapshot`: that they decode and match `meta`.
///
/// openraft treats a failing `install_snapshot` as a storage failure and
/// stops the node, so the RPC handler should refuse bad bytes (as a bad
/// request) instead of passing them on. This decodes the whole snapshot, so
/// run it on a blocking thread for large snapshots.
pub fn verify(meta: &SnapshotMeta, bytes: &[u8]) -> Result<(), SnapshotError> {
    let contents = decode(bytes)?;
    if contents.last_applied != meta.last_log_id || contents.last_membership != meta.last_membership
    {
        return Err(SnapshotError::Mismatch);
    }
    Ok(())
}

/// Where snapshot files live.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Uses `dir`, creating it if needed.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Reads the current snapshot file, if there is one. A leftover temporary
    /// file from a crash mid-write is ignored (and removed).
    pub(crate) fn read(&self) -> io::Result<Option<Vec<u8>>> {
        let tmp = self.dir.join(SNAPSHOT_TMP_FILE);
        if tmp.exists() {
            fs::remove_file(&tmp)?;
        }
        match fs::read(self.dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Durably replaces the snapshot file: write a temporary file, fsync it,
    /// rename it over the old one, fsync the directory. A crash at any point
    /// leaves either the old or the new snapshot, whole.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(SNAPSHOT_TMP_FILE);
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))?;
        File::open(&self.dir)?.sync_all()
    }
}
