//! Serving sessions of another mesh: a node that gets a load or write for a
//! session whose id carries another mesh's tag sends it, over the cluster
//! RPC, to a member of that mesh (from the [`crate::MeshDirectory`]), which
//! serves it through its own store: it waits for the client's token, forwards
//! writes to its leader, and so on, exactly as for a local request. Tokens
//! are therefore log indexes of the owning mesh, which is the only one that
//! ever interprets them.
//!
//! The sender needs nothing from its own Raft group, so a node whose mesh has
//! lost its quorum still serves other meshes' sessions.
//!
//! Failover: each operation starts at the next member in turn (round robin,
//! which also spreads the load) and moves on while the previous member
//! certainly did nothing: it could not be reached, it refused the request
//! unread, or it knew no leader of its mesh. A load, which changes nothing,
//! also moves on after any other failure. A write whose outcome is unknown
//! (time-out, connection lost mid-request) is never retried elsewhere, since
//! it may have committed: the caller gets [`StoreError::Unavailable`]. A
//! write is reported successful only with the owning mesh's own `Committed`.
//! The whole operation is bounded by `write_timeout` (writes) or twice
//! `read_wait` (loads: the receiver may wait `read_wait` for the token and
//! then ask its leader), and the receiver is told how long the sender will
//! wait so that it gives up first.
//!
//! A receiver serves only sessions tagged with its own mesh and never forwards
//! further, so directories that disagree cannot make requests loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::{
    ChangeSet, Committed, ConsistencyToken, MeshTag, SessionId, SessionRecord, StoreError,
    UnixMillis,
};

use crate::command::Command;
use crate::replica::{retry_until, Attempt, Pause, Replica, RETRY_SOON};
use crate::rpc::call_error::CallError;
use crate::rpc::{Request, Response};

use super::{read, write};

/// Pause between rounds over all members of a mesh, so that a mesh in the
/// middle of an election is asked again soon but not in a tight loop.
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// Most of the sender's remaining time that is kept back from the budget
/// given to the receiver, for the answer's trip back.
const MAX_RETURN_MARGIN: Duration = Duration::from_millis(500);

/// Where the operations on one session id are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// By this node's own Raft group: the id carries this node's mesh, or no
    /// mesh at all (a deployment without meshes, or ids minted before it had
    /// them).
    Local,
    /// By the members of another mesh listed in the directory.
    Mesh(MeshTag),
    /// By a mesh this node does not know of: the session is treated as
    /// missing.
    Unknown(MeshTag),
}

/// The `op` label of the metrics.
fn op_label(command: &Command) -> &'static str {
    match command {
        Command::Create { .. } => "create",
        Command::Apply { .. } => "apply",
        Command::Delete { .. } | Command::DeleteAt { .. } => "delete",
        Command::ExpireBefore { .. } => "expire",
        Command::InitCluster { .. } => "init-cluster",
    }
}

