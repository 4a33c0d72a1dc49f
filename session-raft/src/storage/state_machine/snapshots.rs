//! Building and installing snapshots, and what happens when building fails.
//!
//! openraft treats an error from `build_snapshot` as a storage fault and
//! stops Raft on the node; every replica builds at about the same log index,
//! so a full disk or an I/O error would stop the whole cluster. So a build
//! never returns an error: a failed one is logged, counted
//! (`session_raft_snapshot_build_failures_total`) and answered with the last
//! good snapshot (or an empty position), which openraft takes as "nothing
//! newer", so it purges no log the failed snapshot would have covered. The
//! next policy-driven builds are then deferred for a back-off that doubles
//! up to a minute, and a later one retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::RaftSnapshotBuilder;
use parking_lot::Mutex;
use session_core::{SessionId, SessionRecord};

use crate::storage::snapshot::Snapshot;
use crate::storage::snapshot::{self, SnapshotContents, SnapshotData, SnapshotDir, SnapshotError};
use crate::storage::state_machine::GroupFacts;
use crate::types::{LogId, SnapshotMeta, StoredMembership, TypeConfig};

/// First wait after a failed build; doubles per failure up to the maximum.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When the last failed build allows the next one, and the next wait.
#[derive(Debug, Default)]
struct Backoff {
    /// No policy-driven build before this.
    retry_at: Option<Instant>,
    /// Wait after the next failure.
    next_wait: Option<Duration>,
}

/// The snapshot openraft last built or installed, shared between the state
/// machine and its snapshot builders (which finish on another task).
#[derive(Debug, Default)]
pub(super) struct CurrentSnapshot {
    /// Meta and data; locked only briefly.
    snapshot: Mutex<Option<(SnapshotMeta, SnapshotData)>>,
    /// Serializes snapshot file writes, held across the (slow) write so that
    /// `get_current_snapshot` never waits for the disk.
    write: Mutex<()>,
    /// Deferral of builds after a failure.
    backoff: Mutex<Backoff>,
}

impl CurrentSnapshot {
    /// The current snapshot, if any.
    pub(super) fn get(&self) -> Option<Snapshot> {
        self.snapshot.lock().as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: data.clone(),
        })
    }

    /// Makes `(meta, data)` current without writing it (opening a directory).
    pub(super) fn set(&self, meta: SnapshotMeta, data: SnapshotData) {
        *self.snapshot.lock() = Some((meta, data));
    }

    /// Whether a policy-driven build should wait (a recent one failed).
    pub(super) fn deferring(&self) -> bool {
        self.backoff
            .lock()
            .retry_at
            .is_some_and(|at| Instant::now() < at)
    }

    fn build_failed(&self) {
        let mut backoff = self.backoff.lock();
        let wait = backoff.next_wait.unwrap_or(FIRST_BACKOFF);
        backoff.retry_at = Some(Instant::now() + wait);
        backoff.next_wait = Some((wait * 2).min(MAX_BACKOFF));
    }

    fn build_succeeded(&self) {
        *self.backoff.lock() = Backoff::default();
    }

    /// Makes the snapshot `store` returns current, unless one at or past
    /// `meta`'s position already is (a slow build finishing after an install
    /// must not put the file back to an older position, whose log may already
    /// be purged): then that one is returned. Holds the write lock across
    /// `store`, so that file and memory always agree. Blocking.
    fn replace(
        &self,
        meta: &SnapshotMeta,
        store: impl FnOnce() -> Result<SnapshotData, SnapshotError>,
    ) -> Result<Snapshot, SnapshotError> {
        let _writing = self.write.lock();
        if let Some(existing) = self.get() {
            if existing.meta.last_log_id >= meta.last_log_id && meta.last_log_id.is_some() {
                return Ok(existing);
            }
        }
        let data = store()?;
        self.set(meta.clone(), data.clone());
        Ok(Snapshot {
            meta: meta.clone(),
            snapshot: data,
        })
    }
}

/// Checks `data` against `meta`, saves it as the current snapshot (a copy in
/// `dir`, or the data itself in memory) and returns its contents for the
/// map. Saved before the map changes: once installed, openraft may purge the
/// log the snapshot covers, so the file must already be there. Blocking.
pub(super) fn install(
    current: &CurrentSnapshot,
    dir: Option<&SnapshotDir>,
    meta: &SnapshotMeta,
    data: SnapshotData,
) -> Result<SnapshotContents, SnapshotError> {
    let contents = snapshot::read(&data)?;
    if contents.last_applied != meta.last_log_id || contents.last_membership != meta.last_membership
    {
        return Err(SnapshotError::Mismatch);
    }
    current.replace(meta, || match dir {
        Some(dir) => dir.copy_in(&data),
        None => Ok(data),
    })?;
    Ok(contents)
}

/// Builds a snapshot from a view of the map taken at one log position; runs
/// off the apply path (openraft drives it on its own task), and does the
/// encoding and file writing on a blocking thread.
#[derive(Debug)]
pub struct SnapshotBuilder {
    pub(super) last_applied: Option<LogId>,
    pub(super) last_membership: StoredMembership,
    pub(super) records: Vec<(SessionId, Arc<SessionRecord>)>,
    /// Group facts at the same position as the records.
    pub(super) facts: GroupFacts,
    pub(super) current: Arc<CurrentSnapshot>,
    pub(super) dir: Option<SnapshotDir>,
}

impl SnapshotBuilder {
    /// Encodes and stores the snapshot. Blocking.
    fn build(
        current: &CurrentSnapshot,
        dir: Option<&SnapshotDir>,
        meta: &SnapshotMeta,
        facts: GroupFacts,
        records: Vec<(SessionId, Arc<SessionRecord>)>,
    ) -> Result<Snapshot, SnapshotError> {
        current.replace(meta, || {
            let encode = |out: &mut (dyn snapshot::WriteSeek + '_)| {
                snapshot::write(
                    out,
                    &meta.last_log_id,
                    &meta.last_membership,
                    &facts,
                    &records,
                )
            };
            match dir {
                Some(dir) => dir.write_with(encode),
                None => {
                    let mut out = std::io::Cursor::new(Vec::new());
                    encode(&mut out)?;
                    Ok(SnapshotData::from(out.into_inner()))
                }
            }
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        };
        let records = std::mem::take(&mut self.records);
        let facts = self.facts;
        let (current, dir, building) = (Arc::clone(&self.current), self.dir.clone(), meta.clone());
        let built = tokio::task::spawn_blocking(move || {
            // The records are released when this returns, before the
            // builder is, so that apply stops copying records only this
            // snapshot still holds.
            Self::build(&current, dir.as_ref(), &building, facts, records)
        })
        .await
        .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))
        .and_then(|built| built);
        match built {
            Ok(snapshot) => {
                self.current.build_succeeded();
                Ok(snapshot)
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    last_log_id = ?meta.last_log_id,
                    "snapshot build failed; keeping the previous snapshot and the log, will retry"
                );
                metrics::counter!("session_raft_snapshot_build_failures_total").increment(1);
                self.current.build_failed();
                // Not newer than what openraft has: it purges nothing.
                Ok(self.current.get().unwrap_or_else(|| Snapshot {
                    meta: SnapshotMeta {
                        last_log_id: None,
                        last_membership: StoredMembership::default(),
                    },
                    snapshot: SnapshotData::from(Vec::new()),
                }))
            }
        }
    }
}
