//! Forwarding a follower's writes to the leader: a per-node queue drained
//! by one background task that packs whatever is queued into one `Write`
//! RPC, with several RPCs in flight on separate pooled connections, so that
//! batches grow with load and a lone write is not delayed.
//!
//! Each job carries its caller's deadline: a job still queued then is not
//! sent (nobody would learn its outcome), and the RPC carrying a batch ends
//! by the latest deadline in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::command::Command;
use crate::rpc::call_error::CallError;
use crate::rpc::client::{ClusterClient, Pool};
use crate::rpc::{Request, Response, WriteOutcome};

/// Most commands one forwarded `Write` RPC carries.
const MAX_FORWARD_BATCH: usize = 256;
/// Most forwarded `Write` RPCs in flight at once.
const MAX_FORWARDS_IN_FLIGHT: usize = 8;

/// One write waiting to be forwarded.
struct ForwardJob {
    /// The command.
    command: Command,
    /// Leader's cluster address.
    addr: String,
    /// When the caller stops waiting: a job still queued then is not sent,
    /// and the RPC carrying it ends by then.
    deadline: Instant,
    /// Where the outcome goes.
    reply: oneshot::Sender<Result<WriteOutcome, CallError>>,
}

/// Queue of writes to forward to the leader, drained in batches by a
/// background task (see [`run_forwarder`]).
#[derive(Clone)]
pub(crate) struct Forwarder {
    /// Jobs for the background task.
    jobs: mpsc::Sender<ForwardJob>,
}

impl Forwarder {
    /// Starts the background task; it ends when every `Forwarder` is dropped.
    pub(crate) fn spawn(client: Arc<ClusterClient>) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_FORWARD_BATCH);
        tokio::spawn(run_forwarder(rx, client));
        Self { jobs }
    }

    /// Forwards one command to the leader at `addr`, giving up at
    /// `deadline` whatever stage it is at (queued, waiting for a free
    /// connection, or sent).
    pub(crate) async fn forward(
        &self,
        command: Command,
        addr: String,
        deadline: Instant,
    ) -> Result<WriteOutcome, CallError> {
        let started = Instant::now();
        let (reply, outcome) = oneshot::channel();
        let job = ForwardJob {
            command,
            addr: addr.clone(),
            deadline,
            reply,
        };
        let not_sent = |reason: &str| CallError::Connect {
            addr: addr.clone(),
            reason: reason.into(),
        };
        match tokio::time::timeout_at(deadline.into(), self.jobs.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(not_sent("the node is shutting down")),
            Err(_) => {
                return Err(not_sent(
                    "the forwarding queue stayed full until the deadline",
                ))
            }
        }
        match tokio::time::timeout_at(deadline.into(), outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(not_sent("the node is shutting down")),
            // Queued or sent: from here the outcome is unknown.
            Err(_) => Err(CallError::Timeout {
                addr,
                after: deadline.saturating_duration_since(started),
            }),
        }
    }
}

/// Packs queued jobs into `Write` RPCs: whatever queued up while earlier RPCs
/// were in flight goes out together, so batches grow with load and a lone
/// write is not delayed.
async fn run_forwarder(mut rx: mpsc::Receiver<ForwardJob>, client: Arc<ClusterClient>) {
    let in_flight = Arc::new(Semaphore::new(MAX_FORWARDS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_FORWARD_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Jobs whose caller gave up while they waited for a connection are
        // not sent at all: nobody would learn their outcome.
        let now = Instant::now();
        let (batch, expired): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| j.deadline > now);
        for job in expired {
            let _ = job.reply.send(Err(CallError::Connect {
                addr: job.addr,
                reason: "not sent: the deadline passed while it was queued".into(),
            }));
        }
        if batch.is_empty() {
            continue;
        }
        // Around a leader change the queue may name two leaders.
        let addr = batch[0].addr.clone();
        let (same, other): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| j.addr == addr);
        for job in other {
            // Rare: send those alone rather than delay the batch.
            let client = client.clone();
            tokio::spawn(send_batch(client, job.addr.clone(), vec![job], None));
        }
        tokio::spawn(send_batch(client.clone(), addr, same, Some(permit)));
    }
}

/// Sends one batch; the RPC lasts no longer than the latest deadline in it
/// (each caller stops waiting at its own).
async fn send_batch(
    client: Arc<ClusterClient>,
    addr: String,
    jobs: Vec<ForwardJob>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let latest = jobs.iter().map(|j| j.deadline).max();
    let rpc_timeout = latest.map_or(Duration::ZERO, |d| {
        d.saturating_duration_since(Instant::now())
    });
    metrics::counter!("session_raft_forwarded_writes_total").increment(jobs.len() as u64);
    metrics::histogram!("session_raft_forward_batch_size").record(jobs.len() as f64);
    let (commands, replies): (Vec<_>, Vec<_>) =
        jobs.into_iter().map(|j| (j.command, j.reply)).unzip();
    let count = commands.len();
    let answer = client
        .call(
            Pool::Replication,
            &addr,
            &Request::Write(commands),
            rpc_timeout,
        )
        .await;
    match answer {
        Ok(Response::Write(outcomes)) if outcomes.len() == count => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(Response::NotLeader { leader, .. }) => {
            for reply in replies {
                let _ = reply.send(Ok(WriteOutcome::NotLeader { leader }));
            }
        }
        Ok(Response::Unavailable(reason)) => {
            // The receiver refused before proposing anything.
            for reply in replies {
                let _ = reply.send(Err(CallError::Connect {
                    addr: addr.clone(),
                    reason: reason.clone(),
                }));
            }
        }
        Ok(other) => {
            let error = CallError::BadAnswer {
                addr: addr.clone(),
                reason: format!("unexpected answer to a write: {other:?}"),
            };
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
