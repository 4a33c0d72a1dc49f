//! What a member does with each decoded cluster RPC: Raft's own messages
//! go to openraft, the others to the store's and admin's serving functions.
//! The server ([`super::server`]) has already checked the secret, the target
//! member, the group and the body limit.

use crate::admin::leader;
use crate::replica::Replica;
use crate::storage::snapshot::{Snapshot, SnapshotData};
use crate::store::{cross_mesh, read, write};
use crate::types::{SnapshotMeta, Vote};

use super::{Request, Response, SnapshotReply};

/// Dispatches one decoded RPC (see [`super::server`]).
pub(crate) async fn handle(replica: &Replica, request: Request) -> Response {
    let stopped = |e: &dyn std::fmt::Display| Response::Unavailable(format!("raft stopped: {e}"));
    match request {
        Request::AppendEntries(rpc) => match replica.raft.append_entries(rpc).await {
            Ok(response) => Response::AppendEntries(response),
            Err(e) => stopped(&e),
        },
        Request::LeasedAppendEntries { rpc, quorum_age_ms } => {
            match replica.raft.append_entries(rpc).await {
                Ok(response) => {
                    replica.lease.renew(&response, quorum_age_ms);
                    Response::AppendEntries(response)
                }
                Err(e) => stopped(&e),
            }
        }
        Request::Vote(rpc) => match replica.raft.vote(rpc).await {
            Ok(response) => Response::Vote(response),
            Err(e) => stopped(&e),
        },
        Request::PreVote(rpc) => match replica.raft.pre_vote(rpc).await {
            Ok(response) => Response::Vote(response),
            Err(e) => stopped(&e),
        },
        Request::TransferLeader(rpc) => match replica.raft.handle_transfer_leader(rpc).await {
            Ok(response) => Response::TransferLeader(response),
            Err(e) => stopped(&e),
        },
        Request::Write(commands) => write::serve_forwarded_writes(replica, commands).await,
        Request::ReadIndex => read::serve_read_index(replica).await,
        Request::Load { id, token, now } => read::serve_load(replica, id, token, now).await,
        Request::MeshLoad {
            id,
            token,
            now,
            budget_ms,
        } => cross_mesh::serve_mesh_load(replica, id, token, now, budget_ms).await,
        Request::MeshWrite { command, budget_ms } => {
            cross_mesh::serve_mesh_write(replica, command, budget_ms).await
        }
        admin @ (Request::AddLearner { .. }
        | Request::Promote { .. }
        | Request::Remove { .. }
        | Request::Status) => leader::serve(replica, &admin).await,
    }
}

/// Installs a snapshot streamed by the leader, already spooled to a
/// file and verified (see [`crate::rpc::snapshot_transfer::receive`]):
/// openraft treats a state machine that fails to install a snapshot as
/// a storage fault and stops the node, so a corrupt transfer must be
/// refused before it gets here.
pub(crate) async fn install_snapshot(
    replica: &Replica,
    vote: Vote,
    meta: SnapshotMeta,
    data: SnapshotData,
) -> SnapshotReply {
    let snapshot = Snapshot {
        meta,
        snapshot: data,
    };
    match replica.raft.install_full_snapshot(vote, snapshot).await {
        Ok(response) => SnapshotReply::Installed(response),
        Err(e) => SnapshotReply::Unavailable(e.to_string()),
    }
}