/// The budget handed to the receiver: what the sender will wait, less a
/// margin for the answer to travel back.
fn budget(remaining: Duration) -> Duration {
    remaining.saturating_sub((remaining / 10).min(MAX_RETURN_MARGIN))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Where operations on `id` are served.
pub(crate) fn route(replica: &Replica, id: &SessionId) -> Route {
    match id.mesh() {
        None => Route::Local,
        Some(tag) if Some(tag) == replica.mesh => Route::Local,
        Some(tag) => match &replica.meshes {
            Some(directory) if directory.contains(&tag) => Route::Mesh(tag),
            _ => Route::Unknown(tag),
        },
    }
}

/// A rotated id must be served where the old one was; otherwise the
/// session would be stored in one mesh under an id that routes to
/// another, and lost to its client. (The layer mints the new id with the
/// old id's mesh.)
pub(crate) fn check_rotation(
    replica: &Replica,
    id: &SessionId,
    changes: &ChangeSet,
) -> Result<(), StoreError> {
    match changes.rotate_to {
        Some(new) if route(replica, &new) != route(replica, id) => {
            Err(StoreError::Backend(format!(
                "a rotated session id must keep its mesh ({:?}), not {:?}",
                id.mesh().map(|m| m.to_string()),
                new.mesh().map(|m| m.to_string()),
            )))
        }
        _ => Ok(()),
    }
}

/// `mesh`'s members in the order to try them: the next one in turn first.
fn members_in_turn(replica: &Replica, mesh: &MeshTag) -> Vec<String> {
    let members = replica
        .meshes
        .as_ref()
        .and_then(|d| d.members(mesh))
        .unwrap_or_default();
    if members.is_empty() {
        return Vec::new();
    }
    let start = replica.next_mesh_member.fetch_add(1, Ordering::Relaxed) % members.len();
    members[start..]
        .iter()
        .chain(&members[..start])
        .cloned()
        .collect()
}

/// Loads a session of `mesh` through one of its members.
pub(crate) async fn cross_mesh_load(
    replica: &Replica,
    mesh: MeshTag,
    id: &SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
) -> Result<Option<Arc<SessionRecord>>, StoreError> {
    metrics::counter!("session_raft_cross_mesh_forwards_total", "op" => "load").increment(1);
    let result = cross_mesh_load_inner(replica, mesh, id, token, now).await;
    if result.is_err() {
        metrics::counter!("session_raft_cross_mesh_forward_failures_total", "op" => "load")
            .increment(1);
    }
    result
}

async fn cross_mesh_load_inner(
    replica: &Replica,
    mesh: MeshTag,
    id: &SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
) -> Result<Option<Arc<SessionRecord>>, StoreError> {
    let deadline = Instant::now() + replica.read_wait * 2;
    // One attempt is a round over the mesh's members.
    let round = |_| async move {
        let mut problem = None;
        for addr in members_in_turn(replica, &mesh) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let request = Request::MeshLoad {
                id: *id,
                token,
                now,
                budget_ms: millis(budget(remaining)),
            };
            // A load changes nothing: whatever went wrong, the next
            // member may do better.
            match replica
                .client
                .call_mesh(mesh, &addr, &request, remaining)
                .await
            {
                Ok(Response::MeshLoad(Ok(record))) => {
                    return Attempt::Done(Ok(record.map(Arc::new)))
                }
                Ok(Response::MeshLoad(Err(StoreError::Unavailable { reason, .. })))
                | Ok(Response::Unavailable(reason))
                | Ok(Response::Refused(reason)) => {
                    problem = Some(format!("{addr}: {reason}"));
                }
                Ok(Response::MeshLoad(Err(error))) => return Attempt::Done(Err(error)),
                Ok(other) => {
                    problem = Some(format!("{addr}: unexpected answer {}", kind(&other)));
                }
                Err(e) => problem = Some(e.to_string()),
            }
        }
        problem.map_or(Attempt::Wait, Attempt::Again)
    };
    let first = format!("mesh {mesh} has no members");
    match retry_until(deadline, Pause::For(ROUND_PAUSE), first, round).await {
        Ok(result) => result,
        Err(problem) => {
            tracing::debug!(%mesh, %problem, "cross-mesh load failed");
            Err(StoreError::unavailable(
                RETRY_SOON,
                format!("no member of mesh {mesh} served the read in time: {problem}"),
            ))
        }
    }
}

/// Commits a session write (create, apply, delete) in `mesh` through one
/// of its members.
pub(crate) async fn cross_mesh_write(
    replica: &Replica,
    mesh: MeshTag,
    command: Command,
) -> Result<Committed, StoreError> {
    let op = op_label(&command);
    metrics::counter!("session_raft_cross_mesh_forwards_total", "op" => op).increment(1);
    let result = cross_mesh_write_inner(replica, mesh, command).await;
    if matches!(
        result,
        Err(StoreError::Unavailable { .. } | StoreError::Backend(_))
    ) {
        metrics::counter!("session_raft_cross_mesh_forward_failures_total", "op" => op)
            .increment(1);
    }
    result
}

async fn cross_mesh_write_inner(
    replica: &Replica,
    mesh: MeshTag,
    command: Command,
) -> Result<Committed, StoreError> {
    let deadline = Instant::now() + replica.write_timeout;
    let unknown = |why: String| {
        tracing::debug!(%mesh, problem = %why, "cross-mesh write outcome unknown");
        Attempt::Done(Err(StoreError::unavailable(
            RETRY_SOON,
            format!("forwarding the write to mesh {mesh} failed; its outcome is unknown: {why}"),
        )))
    };
    let command = &command;
    // One attempt is a round over the mesh's members.
    let round = |_| async move {
        let mut problem = None;
        for addr in members_in_turn(replica, &mesh) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let request = Request::MeshWrite {
                command: command.clone(),
                budget_ms: millis(budget(remaining)),
            };
            match replica
                .client
                .call_mesh(mesh, &addr, &request, remaining)
                .await
            {
                // The owning mesh's own verdict, success or not.
                Ok(Response::MeshWrite(result)) => return Attempt::Done(result),
                // Refused before anything was proposed: try the next one.
                Ok(Response::Unavailable(reason)) | Ok(Response::Refused(reason)) => {
                    problem = Some(format!("{addr}: {reason}"));
                }
                Ok(other) => return unknown(format!("{addr}: unexpected answer {}", kind(&other))),
                Err(e) if e.not_delivered() => {
                    if let CallError::Refused { status, .. } = &e {
                        // 401 here means the meshes' secrets differ.
                        tracing::warn!(%mesh, %addr, %status, "member of another mesh refused a forwarded write");
                    }
                    problem = Some(e.to_string());
                }
                Err(e) => return unknown(e.to_string()),
            }
        }
        problem.map_or(Attempt::Wait, Attempt::Again)
    };
    let first = format!("mesh {mesh} has no members");
    match retry_until(deadline, Pause::For(ROUND_PAUSE), first, round).await {
        Ok(result) => result,
        Err(problem) => {
            tracing::debug!(%mesh, %problem, "cross-mesh write not delivered");
            Err(StoreError::unavailable(
                RETRY_SOON,
                format!("no member of mesh {mesh} took the write in time: {problem}"),
            ))
        }
    }
}

