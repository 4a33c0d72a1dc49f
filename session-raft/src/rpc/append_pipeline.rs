//! The leader's side of the replication stream (see
//! [`super::append_stream`]): openraft's `stream_append` as a pipeline,
//! with up to [`MAX_IN_FLIGHT`] appends sent and unanswered on one
//! long-lived connection instead of one request and answer at a time.
//!
//! openraft's contract: one answer per request of its input, in order;
//! the output ends after the first error (which openraft turns into a
//! backoff and a new `stream_append` call, so a broken stream reconnects).
//! Appends larger than the peer's body limit are split
//! ([`super::append_split`]) and their parts' answers folded back into
//! one, as the unary path does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{NetworkError, RPCError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{StreamAppendError, StreamAppendResult};
use tokio::sync::mpsc;

use crate::lease::ReadLease;
use crate::rpc::append_split;
use crate::rpc::append_stream::{encode_frame, AppendAnswer, AppendFrame, FrameBody, FrameReader};
use crate::rpc::call_error::CallError;
use crate::rpc::client::ClusterClient;
use crate::types::{AppendEntriesRequest, LogId, NodeId, TypeConfig};

/// Most frames sent and not yet answered. Bounds the memory a slow follower
/// makes the leader hold and the work lost when a stream breaks.
pub(crate) const MAX_IN_FLIGHT: usize = 16;
/// Most bytes sent and not yet answered (a frame is always let through
/// when nothing is in flight, whatever its size). Small appends, the
/// common case, pipeline up to [`MAX_IN_FLIGHT`]; large ones (big sessions
/// make frames of up to `max_rpc_bytes`) go about one at a time, as before
/// streaming: a follower busy decoding several of them answers none in
/// time, and all of that work is lost, and sent again, when the stream
/// breaks. 128 KiB per round trip is still far more than a LAN needs.
const MAX_BYTES_IN_FLIGHT: usize = 128 << 10;
/// Frames handed to hyper ahead of the socket (hyper takes the next only
/// once it has written the earlier ones out).
const FRAMES_BUFFERED: usize = 2;

/// The most frames any pipeline of this process has had unanswered at
/// once: for tests, which cannot see the stream otherwise.
static PEAK_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// See [`PEAK_IN_FLIGHT`].
pub(crate) fn peak_in_flight() -> usize {
    PEAK_IN_FLIGHT.load(Ordering::Relaxed)
}

/// One item of openraft's output stream.
type Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// Where a pipeline goes and what its frames carry.
pub(crate) struct Pipeline {
    /// This member (for timeout reports).
    pub(crate) node_id: NodeId,
    /// The follower.
    pub(crate) target: NodeId,
    /// Its cluster address.
    pub(crate) addr: String,
    /// Shared HTTP clients.
    pub(crate) client: Arc<ClusterClient>,
    /// This member's read lease (for the quorum age frames carry).
    pub(crate) lease: Arc<ReadLease>,
    /// The follower's body limit: appends are split to fit it.
    pub(crate) max_rpc_bytes: usize,
}

