//! The read path: a load served from this member's applied state under the
//! configured [`ReadMode`], never from a state older than the client's
//! token; asked of the leader when this member is behind or outside its
//! read lease; and the leader's side of those requests ([`serve_load`],
//! [`serve_read_index`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::errors::{LinearizableReadError, RaftError};
use openraft::ReadPolicy;
use session_core::{ConsistencyToken, SessionId, SessionRecord, StoreError, UnixMillis};

use crate::config::ReadMode;
use crate::replica::{retry_until, Attempt, Pause, Replica, RETRY_SOON};
use crate::rpc::client::Pool;
use crate::rpc::{Request, Response};

/// Waits until this node has applied `index`, at most `wait`.
pub(crate) async fn wait_applied(replica: &Replica, index: u64, wait: Duration) -> bool {
    if replica.reader.applied_index() >= index {
        return true;
    }
    let mut applied = replica.reader.watch_applied();
    tokio::time::timeout(wait, applied.wait_for(|applied| *applied >= index))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The client's token as this group honours it. A token of another
/// history (a wiped and rebuilt cluster, another mesh, a cookie from
/// before histories) names an index this group may not reach for days:
/// it asks for nothing here. A member that has not yet applied the
/// group's cluster id cannot tell, and keeps the token (it waits, then
/// asks the leader, who can).
pub(crate) fn honoured(replica: &Replica, token: ConsistencyToken) -> ConsistencyToken {
    let own = replica.reader.cluster_id();
    if own == 0 || token.history == own {
        return token;
    }
    if !token.is_none() {
        replica.metrics.foreign_tokens.increment(1);
    }
    ConsistencyToken::NONE
}

/// The session as this node's state machine has it, or
/// [`StoreError::Superseded`] for an id a login or logout took away
/// moments ago.
fn local_get(
    replica: &Replica,
    id: &SessionId,
    now: UnixMillis,
) -> Result<Option<Arc<SessionRecord>>, StoreError> {
    match replica.reader.get(id, now) {
        None if replica.reader.superseded(id, now) => Err(StoreError::Superseded),
        found => Ok(found),
    }
}

/// A read under the configured [`ReadMode`].
pub(crate) async fn load(
    replica: &Replica,
    id: &SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
) -> Result<Option<Arc<SessionRecord>>, StoreError> {
    let token = honoured(replica, token);
    match replica.read_mode {
        ReadMode::Local => local_get(replica, id, now),
        ReadMode::Session => {
            if !replica.lease.allows_local_reads() {
                // Cut off (or a leader without its majority): what this
                // member holds may miss a logout; only the leader knows.
                replica.metrics.reads_without_lease.increment(1);
                return load_from_leader(replica, id, token, now).await;
            }
            if wait_applied(replica, token.index, replica.read_wait).await {
                return local_get(replica, id, now);
            }
            replica.metrics.reads_forwarded.increment(1);
            load_from_leader(replica, id, token, now).await
        }
        ReadMode::Linearizable => {
            let index = read_index(replica).await?;
            if wait_applied(replica, index.max(token.index), replica.read_wait).await {
                local_get(replica, id, now)
            } else {
                Err(StoreError::unavailable(
                    RETRY_SOON,
                    format!("this node has not applied the read index {index} in time"),
                ))
            }
        }
    }
}

/// Asks the leader to serve a read this node is too far behind for.
async fn load_from_leader(
    replica: &Replica,
    id: &SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
) -> Result<Option<Arc<SessionRecord>>, StoreError> {
    let behind = || {
        let reason = if replica.lease.allows_local_reads() {
            format!(
                "this node has applied {} but the client has seen {}",
                replica.reader.applied_index(),
                token.index
            )
        } else {
            "this node has not heard from a leader backed by a majority within its read \
             lease, and no leader answered"
                .to_owned()
        };
        StoreError::unavailable(RETRY_SOON, reason)
    };
    let Some((leader, Some(addr))) = replica.leader() else {
        return Err(behind());
    };
    if leader == replica.node_id {
        return Err(behind());
    }
    let request = Request::Load {
        id: *id,
        token,
        now,
    };
    match replica
        .client
        .call(Pool::Replication, &addr, &request, replica.read_wait)
        .await
    {
        Ok(Response::Load(record)) => Ok(record.map(Arc::new)),
        _ => Err(behind()),
    }
}

/// Serves a follower's [`Request::Load`]: only from a state at least as
/// new as the token.
pub(crate) async fn serve_load(
    replica: &Replica,
    id: SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
) -> Response {
    if !replica.lease.allows_local_reads() {
        return Response::Unavailable(format!(
            "node {} has not heard from a majority within its read lease",
            replica.node_id
        ));
    }
    let token = honoured(replica, token);
    // Short wait: the asking follower has already waited its share.
    if wait_applied(replica, token.index, replica.read_wait / 2).await {
        Response::Load(replica.reader.get(&id, now).map(|r| (*r).clone()))
    } else {
        Response::Unavailable(format!(
            "node {} has applied {} < token {}",
            replica.node_id,
            replica.reader.applied_index(),
            token.index
        ))
    }
}

/// The leader's read index (Raft read-index: leadership confirmed by a
/// quorum), from here or from the leader.
async fn read_index(replica: &Replica) -> Result<u64, StoreError> {
    let deadline = Instant::now() + replica.read_wait;
    retry_until(
        deadline,
        Pause::ForLeaderChange(replica),
        "no leader known".into(),
        |remaining| async move {
            match replica.leader() {
                Some((id, _)) if id == replica.node_id => match serve_read_index(replica).await {
                    Response::ReadIndex(index) => Attempt::Done(index),
                    Response::Unavailable(reason) | Response::Refused(reason) => {
                        Attempt::Again(reason)
                    }
                    _ => Attempt::Again("leadership moved".into()),
                },
                Some((id, Some(addr))) => {
                    match replica
                        .client
                        .call(Pool::Replication, &addr, &Request::ReadIndex, remaining)
                        .await
                    {
                        Ok(Response::ReadIndex(index)) => Attempt::Done(index),
                        Ok(Response::Unavailable(reason)) => Attempt::Again(reason),
                        Ok(_) => Attempt::Again(format!("node {id} is no longer the leader")),
                        Err(e) => Attempt::Again(e.to_string()),
                    }
                }
                _ => Attempt::Wait,
            }
        },
    )
    .await
    .map_err(|problem| {
        StoreError::unavailable(
            RETRY_SOON,
            format!("no read index from a leader in time: {problem}"),
        )
    })
}

/// Confirms leadership with a quorum and returns the read index.
pub(crate) async fn serve_read_index(replica: &Replica) -> Response {
    let confirm = replica.raft.ensure_linearizable(ReadPolicy::ReadIndex);
    match tokio::time::timeout(replica.read_wait, confirm).await {
        Ok(Ok(read_log_id)) => Response::ReadIndex(read_log_id.index()),
        Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward)))) => {
            Response::NotLeader {
                leader: forward.leader_id,
                addr: forward.leader_node.map(|n| n.addr),
            }
        }
        Ok(Err(e)) => Response::Unavailable(e.to_string()),
        Err(_) => Response::Unavailable("leadership not confirmed in time".into()),
    }
}