/// Why this node must not serve `id` for another mesh, if it must not.
fn refuse_foreign(replica: &Replica, id: &SessionId) -> Option<Response> {
    // Only sessions of this very mesh: serving (or forwarding) anything
    // else would split a session across groups or loop between nodes
    // whose directories disagree.
    if id.mesh().is_some() && id.mesh() == replica.mesh {
        return None;
    }
    Some(Response::Refused(format!(
        "node {} serves mesh {:?}, not the session's mesh {:?}",
        replica.node_id,
        replica.mesh.map(|m| m.to_string()),
        id.mesh().map(|m| m.to_string()),
    )))
}

/// Receiver side of [`Request::MeshLoad`].
pub(crate) async fn serve_mesh_load(
    replica: &Replica,
    id: SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
    budget_ms: u64,
) -> Response {
    if let Some(refusal) = refuse_foreign(replica, &id) {
        return refusal;
    }
    metrics::counter!("session_raft_cross_mesh_served_total", "op" => "load").increment(1);
    let bound = Duration::from_millis(budget_ms).min(replica.read_wait * 2);
    match tokio::time::timeout(bound, read::load(replica, &id, token, now)).await {
        Ok(result) => Response::MeshLoad(result.map(|r| r.map(|r| (*r).clone()))),
        Err(_) => Response::MeshLoad(Err(StoreError::unavailable(
            RETRY_SOON,
            format!("node {} could not serve the read in time", replica.node_id),
        ))),
    }
}

/// Receiver side of [`Request::MeshWrite`].
pub(crate) async fn serve_mesh_write(
    replica: &Replica,
    mut command: Command,
    budget_ms: u64,
) -> Response {
    // The session count limit is the owning mesh's, not the sender's.
    if let Command::Create { max_sessions, .. } = &mut command {
        *max_sessions = replica.max_sessions;
    }
    let Some(id) = command.session_id() else {
        return Response::Refused("only session writes are forwarded between meshes".into());
    };
    if let Some(refusal) = refuse_foreign(replica, id) {
        return refusal;
    }
    if let Command::Apply { id, changes, .. } = &command {
        if let Err(error) = check_rotation(replica, id, changes) {
            return Response::MeshWrite(Err(error));
        }
    }
    // A member that knows no leader (cut off, or its mesh lost its
    // quorum) says so before proposing anything, so that the sender may
    // safely try another member instead of waiting here.
    if replica.leader().is_none() {
        return Response::Unavailable(format!(
            "node {} knows no leader of its mesh",
            replica.node_id
        ));
    }
    let op = op_label(&command);
    metrics::counter!("session_raft_cross_mesh_served_total", "op" => op).increment(1);
    let bound = Duration::from_millis(budget_ms).min(replica.write_timeout);
    Response::MeshWrite(write::write_within(replica, command, bound).await)
}

/// An answer's variant name, for messages (never its payload: session data).
fn kind(response: &Response) -> &'static str {
    match response {
        Response::AppendEntries(_) => "append-entries",
        Response::Vote(_) => "vote",
        Response::TransferLeader(_) => "transfer-leader",
        Response::Write(_) => "write",
        Response::ReadIndex(_) => "read-index",
        Response::Load(_) => "load",
        Response::Done => "done",
        Response::NotLeader { .. } => "not-leader",
        Response::Unavailable(_) => "unavailable",
        Response::Refused(_) => "refused",
        Response::MeshLoad(_) => "mesh-load",
        Response::MeshWrite(_) => "mesh-write",
        Response::Status(_) => "status",
    }
}
