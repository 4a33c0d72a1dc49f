//! The snapshot file of a data directory, and spool files for snapshots
//! arriving from the leader.
//!
//! A snapshot file is replaced durably: the new one is written to a
//! temporary file, fsynced, renamed over the old one, and the directory is
//! fsynced. A crash at any point leaves either the old or the new snapshot,
//! whole. A failure to write (disk full, I/O error) leaves the old one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{SnapshotData, SnapshotError};

/// File name of the current snapshot inside the data directory.
const SNAPSHOT_FILE: &str = "snapshot.bin";
const SNAPSHOT_TMP_FILE: &str = "snapshot.bin.tmp";

/// Set by [`inject_write_failures`]: every snapshot file write fails.
static FAIL_WRITES: AtomicBool = AtomicBool::new(false);

/// Test hook: while `on`, every snapshot file write in this process fails
/// part-way as a full disk would (`StorageFull`), so that tests can check a
/// failed build is survived. Not for production use.
#[doc(hidden)]
pub fn inject_write_failures(on: bool) {
    FAIL_WRITES.store(on, Ordering::SeqCst);
}

/// A writer that fails after a few bytes while failures are injected.
struct MaybeFailing<'a> {
    file: &'a mut File,
    written: u64,
}

impl Write for MaybeFailing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The first write (the header placeholder) goes through, so that
        // the failure comes part-way, with a partial file to clean up.
        if FAIL_WRITES.load(Ordering::SeqCst) && self.written > 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected snapshot write failure",
            ));
        }
        let written = self.file.write(buf)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl io::Seek for MaybeFailing<'_> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(to)
    }
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

    /// The current snapshot file, if there is one. A leftover temporary file
    /// from a crash mid-write is ignored (and removed).
    pub(crate) fn read(&self) -> io::Result<Option<SnapshotData>> {
        let tmp = self.dir.join(SNAPSHOT_TMP_FILE);
        if tmp.exists() {
            fs::remove_file(&tmp)?;
        }
        match File::open(self.dir.join(SNAPSHOT_FILE)) {
            Ok(file) => SnapshotData::from_file(file).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Durably replaces the snapshot file with what `fill` writes into an
    /// empty file, and returns the new snapshot. Blocking.
    pub(crate) fn write_with(
        &self,
        fill: impl FnOnce(&mut (dyn WriteSeek + '_)) -> Result<(), SnapshotError>,
    ) -> Result<SnapshotData, SnapshotError> {
        let tmp = self.dir.join(SNAPSHOT_TMP_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let filled = fill(&mut MaybeFailing {
            file: &mut file,
            written: 0,
        })
        .and_then(|()| file.sync_all().map_err(SnapshotError::from));
        if let Err(e) = filled {
            // Free the space now rather than at the next build.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(SnapshotData::from_file(file)?)
    }

    /// Durably makes a copy of `data` the snapshot file. Blocking.
    pub(crate) fn copy_in(&self, data: &SnapshotData) -> Result<SnapshotData, SnapshotError> {
        self.write_with(|out| {
            io::copy(&mut data.reader(), out)?;
            Ok(())
        })
    }
}

/// What a snapshot is written through.
pub(crate) trait WriteSeek: Write + io::Seek {}

impl<T: Write + io::Seek> WriteSeek for T {}

/// Distinguishes spool files of one process.
static SPOOL_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A new, empty file in `dir` for a snapshot arriving from the leader,
/// already unlinked where the platform allows, so that it disappears with
/// its last handle (a refused or crashed transfer leaves nothing behind).
pub(crate) fn spool_file(dir: &Path) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let name = format!(
        "incoming-snapshot-{}-{}.tmp",
        std::process::id(),
        SPOOL_SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Fails on platforms that cannot remove an open file; it is then
    // removed by the next start-up's clean-up of temporary files at worst.
    let _ = fs::remove_file(&path);
    Ok(file)
}
