//! [`RaftStore`]: the [`SessionStore`] the session layer talks to. This
//! module routes each call (this group, or another mesh); the write path,
//! the forwarding queue, the read path and cross-mesh serving have a file
//! each, and each also holds the leader's (or owning mesh's) side of its
//! requests, which [`crate::rpc`]'s dispatch calls.
//!
//! Writes become Raft [`Command`]s. On the leader they are proposed directly
//! (openraft batches concurrent proposals into one append); on a follower they
//! go to a per-node forwarder that packs whatever is queued into one
//! `Write` RPC to the leader, with several RPCs in flight on separate pooled
//! connections. A write reports success only after the leader has committed and
//! applied it; the token and version are the entry's log index.
//!
//! A write is retried on another leader only when the previous attempt
//! certainly did nothing (not the leader, or no connection could be made).
//! When the outcome is unknown (time-out, connection lost mid-request, leader
//! changed after proposing) the caller gets [`StoreError::Unavailable`].
//!
//! Reads are served from the local state machine; [`ReadMode`] decides what a
//! node must know first. A node never answers a read from a state older than
//! the client's token.
//!
//! With meshes, an id tagged with another mesh of the directory is served by
//! that mesh (see [`cross_mesh`]); one tagged with a mesh the
//! directory does not list is treated as missing.

pub(crate) mod batch_sizes;
pub(crate) mod cross_mesh;
pub(crate) mod forward;
pub(crate) mod metrics;
pub(crate) mod propose;
pub(crate) mod read;
pub(crate) mod write;

use std::sync::Arc;

use async_trait::async_trait;
use session_core::{
    data_size, ChangeSet, Committed, ConsistencyToken, MeshTag, NewSession, SessionId,
    SessionRecord, SessionStore, StoreError, UnixMillis, PER_KEY_OVERHEAD,
};

use crate::command::Command;
use crate::replica::Replica;
use crate::types::NodeId;
use cross_mesh::{route, Route};

/// A replicated [`SessionStore`] backed by a [`crate::RaftNode`]. Cheap to
/// clone; every clone talks to the same node.
#[derive(Clone)]
pub struct RaftStore {
    /// The member's shared state.
    replica: Arc<Replica>,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("node_id", &self.replica.node_id)
            .field("mesh", &self.replica.mesh)
            .finish()
    }
}

impl RaftStore {
    pub(crate) fn new(replica: Arc<Replica>) -> Self {
        Self { replica }
    }

    /// Id of the node this store reads from and writes through.
    pub fn node_id(&self) -> NodeId {
        self.replica.node_id
    }

    /// Highest log index this node has applied: a read with a token at or
    /// below it is served without waiting.
    pub fn applied_index(&self) -> u64 {
        self.replica.reader.applied_index()
    }
}

#[async_trait]
impl SessionStore for RaftStore {
    async fn load(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        self.replica.metrics.reads.increment(1);
        match route(&self.replica, id) {
            Route::Local => read::load(&self.replica, id, token, now).await,
            Route::Mesh(mesh) => {
                cross_mesh::cross_mesh_load(&self.replica, mesh, id, token, now).await
            }
            // No mesh serves it: as good as expired, so the layer starts a
            // fresh session.
            Route::Unknown(_) => Ok(None),
        }
    }

    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError> {
        write::check_write_size(&self.replica, data_size(&session.data))?;
        // The limit goes into the entry so that apply decides alike on every
        // replica (the receiving mesh re-stamps its own, see cross_mesh).
        let command = Command::Create {
            id: *id,
            session,
            max_sessions: self.replica.max_sessions,
        };
        match route(&self.replica, id) {
            Route::Local => write::write(&self.replica, command).await,
            Route::Mesh(mesh) => cross_mesh::cross_mesh_write(&self.replica, mesh, command).await,
            // Ids are minted with this node's own tag; another one nobody
            // serves is a bug or a directory missing a mesh.
            Route::Unknown(mesh) => Err(StoreError::Backend(format!(
                "cannot create a session of mesh {mesh}: not in the mesh directory"
            ))),
        }
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        cross_mesh::check_rotation(&self.replica, id, &changes)?;
        let set_bytes: usize = changes
            .set
            .iter()
            .map(|(key, value)| key.len() + value.len() + PER_KEY_OVERHEAD)
            .sum();
        write::check_write_size(&self.replica, set_bytes)?;
        let command = Command::Apply {
            id: *id,
            changes,
            now,
        };
        match route(&self.replica, id) {
            Route::Local => write::write(&self.replica, command).await,
            Route::Mesh(mesh) => cross_mesh::cross_mesh_write(&self.replica, mesh, command).await,
            Route::Unknown(_) => Err(StoreError::NotFound),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError> {
        // Stamped so that the state machine remembers the id for a moment:
        // a request racing this logout is then told so (see Tombstones).
        let command = Command::DeleteAt {
            id: *id,
            now: self.replica.clock.now(),
        };
        match route(&self.replica, id) {
            Route::Local => write::write(&self.replica, command).await,
            Route::Mesh(mesh) => cross_mesh::cross_mesh_write(&self.replica, mesh, command).await,
            // Deleting a missing session succeeds; nothing was written, so
            // the token asks for nothing.
            Route::Unknown(_) => Ok(Committed {
                version: 0,
                token: ConsistencyToken::NONE,
            }),
        }
    }

    /// This node's mesh: the layer mints new ids with it.
    fn mesh_tag(&self) -> Option<MeshTag> {
        self.replica.mesh
    }
}
