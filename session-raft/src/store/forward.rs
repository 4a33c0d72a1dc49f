//! Forwarding a follower's writes to the leader: a per-node queue drained
//! by one background task that packs whatever is queued into one `Write`
//! RPC, so that batches grow with load and a lone write is not delayed.
//!
//! Batch size is set by how many RPCs may be in flight: a write arriving
//! while a batch is out waits for it to come back, and goes with everything
//! else that queued meanwhile, so a batch holds about the writes that arrive
//! in one round trip (with eight in flight, as before, most went alone; with
//! two, every other batch held the one write that came first). Except that
//! once [`MIN_PIPELINED_BATCH`] writes have queued behind the batch that is
//! out, they go at once as a second one ([`PIPELINED_IN_FLIGHT`]): under
//! load a write then waits for at most a part of a round trip before it is
//! sent, not a whole one, and every batch that overlaps another is still a
//! big one. A batch out for much longer than usual ([`stale_after`]: a
//! stalled connection, a slow leader) stops counting, so that it cannot
//! hold the writes behind it; at most [`MAX_FORWARDS_IN_FLIGHT`] are out at
//! all.
//!
//! Each batch stays one `POST` (on the pool's keep-alive connections) rather
//! than a frame of a long-lived stream like replication's: whether a write
//! may be sent again depends on what became of the exchange that carried it
//! (see [`CallError::not_delivered`]), which a proxy or sidecar on the path
//! reports per request; a stream through a buffering proxy would deliver
//! nothing.
//!
//! Each job carries its caller's deadline: a job still queued then is not
//! sent (nobody would learn its outcome), and the RPC carrying a batch ends
//! by the latest deadline in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Notify};

use super::batch_sizes::RecentSizes;
use crate::command::Command;
use crate::rpc::call_error::CallError;
use crate::rpc::client::{ClusterClient, Pool};
use crate::rpc::{Request, Response, WriteOutcome};

/// Most commands one forwarded `Write` RPC carries.
const MAX_FORWARD_BATCH: usize = 256;
/// Forwarded `Write` RPCs in flight at once while they come back in usual
/// time: what makes batches grow with load.
const FORWARDS_IN_FLIGHT: usize = 1;
/// Writes queued behind the batches in flight that may go as one more
/// batch without waiting for those to come back ...
const MIN_PIPELINED_BATCH: usize = 16;
/// ... as long as fewer than this many are in flight in usual time.
const PIPELINED_IN_FLIGHT: usize = 2;
/// Most forwarded `Write` RPCs in flight at once, counting those out for
/// much longer than usual.
const MAX_FORWARDS_IN_FLIGHT: usize = 8;
/// Shortest time after which a batch stops holding later ones back.
const MIN_STALE_AFTER: Duration = Duration::from_millis(20);
/// The round trip assumed before one was measured.
const FIRST_ROUND_TRIP: Duration = Duration::from_millis(5);

/// Sizes of the latest batches, for tests (see
/// `session_raft::internals::forward_batch_sizes`).
static RECENT_BATCHES: RecentSizes = RecentSizes::new();
/// Sizes of the latest batches sent while another was in flight in usual
/// time (for tests: `session_raft::internals::forward_overlapping_batch_sizes`).
static RECENT_OVERLAPPING: RecentSizes = RecentSizes::new();

/// The sizes of the latest forwarded batches of this process, oldest
/// first.
pub(crate) fn recent_batch_sizes() -> Vec<usize> {
    RECENT_BATCHES.all()
}

/// The sizes of the latest forwarded batches of this process that went
/// while another was in flight in usual time, oldest first.
pub(crate) fn recent_overlapping_sizes() -> Vec<usize> {
    RECENT_OVERLAPPING.all()
}

