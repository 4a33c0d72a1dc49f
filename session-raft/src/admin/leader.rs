//! The leader's side of admin requests: membership changes (add a learner,
//! promote, remove) run through openraft when this member leads, a
//! redirect to the leader otherwise, and the cluster status.

use std::collections::BTreeSet;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::replica::Replica;
use crate::rpc::{Request, Response};
use crate::types::NodeId;

/// Runs an admin request if this node is the leader; otherwise says who is.
pub(crate) async fn serve(replica: &Replica, request: &Request) -> Response {
    if let Request::Status = request {
        // Only the leader knows every member's lag, so send the caller
        // there. With no leader (or no address for it) known, this
        // member's own view is the answer: during an outage it is what
        // an operator needs to see.
        return match replica.leader() {
            Some((leader, Some(addr))) if leader != replica.node_id => Response::NotLeader {
                leader: Some(leader),
                addr: Some(addr),
            },
            _ => Response::Status(Box::new(replica.status())),
        };
    }
    if let Request::Promote { id } | Request::Remove { id } = request {
        // openraft removes a node that is not a member without a word,
        // and names a promotion of one as a missing learner: say plainly
        // that the id is unknown. Only the leader's view counts (a
        // follower may not have applied a change yet); elsewhere the
        // request is redirected below as usual.
        if replica.raft.is_leader() && !is_member(replica, *id) {
            return Response::Refused(format!("node {id} is not a member of the cluster"));
        }
    }
    let result = match request {
        Request::AddLearner { id, addr } => {
            let (id, addr) = (*id, addr.clone());
            tracing::info!(node = id, %addr, "adding learner");
            replica.raft.add_learner(id, BasicNode { addr }, true).await
        }
        Request::Promote { id } => {
            let id = *id;
            tracing::info!(node = id, "promoting learner to voter");
            replica
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                .await
        }
        Request::Remove { id } => {
            let id = *id;
            tracing::info!(node = id, "removing member");
            let is_voter = replica.raft.voter_ids().any(|v| v == id);
            let change = if is_voter {
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            replica.raft.change_membership(change, false).await
        }
        _ => return Response::Refused("not an admin request".into()),
    };
    match result {
        Ok(_) => Response::Done,
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            let addr = forward.leader_node.map(|n| n.addr).or_else(|| {
                let leader = forward.leader_id?;
                replica
                    .leader()
                    .filter(|(id, _)| *id == leader)
                    .and_then(|(_, a)| a)
            });
            Response::NotLeader {
                leader: forward.leader_id,
                addr,
            }
        }
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
            Response::Unavailable("leader changed during the membership change".into())
        }
        Err(RaftError::APIError(e)) => Response::Refused(e.to_string()),
        Err(RaftError::Fatal(e)) => Response::Unavailable(format!("raft stopped: {e}")),
    }
}

/// Whether `id` is in this member's latest membership (voter or learner).
fn is_member(replica: &Replica, id: NodeId) -> bool {
    let metrics = replica.raft.metrics();
    let metrics = metrics.borrow_watched();
    metrics
        .membership_config
        .membership()
        .get_node(&id)
        .is_some()
}
