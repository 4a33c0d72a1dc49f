//! The Raft state machine: applies committed [`Command`]s to the in-memory
//! session map, builds and installs snapshots.
//!
//! The map lives in memory only; durability comes from snapshots (bincode
//! files, streamed out with fsync and atomic rename, see [`crate::storage::snapshot`]
//! and [`snapshots`], which also says why a failed build is not fatal) plus
//! the durable Raft log: on restart openraft installs the last snapshot and
//! re-applies the committed log after it. So apply never touches the disk.
//!
//! [`Command`]: crate::command::Command

mod applied;
mod snapshots;

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, TryStreamExt as _};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::EntryPayload;

use crate::command::CommandResponse;
use crate::storage::snapshot::{self, SnapshotDir};
use crate::storage::snapshot::{Snapshot, SnapshotData};
use crate::types::{LogId, SnapshotMeta, StoredMembership, TypeConfig};

use applied::AppliedState;
pub(crate) use applied::GroupFacts;
pub use applied::SessionReader;
use snapshots::CurrentSnapshot;
pub(crate) use snapshots::SnapshotBuilder;

/// The session state machine. Construct with [`StateMachineStore::open`]
/// (snapshots on disk) or [`StateMachineStore::in_memory`], take a
/// [`SessionReader`] with [`StateMachineStore::reader`], then hand the store to
/// `openraft::Raft::new`.
#[derive(Debug)]
pub struct StateMachineStore {
    /// The sessions and group facts, shared with every [`SessionReader`].
    state: Arc<AppliedState>,
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
            state: Arc::new(AppliedState::new()),
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
        if let Some(data) = snapshot_dir.read()? {
            let contents = snapshot::read(&data).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot file in {}: {e}", dir.display()),
                )
            })?;
            let meta = contents.meta();
            store.last_applied = contents.last_applied;
            store.last_membership = contents.last_membership;
            store.state.replace_all(contents.records, contents.facts);
            store
                .state
                .publish_applied(store.last_applied.map_or(0, |id| id.index));
            store.current.set(meta, data);
        }
        store.dir = Some(snapshot_dir);
        Ok(store)
    }

    /// A read-only handle onto the session map, for serving loads.
    pub fn reader(&self) -> SessionReader {
        SessionReader::new(Arc::clone(&self.state))
    }

    /// Last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.last_applied
    }
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
                EntryPayload::Normal(command) => self.state.apply_command(&command, index),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResponse::ok(index)
                }
            };
            if let Some(responder) = responder {
                // Publish before answering, so that a client holding this
                // write's token never waits for it on this node.
                self.state.publish_applied(index);
                responder.send(response);
            }
        }
        if let Some(log_id) = self.last_applied {
            self.state.publish_applied(log_id.index);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<SnapshotBuilder> {
        // After a failed build, policy-driven builds wait a while (see
        // [`snapshots`]); a build openraft needs (`force`) never waits.
        if !force && self.current.deferring() {
            tracing::debug!("snapshot build deferred after a recent failure");
            return None;
        }
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Called with `&mut self`, so no apply runs while the view is taken:
        // it is consistent with `last_applied`.
        SnapshotBuilder {
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            records: self.state.capture(),
            facts: self.state.facts(),
            current: Arc::clone(&self.current),
            dir: self.dir.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let (current, dir, stored_meta) =
            (Arc::clone(&self.current), self.dir.clone(), meta.clone());
        let contents = tokio::task::spawn_blocking(move || {
            snapshots::install(&current, dir.as_ref(), &stored_meta, snapshot)
        })
        .await
        .map_err(io::Error::other)??;
        self.state.replace_all(contents.records, contents.facts);
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.state
            .publish_applied(self.last_applied.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.current.get())
    }
}
