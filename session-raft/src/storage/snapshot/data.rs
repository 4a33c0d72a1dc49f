//! [`SnapshotData`]: where a snapshot's encoded bytes are, and reading them.
//!
//! A durable node's snapshots are files: the handle is shared (an `Arc` of
//! an open file), and reads are positional, so a transfer keeps reading the
//! snapshot it started with even after a newer one is renamed over the file
//! name, and two transfers never move each other's offset.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;

/// A snapshot's encoded bytes, in a file or in memory; cheap to clone.
#[derive(Clone)]
pub struct SnapshotData {
    /// The bytes and their length.
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    /// An open file holding exactly the snapshot (nothing before or after).
    File {
        /// Shared by every clone; read positionally.
        file: Arc<File>,
        /// Its length when handed over; files are never changed after.
        len: u64,
    },
    /// In memory (`--ephemeral`, tests).
    Memory(Bytes),
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match &self.inner {
            Inner::File { .. } => "file",
            Inner::Memory(_) => "memory",
        };
        write!(f, "SnapshotData({} bytes in {place})", self.len())
    }
}

impl SnapshotData {
    /// The whole of `file`, which nobody writes any more.
    pub(crate) fn from_file(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self {
            inner: Inner::File {
                file: Arc::new(file),
                len,
            },
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match &self.inner {
            Inner::File { len, .. } => *len,
            Inner::Memory(bytes) => bytes.len() as u64,
        }
    }

    /// Whether there are no bytes at all (never a valid snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader from the first byte; blocking for files.
    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader {
            data: self.clone(),
            position: 0,
        }
    }

    /// Every byte, in memory: for tests and small snapshots only.
    ///
    /// # Panics
    ///
    /// If the file cannot be read.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.reader()
            .read_to_end(&mut bytes)
            .expect("snapshot file readable");
        bytes
    }
}

impl From<Vec<u8>> for SnapshotData {
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            inner: Inner::Memory(Bytes::from(bytes)),
        }
    }
}

/// Reads a [`SnapshotData`] from the start, without moving any shared
/// file offset.
#[derive(Debug)]
pub struct SnapshotReader {
    /// What is read.
    data: SnapshotData,
    /// Next byte to read.
    position: u64,
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data.len().saturating_sub(self.position);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let read = match &self.data.inner {
            Inner::File { file, .. } => read_at(file, &mut buf[..want], self.position)?,
            Inner::Memory(bytes) => {
                // `position < len`, which came from a usize.
                let start = self.position as usize;
                buf[..want].copy_from_slice(&bytes[start..start + want]);
                want
            }
        };
        self.position += read as u64;
        Ok(read)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}
