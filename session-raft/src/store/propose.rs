//! Proposals on the leader, in batches: the writes of concurrent requests
//! on this member go to openraft together (`client_write_many`), as the
//! writes a follower forwards do, instead of one `client_write` each.
//!
//! Why: each `client_write` is its own message to RaftCore, and under load
//! the core then appends and replicates in small pieces; a batch is one
//! append (one log write, shared fsync) and one replication step. A
//! background task takes whatever is queued (after one scheduler turn, so
//! that callers woken together join the same batch) and proposes it; the
//! outcomes are read by a task of each batch, so the next batch is proposed
//! while the last one commits. A lone write waits for nothing but that
//! scheduler turn.

use std::sync::Arc;

use futures::StreamExt as _;
use openraft::errors::{ClientWriteError, Fatal};
use openraft::raft::WriteResponse;
use tokio::sync::{mpsc, oneshot};

use super::batch_sizes::RecentSizes;
use crate::command::Command;
use crate::storage::Raft;
use crate::types::TypeConfig;

/// Most proposals in one batch.
const MAX_BATCH: usize = 256;

/// Sizes of the latest batches, for tests (see
/// `session_raft::internals::proposal_batch_sizes`).
static RECENT_BATCHES: RecentSizes = RecentSizes::new();

/// The sizes of the latest proposal batches of this process, oldest first.
pub(crate) fn recent_batch_sizes() -> Vec<usize> {
    RECENT_BATCHES.all()
}

/// What a proposal comes back with: openraft's answer for its entry, or
/// `Fatal` if the core stopped before giving one.
pub(crate) type Proposed =
    Result<Result<WriteResponse<TypeConfig>, ClientWriteError<TypeConfig>>, Fatal<TypeConfig>>;

/// One queued proposal.
struct Proposal {
    command: Arc<Command>,
    reply: oneshot::Sender<Proposed>,
}

/// Queue of this member's proposals (see the module docs).
#[derive(Clone)]
pub(crate) struct Proposer {
    proposals: mpsc::Sender<Proposal>,
}

impl Proposer {
    /// Starts the batching task; it ends when every `Proposer` is dropped.
    pub(crate) fn spawn(raft: Raft) -> Self {
        let (proposals, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(rx, raft));
        Self { proposals }
    }

    /// Proposes `command`; the answer comes once it is committed and
    /// applied (or refused). The caller bounds the wait.
    pub(crate) async fn propose(&self, command: Arc<Command>) -> Proposed {
        let (reply, answer) = oneshot::channel();
        if self
            .proposals
            .send(Proposal { command, reply })
            .await
            .is_err()
        {
            return Err(Fatal::Stopped);
        }
        // Dropped unanswered: the core stopped under the batch.
        answer.await.unwrap_or(Err(Fatal::Stopped))
    }
}

async fn run(mut rx: mpsc::Receiver<Proposal>, raft: Raft) {
    let sizes = metrics::histogram!("session_raft_proposal_batch_size");
    while let Some(first) = rx.recv().await {
        // Callers woken by the same event enqueue during this turn.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        sizes.record(batch.len() as f64);
        RECENT_BATCHES.record(batch.len());
        let (commands, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        match raft.client_write_many(commands).await {
            Ok(mut answers) => {
                tokio::spawn(async move {
                    let mut replies = replies.into_iter();
                    while let Some(answer) = answers.next().await {
                        let Some(reply) = replies.next() else { break };
                        // The caller may have given up waiting.
                        let _ = reply.send(answer);
                    }
                    // Replies left over are dropped: "stopped" to their callers.
                });
            }
            Err(fatal) => {
                for reply in replies {
                    let _ = reply.send(Err(fatal.clone()));
                }
            }
        }
    }
}
