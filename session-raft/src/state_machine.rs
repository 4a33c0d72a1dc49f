//! The Raft state machine: applies committed [`Command`]s to the in-memory
//! session map, builds and installs snapshots.
//!
//! The map lives in memory only; durability comes from snapshots (bincode
//! files, written with fsync and atomic rename, see [`crate::snapshot`]) plus
//! the durable Raft log: on restart openraft installs the last snapshot and
//! re-applies the committed log after it. So apply never touches the disk.
//!
//! [`Command`]: crate::command::Command

mod map;

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, TryStreamExt as _};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use parking_lot::Mutex;
use session_core::{SessionId, SessionRecord};

use crate::command::CommandResponse;
use crate::snapshot::{self, SnapshotDir};
use crate::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};

use map::SessionMap;
pub use map::SessionReader;

/// The snapshot openraft last built or installed, shared between the state
/// machine and its snapshot builders (which finish on another task).
#[derive(Debug, Default)]
struct CurrentSnapshot {
    /// Meta and bytes; locked only briefly.
    snapshot: Mutex<Option<(SnapshotMeta, SnapshotData)>>,
    /// Serializes snapshot file writes, held across the (slow) write so that
    /// `get_current_snapshot` never waits for the disk.
    write: Mutex<()>,
}

/// The session state machine. Construct with [`StateMachineStore::open`]
/// (snapshots on disk) or [`StateMachineStore::in_memory`], take a
/// [`SessionReader`] with [`StateMachineStore::reader`], then hand the store to
/// `openraft::Raft::new`.
#[derive(Debug)]
pub struct StateMachineStore {
    map: Arc<SessionMap>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    current: Arc<CurrentSnapshot>,
    /// `None`: in memory only.
    dir: Option<SnapshotDir>,
}

impl StateMachineStore {
    /// A state machine that keeps its snapshots in memory (`--ephemeral`, tests).
    pub fn in_memory() -> Self {
        Self {
            map: Arc::new(SessionMap::new()),
            last_applied: None,
            last_membership: StoredMembership::default(),
            current: Arc::default(),
            dir: None,
        }
    }

    /// A state machine whose snapshots are files in `dir` (created if
    /// missing). If a snapshot is there, the map starts from it; openraft then
    /// re-applies the committed log after it.
    ///
    /// Fails if the directory is unusable or the snapshot file is corrupt.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let snapshot_dir = SnapshotDir::open(dir)?;
        let mut store = Self::in_memory();
        if let Some(bytes) = snapshot_dir.read()? {
            let contents = snapshot::decode(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot file in {}: {e}", dir.display()),
                )
            })?;
            let meta = contents.meta();
            store.last_applied = contents.last_applied;
            store.last_membership = contents.last_membership;
            store.map.replace_all(contents.records);
            store
                .map
                .publish_applied(store.last_applied.map_or(0, |id| id.index));
            *store.current.snapshot.lock() = Some((meta, SnapshotData::from(bytes)));
        }
        store.dir = Some(snapshot_dir);
        Ok(store)
    }

    /// A read-only handle onto the session map, for serving loads.
    pub fn reader(&self) -> SessionReader {
        SessionReader::new(Arc::clone(&self.map))
    }

    /// Last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.last_applied
    }
}

/// Makes `(meta, data)` the current snapshot, writing it to `dir` first,
/// unless a newer one is already current (a slow build finishing after an
/// install must not put the file back to an older position, whose log may
/// already be purged). Holds the lock across the write so that file and
/// memory always agree; blocking, so call it from a blocking thread.
fn store_current(
    current: &CurrentSnapshot,
    dir: Option<&SnapshotDir>,
    meta: &SnapshotMeta,
    data: &SnapshotData,
) -> io::Result<()> {
    let _writing = current.write.lock();
    let newer_exists = current
        .snapshot
        .lock()
        .as_ref()
        .is_some_and(|(existing, _)| existing.last_log_id > meta.last_log_id);
    if newer_exists {
        return Ok(());
    }
    if let Some(dir) = dir {
        dir.write(data)?;
    }
    *current.snapshot.lock() = Some((meta.clone(), data.clone()));
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::ok(index),
                EntryPayload::Normal(command) => self.map.apply_command(command, index),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResponse::ok(index)
                }
            };
            if let Some(responder) = responder {
                // Publish before answering, so that a client holding this
                // write's token never waits for it on this node.
                self.map.publish_applied(index);
                responder.send(response);
            }
        }
        if let Some(log_id) = self.last_applied {
            self.map.publish_applied(log_id.index);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Called with `&mut self`, so no apply runs while the view is taken:
        // it is consistent with `last_applied`.
        SnapshotBuilder {
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            records: self.map.capture(),
            current: Arc::clone(&self.current),
            dir: self.dir.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let expected = meta.clone();
        let (contents, snapshot) = tokio::task::spawn_blocking(move || {
            let contents = snapshot::decode(&snapshot)?;
            if contents.last_applied != expected.last_log_id
                || contents.last_membership != expected.last_membership
            {
                return Err(snapshot::SnapshotError::Mismatch);
            }
            Ok((contents, snapshot))
        })
        .await
        .map_err(io::Error::other)??;
        // Saved before the map changes: once installed, openraft may purge the
        // log the snapshot covers, so the file must already be there.
        let (current, dir, stored_meta) =
            (Arc::clone(&self.current), self.dir.clone(), meta.clone());
        tokio::task::spawn_blocking(move || {
            store_current(&current, dir.as_ref(), &stored_meta, &snapshot)
        })
        .await
        .map_err(io::Error::other)??;
        self.map.replace_all(contents.records);
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.map
            .publish_applied(self.last_applied.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .current
            .snapshot
            .lock()
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: data.clone(),
            }))
    }
}

/// Builds a snapshot from a view of the map taken at one log position; runs
/// off the apply path (openraft drives it on its own task), and does the
/// encoding and file writing on a blocking thread.
#[derive(Debug)]
pub struct SnapshotBuilder {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    records: Vec<(SessionId, Arc<SessionRecord>)>,
    current: Arc<CurrentSnapshot>,
    dir: Option<SnapshotDir>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        };
        let records = std::mem::take(&mut self.records);
        let (current, dir, stored_meta) =
            (Arc::clone(&self.current), self.dir.clone(), meta.clone());
        let data = tokio::task::spawn_blocking(move || -> io::Result<SnapshotData> {
            let bytes = snapshot::encode(
                &stored_meta.last_log_id,
                &stored_meta.last_membership,
                &records,
            )?;
            // Release the shared records before the write, so that apply stops
            // copying records only this snapshot still holds.
            drop(records);
            let data = SnapshotData::from(bytes);
            store_current(&current, dir.as_ref(), &stored_meta, &data)?;
            Ok(data)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}