/// One write waiting to be forwarded.
struct ForwardJob {
    /// The command (shared with the caller, who may retry it elsewhere).
    command: Arc<Command>,
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
        command: Arc<Command>,
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

/// The batches in flight, for [`run_forwarder`] to decide when the next
/// may go.
#[derive(Default)]
struct InFlight {
    /// When each batch in flight was sent, by batch number.
    sent: Mutex<Vec<(u64, Instant)>>,
    /// Smoothed round trip of the batches that came back.
    round_trip: Mutex<Option<Duration>>,
    /// Told whenever a batch comes back.
    returned: Notify,
}

/// How long a batch may be out before it stops holding later ones back:
/// several usual round trips, and never less than [`MIN_STALE_AFTER`].
fn stale_after(round_trip: Option<Duration>) -> Duration {
    (round_trip.unwrap_or(FIRST_ROUND_TRIP) * 4).max(MIN_STALE_AFTER)
}

impl InFlight {
    /// `None` if a batch of `queued` writes may go now, or else when to
    /// look again (unless a batch comes back or more writes queue first).
    fn next_slot(&self, queued: usize) -> Option<Instant> {
        let sent = self.sent.lock();
        if sent.len() >= MAX_FORWARDS_IN_FLIGHT {
            return Some(Instant::now() + Duration::from_secs(3600));
        }
        let mut fresh = self.fresh(&sent);
        let allowed = if queued >= MIN_PIPELINED_BATCH {
            PIPELINED_IN_FLIGHT
        } else {
            FORWARDS_IN_FLIGHT
        };
        if fresh.len() < allowed {
            return None;
        }
        fresh.sort();
        // The soonest a fresh batch turns stale frees a slot.
        fresh.first().copied()
    }

    /// Until when each batch of `sent` that is in flight in usual time
    /// counts as such.
    fn fresh(&self, sent: &[(u64, Instant)]) -> Vec<Instant> {
        let stale = stale_after(*self.round_trip.lock());
        let now = Instant::now();
        sent.iter()
            .map(|(_, at)| *at + stale)
            .filter(|until| *until > now)
            .collect()
    }

    /// Whether a batch is in flight in usual time.
    fn any_fresh(&self) -> bool {
        !self.fresh(&self.sent.lock()).is_empty()
    }

    fn start(&self, batch: u64) {
        self.sent.lock().push((batch, Instant::now()));
    }

    fn finish(&self, batch: u64) {
        let mut sent = self.sent.lock();
        if let Some(at) = sent.iter().position(|(n, _)| *n == batch) {
            let (_, started) = sent.swap_remove(at);
            let took = started.elapsed();
            let mut round_trip = self.round_trip.lock();
            *round_trip = Some(match *round_trip {
                Some(average) => (average * 7 + took) / 8,
                None => took,
            });
        }
        drop(sent);
        self.returned.notify_one();
    }
}

/// Packs queued jobs into `Write` RPCs: whatever queued up while earlier RPCs
/// were in flight goes out together, so batches grow with load and a lone
/// write is not delayed.
async fn run_forwarder(mut rx: mpsc::Receiver<ForwardJob>, client: Arc<ClusterClient>) {
    let in_flight = Arc::new(InFlight::default());
    let mut next_batch = 0u64;
    while let Some(first) = rx.recv().await {
        // Wait for a slot, taking in what queues meanwhile: that is the
        // batch (and enough of it is a slot of its own, see `next_slot`).
        let mut batch = vec![first];
        let mut closed = false;
        while let Some(look_again) = in_flight.next_slot(batch.len()) {
            let returned = in_flight.returned.notified();
            tokio::select! {
                _ = returned => {}
                _ = tokio::time::sleep_until(look_again.into()) => {}
                job = rx.recv(), if !closed && batch.len() < MAX_FORWARD_BATCH => match job {
                    Some(job) => batch.push(job),
                    // Every sender is gone: send what is here as usual,
                    // then the outer loop ends.
                    None => closed = true,
                },
            }
        }
        // One turn of the scheduler before packing: the callers a returning
        // batch just answered are runnable and about to queue their next
        // writes, and would otherwise follow this one a round trip later.
        // A lone write loses only that turn (microseconds), never a timer.
        tokio::task::yield_now().await;
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
            tokio::spawn(send_batch(client, job.addr.clone(), vec![job]));
        }
        if in_flight.any_fresh() {
            RECENT_OVERLAPPING.record(same.len());
        }
        let number = next_batch;
        next_batch += 1;
        in_flight.start(number);
        let (client, in_flight) = (client.clone(), in_flight.clone());
        tokio::spawn(async move {
            send_batch(client, addr, same).await;
            in_flight.finish(number);
        });
    }
}

/// Sends one batch; the RPC lasts no longer than the latest deadline in it
/// (each caller stops waiting at its own).
async fn send_batch(client: Arc<ClusterClient>, addr: String, jobs: Vec<ForwardJob>) {
    let latest = jobs.iter().map(|j| j.deadline).max();
    let rpc_timeout = latest.map_or(Duration::ZERO, |d| {
        d.saturating_duration_since(Instant::now())
    });
    metrics::counter!("session_raft_forwarded_writes_total").increment(jobs.len() as u64);
    metrics::histogram!("session_raft_forward_batch_size").record(jobs.len() as f64);
    RECENT_BATCHES.record(jobs.len());
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
