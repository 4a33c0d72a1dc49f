//! The write path: a [`Command`] proposed on the leader, or forwarded to it
//! by a follower (see [`super::forward`]), retried on a new leader only
//! while no attempt can have done anything; and the leader's side of a
//! forwarded batch ([`serve_forwarded_writes`]).
//!
//! A write reports success only after the leader has committed and applied
//! it; the token and version are the entry's log index. When the outcome is
//! unknown (time-out, connection lost mid-request, leader changed after
//! proposing) the caller gets [`StoreError::Unavailable`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::errors::ClientWriteError;
use session_core::{Committed, ConsistencyToken, StoreError};

use crate::command::Command;
use crate::replica::{retry_until, Attempt, Pause, Replica, RETRY_SOON};
use crate::rpc::{Response, WriteOutcome};
use crate::types::TypeConfig;

/// Refuses a write whose session bytes cannot fit one replication message
/// (see `max_write_bytes`): nothing is proposed.
pub(crate) fn check_write_size(replica: &Replica, bytes: usize) -> Result<(), StoreError> {
    if bytes > replica.max_write_bytes {
        return Err(StoreError::TooLarge {
            size: bytes,
            limit: replica.max_write_bytes,
        });
    }
    Ok(())
}

/// Proposes `command` through the leader, bounded by `write_timeout`.
pub(crate) async fn write(replica: &Replica, command: Command) -> Result<Committed, StoreError> {
    write_within(replica, command, replica.write_timeout).await
}

/// Proposes `command` through the leader, bounded by `bound`.
pub(crate) async fn write_within(
    replica: &Replica,
    command: Command,
    bound: Duration,
) -> Result<Committed, StoreError> {
    replica.metrics.writes.increment(1);
    let started = Instant::now();
    // Shared by every attempt (proposal or forward) without copying.
    let command = Arc::new(command);
    let result = write_until(replica, &command, started + bound).await;
    replica
        .metrics
        .commit_seconds
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        replica.metrics.write_failures.increment(1);
    }
    result
}

async fn write_until(
    replica: &Replica,
    command: &Arc<Command>,
    deadline: Instant,
) -> Result<Committed, StoreError> {
    let outcome = retry_until(
        deadline,
        Pause::ForLeaderChange(replica),
        "no leader known".into(),
        |_remaining| async move {
            match replica.leader() {
                Some((id, _)) if id == replica.node_id => propose(replica, command, deadline).await,
                Some((id, Some(addr))) => {
                    match replica
                        .forwarder
                        .forward(Arc::clone(command), addr, deadline)
                        .await
                    {
                        Ok(WriteOutcome::Done(result)) => Attempt::Done(result),
                        // The old leader may already know the new one before
                        // we do; either way wait for our view to move.
                        Ok(WriteOutcome::NotLeader { .. }) => {
                            Attempt::Again(format!("node {id} is no longer the leader"))
                        }
                        Err(e) if e.not_delivered() => Attempt::Again(e.to_string()),
                        Err(e) => Attempt::Done(Err(StoreError::unavailable(
                            RETRY_SOON,
                            format!("forwarding the write failed; its outcome is unknown: {e}"),
                        ))),
                    }
                }
                Some((id, None)) => Attempt::Again(format!("leader {id} has no known address")),
                None => Attempt::Wait,
            }
        },
    )
    .await;
    outcome.unwrap_or_else(|problem| {
        Err(StoreError::unavailable(
            RETRY_SOON,
            format!("write not committed in time: {problem}"),
        ))
    })
}

/// Proposes `command` on this member, the leader.
async fn propose(
    replica: &Replica,
    command: &Arc<Command>,
    deadline: Instant,
) -> Attempt<Result<Committed, StoreError>> {
    let proposal = replica.proposer.propose(Arc::clone(command));
    match tokio::time::timeout_at(deadline.into(), proposal).await {
        Err(_) => Attempt::Done(Err(StoreError::unavailable(
            RETRY_SOON,
            "write not committed in time (no quorum?); its outcome is unknown",
        ))),
        Ok(Err(fatal)) => Attempt::Done(Err(StoreError::unavailable(
            RETRY_SOON,
            format!("raft stopped: {fatal}"),
        ))),
        Ok(Ok(written)) => match write_outcome(replica.reader.cluster_id(), written) {
            WriteOutcome::Done(result) => Attempt::Done(result),
            WriteOutcome::NotLeader { .. } => Attempt::Again("leadership moved".into()),
        },
    }
}

/// cluster id, which the token names.
fn write_outcome(
    history: u64,
    result: Result<openraft::raft::WriteResponse<TypeConfig>, ClientWriteError<TypeConfig>>,
) -> WriteOutcome {
    match result {
        Ok(written) => WriteOutcome::Done(written.response.result.map(|_version| {
            // The entry's index is both the record's version and the token
            // (the state machine reports the same index as the version).
            Committed {
                version: written.log_id.index,
                token: ConsistencyToken::new(history, written.log_id.index),
            }
        })),
        Err(ClientWriteError::ForwardToLeader(forward)) => WriteOutcome::NotLeader {
            leader: forward.leader_id,
        },
        Err(ClientWriteError::LogEntryDiscarded(_)) => {
            WriteOutcome::Done(Err(StoreError::unavailable(
                RETRY_SOON,
                "leader changed while the write was being committed; its outcome is unknown",
            )))
        }
        Err(other) => WriteOutcome::Done(Err(StoreError::Backend(other.to_string()))),
    }
}

/// Leader side of a forwarded batch: propose all, answer in order.
pub(crate) async fn serve_forwarded_writes(
    replica: &Replica,
    commands: Vec<Arc<Command>>,
) -> Response {
    let count = commands.len();
    if !replica.raft.is_leader() {
        return Response::NotLeader {
            leader: replica.leader().map(|(id, _)| id),
            addr: None,
        };
    }
    let mut stream = match replica.raft.client_write_many(commands).await {
        Ok(stream) => stream,
        Err(fatal) => return Response::Unavailable(format!("raft stopped: {fatal}")),
    };
    let collect = async {
        let mut outcomes = Vec::with_capacity(count);
        while let Some(item) = stream.next().await {
            outcomes.push(match item {
                Ok(result) => write_outcome(replica.reader.cluster_id(), result),
                Err(fatal) => WriteOutcome::Done(Err(StoreError::unavailable(
                    RETRY_SOON,
                    format!("raft stopped: {fatal}"),
                ))),
            });
        }
        outcomes
    };
    match tokio::time::timeout(replica.write_timeout, collect).await {
        Ok(mut outcomes) => {
            // A stream cut short (core stopped) leaves unknown outcomes.
            while outcomes.len() < count {
                outcomes.push(WriteOutcome::Done(Err(StoreError::unavailable(
                    RETRY_SOON,
                    "raft stopped; the write's outcome is unknown",
                ))));
            }
            Response::Write(outcomes)
        }
        Err(_) => Response::Write(vec![
            WriteOutcome::Done(Err(StoreError::unavailable(
                RETRY_SOON,
                "write not committed in time (no quorum?); its outcome is unknown",
            )));
            count
        ]),
    }
}