/// Opens a stream to the follower and returns openraft's output stream.
/// Fails (as `Unreachable` or `Timeout`) if the stream cannot be opened
/// within `option.soft_ttl()`.
pub(crate) fn stream_append<'s, S>(
    pipeline: Pipeline,
    input: S,
    option: RPCOption,
) -> BoxFuture<'s, Result<BoxStream<'s, Item>, RPCError<TypeConfig>>>
where
    S: Stream<Item = AppendEntriesRequest> + Send + Unpin + 'static,
{
    Box::pin(async move {
        let mut input = input;
        // The first request before the connection: openraft waits out its
        // backoff while producing a request, so a follower that is down is
        // retried at the backoff's pace, not in a tight connect loop.
        let Some(first) = input.next().await else {
            return Ok(Box::pin(futures::stream::empty()) as BoxStream<'s, Item>);
        };
        let ttl = option.soft_ttl();
        let (frames, body) = FrameBody::channel(FRAMES_BUFFERED);
        let answers = pipeline
            .client
            .open_append_stream(pipeline.target, &pipeline.addr, body, ttl)
            .await
            .map_err(|e| pipeline.rpc_error(e, ttl))?;
        let answers = FrameReader::new(answers, pipeline.client.max_answer_bytes());
        let (out, output) = mpsc::channel(MAX_IN_FLIGHT);
        let pump = tokio::spawn(pipeline.pump(first, input, frames, answers, out, ttl));
        // Dropping openraft's stream stops the pump, which ends the request
        // body and drops the connection.
        let guard = AbortOnDrop(pump);
        let output = futures::stream::unfold((output, guard), |(mut output, guard)| async move {
            output.recv().await.map(|item| (item, (output, guard)))
        });
        Ok(Box::pin(output) as BoxStream<'s, Item>)
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A frame sent and not yet answered: one part of one of openraft's
/// requests.
struct Part {
    /// Its size on the wire.
    bytes: usize,
    /// The last log id the part carries (its prev if it carries none).
    last: Option<LogId>,
    /// Whether it is the last part of its request.
    ends_request: bool,
}

/// Why the pump stopped early (openraft has been told).
struct Stopped;

impl Pipeline {
    /// A transport failure as openraft expects it.
    fn rpc_error(&self, error: CallError, ttl: Duration) -> RPCError<TypeConfig> {
        match error {
            CallError::Timeout { .. } => self.timeout(ttl),
            e => {
                tracing::debug!(target_node = self.target, error = %e, "append stream failed");
                RPCError::Unreachable(Unreachable::from_string(e))
            }
        }
    }

    /// Queues `request` to be sent, split to fit the follower's limit;
    /// each part says whether it ends the request.
    fn queue(
        &self,
        request: AppendEntriesRequest,
        outbox: &mut VecDeque<(AppendEntriesRequest, bool)>,
    ) {
        let parts = append_split::split(request, self.max_rpc_bytes);
        let count = parts.len();
        outbox.extend(
            parts
                .into_iter()
                .enumerate()
                .map(|(n, rpc)| (rpc, n + 1 == count)),
        );
    }

    fn timeout(&self, ttl: Duration) -> RPCError<TypeConfig> {
        RPCError::Timeout(Timeout {
            action: RPCTypes::AppendEntries,
            id: self.node_id,
            target: self.target,
            timeout: ttl,
        })
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> RPCError<TypeConfig> {
        tracing::debug!(target_node = self.target, reason = %why, "append stream broke");
        RPCError::Unreachable(Unreachable::from_string(format!(
            "append stream to node {}: {why}",
            self.target
        )))
    }

    /// Moves openraft's requests out as frames and the follower's answers
    /// back, with up to [`MAX_IN_FLIGHT`] frames unanswered. The follower
    /// must answer some frame within `ttl` of the oldest one unanswered
    /// being sent (or of its previous answer), or the stream fails with a
    /// timeout: a stream that stops making progress is given up.
    async fn pump<S>(
        self,
        first: AppendEntriesRequest,
        mut input: S,
        frames: mpsc::Sender<Bytes>,
        mut answers: FrameReader,
        out: mpsc::Sender<Item>,
        ttl: Duration,
    ) where
        S: Stream<Item = AppendEntriesRequest> + Send + Unpin + 'static,
    {
        let mut fold = Fold {
            unanswered: VecDeque::new(),
            unanswered_bytes: 0,
            matched: None,
            out: &out,
        };
        // Parts of openraft's requests not sent yet. Each is encoded only
        // once it may go (a permit from hyper and room in the byte budget),
        // so that a large request is not encoded in one go ahead of the
        // network, holding a runtime thread and its timer running.
        let mut outbox: VecDeque<(AppendEntriesRequest, bool)> = VecDeque::new();
        self.queue(first, &mut outbox);
        let mut input_done = false;
        let mut waiting_since = Instant::now();
        loop {
            if input_done && outbox.is_empty() && fold.unanswered.is_empty() {
                // Every answer is in: ending the body ends the exchange
                // cleanly, and the connection can serve the next stream.
                return;
            }
            let room = fold.unanswered.is_empty()
                || (fold.unanswered.len() < MAX_IN_FLIGHT
                    && fold.unanswered_bytes < MAX_BYTES_IN_FLIGHT);
            let deadline = waiting_since + ttl;
            tokio::select! {
                biased;
                answer = answers.next::<AppendAnswer>(), if !fold.unanswered.is_empty() => {
                    waiting_since = Instant::now();
                    let answer = match answer {
                        Ok(Some(answer)) => answer,
                        Ok(None) => AppendAnswer::Unavailable("the follower closed the stream".into()),
                        Err(e) => AppendAnswer::Unavailable(e.to_string()),
                    };
                    if fold.answer(answer, &self).await.is_err() {
                        return;
                    }
                }
                permit = frames.reserve(), if room && !outbox.is_empty() => {
                    let (Ok(permit), Some((rpc, ends_request))) = (permit, outbox.pop_front()) else {
                        let _ = fold.fail(self.unreachable("the connection closed")).await;
                        return;
                    };
                    let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
                    let frame = AppendFrame { rpc, quorum_age_ms: self.lease.quorum_age_ms() };
                    let frame = match encode_frame(&frame) {
                        Ok(frame) => frame,
                        Err(e) => {
                            let _ = fold.fail(RPCError::Network(NetworkError::from_string(e))).await;
                            return;
                        }
                    };
                    if fold.unanswered.is_empty() {
                        waiting_since = Instant::now();
                    }
                    let bytes = frame.len();
                    permit.send(frame);
                    fold.unanswered_bytes += bytes;
                    fold.unanswered.push_back(Part { bytes, last, ends_request });
                    PEAK_IN_FLIGHT.fetch_max(fold.unanswered.len(), Ordering::Relaxed);
                }
                request = input.next(), if room && !input_done && outbox.is_empty() => {
                    let Some(request) = request else {
                        input_done = true;
                        continue;
                    };
                    self.queue(request, &mut outbox);
                }
                _ = tokio::time::sleep_until(deadline.into()), if !fold.unanswered.is_empty() => {
                    tracing::debug!(
                        target_node = self.target,
                        unanswered = fold.unanswered.len(),
                        bytes = fold.unanswered_bytes,
                        outbox = outbox.len(),
                        "append stream timed out"
                    );
                    let _ = fold.fail(self.timeout(ttl)).await;
                    return;
                }
                _ = out.closed() => return,
            }
        }
    }
}

/// Folds the answers of frames into openraft's answers to its requests.
struct Fold<'a> {
    /// Frames sent and not yet answered, in order.
    unanswered: VecDeque<Part>,
    /// Their bytes.
    unanswered_bytes: usize,
    /// How far the follower got in the request being answered (a split
    /// one), once one of its parts succeeded.
    matched: Option<Option<LogId>>,
    /// openraft's output stream.
    out: &'a mpsc::Sender<Item>,
}

impl Fold<'_> {
    async fn emit(&self, item: Item) -> Result<(), Stopped> {
        self.out.send(item).await.map_err(|_| Stopped)
    }

    /// Ends the stream with `error`, after reporting what arrived of the
    /// request being answered so that openraft does not send it again.
    async fn fail(&mut self, error: RPCError<TypeConfig>) -> Result<(), Stopped> {
        if let Some(matched) = self.matched.take() {
            self.emit(Ok(Ok(matched))).await?;
        }
        self.emit(Err(error)).await?;
        Err(Stopped)
    }

    /// Handles the answer to the oldest unanswered frame; `Err` once the
    /// stream is over.
    async fn answer(&mut self, answer: AppendAnswer, pipeline: &Pipeline) -> Result<(), Stopped> {
        let Some(part) = self.unanswered.pop_front() else {
            return self
                .fail(pipeline.unreachable("an answer to no frame"))
                .await;
        };
        self.unanswered_bytes -= part.bytes;
        match answer {
            AppendAnswer::Appended(Ok(matched)) => {
                if !part.ends_request {
                    self.matched = Some(matched);
                    return Ok(());
                }
                self.matched = None;
                self.emit(Ok(Ok(matched))).await?;
                // The follower took less than was sent (openraft's own rule
                // for a partial success): stop, openraft resends the rest.
                if matched < part.last {
                    return Err(Stopped);
                }
                Ok(())
            }
            AppendAnswer::Appended(Err(refusal)) => {
                let earlier = self.matched.take();
                match (refusal, earlier) {
                    // Nothing of the request arrived: openraft's answer.
                    (refusal, None) | (refusal @ StreamAppendError::HigherVote(_), Some(_)) => {
                        self.emit(Ok(Err(refusal))).await?;
                    }
                    // The follower just matched this part's start, so a
                    // conflict means its log changed under us: let openraft
                    // probe again rather than report a match below one it has.
                    (StreamAppendError::Conflict(_), Some(_)) => {
                        self.emit(Err(RPCError::Network(NetworkError::from_string(
                            "follower's log changed during a split append",
                        ))))
                        .await?;
                    }
                }
                Err(Stopped)
            }
            AppendAnswer::Unavailable(reason) | AppendAnswer::Refused(reason) => {
                self.fail(pipeline.unreachable(reason)).await
            }
        }
    }
}
