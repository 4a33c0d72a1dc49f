//! The follower's side of the replication stream (see
//! [`super::append_stream`]): feeds the leader's frames, in order, to
//! openraft's pipelined `Raft::stream_append`, renews the read lease from
//! each accepted append, and streams the answers back in the same order.
//!
//! The server has already checked the secret, the target member and the
//! group on the stream's `POST`.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use hyper::body::Incoming;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::replica::Replica;
use crate::rpc::append_stream::{
    encode_frame, AppendAnswer, AppendFrame, FrameBody, FrameError, FrameReader,
};
use crate::stop::stopped;
use crate::types::AppendEntriesResponse;

/// Answers buffered ahead of the network.
const ANSWERS_BUFFERED: usize = 16;

/// Told of every frame refused (for a rate-limited log line).
pub(crate) type OnRefused = Box<dyn Fn(&FrameError) + Send + Sync>;

/// The answer body of a stream whose frames arrive in `body`; the work
/// runs in a task of its own, which ends with the stream or when the
/// server stops (`stop`).
pub(crate) fn serve(
    replica: Arc<Replica>,
    body: Incoming,
    limit: usize,
    stop: watch::Receiver<bool>,
    on_refused: OnRefused,
) -> FrameBody {
    let (answers, answer_body) = FrameBody::channel(ANSWERS_BUFFERED);
    tokio::spawn(run(
        replica,
        FrameReader::new(body, limit),
        answers,
        stop,
        on_refused,
    ));
    answer_body
}

/// What the frames carried besides the append: its quorum age, and when it
/// arrived.
type Ages = Arc<Mutex<VecDeque<(u64, Instant)>>>;

async fn run(
    replica: Arc<Replica>,
    reader: FrameReader,
    answers: mpsc::Sender<Bytes>,
    mut stop: watch::Receiver<bool>,
    on_refused: OnRefused,
) {
    let ages: Ages = Arc::default();
    // Why the input ended early, if it did.
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let input = futures::stream::unfold(
        (reader, ages.clone(), refused.clone(), on_refused),
        |(mut reader, ages, refused, on_refused)| async move {
            match reader.next::<AppendFrame>().await {
                Ok(Some(frame)) => {
                    ages.lock().push_back((frame.quorum_age_ms, Instant::now()));
                    Some((frame.rpc, (reader, ages, refused, on_refused)))
                }
                Ok(None) => None,
                // A lost connection needs no answer: nobody reads it.
                Err(FrameError::Body(_)) => None,
                Err(e) => {
                    on_refused(&e);
                    *refused.lock() = Some(e.to_string());
                    None
                }
            }
        },
    );
    // openraft submits each append to the Raft core as it arrives, without
    // waiting for the earlier ones to be flushed, and yields the answers in
    // order; it ends after the first error (conflict, higher vote, stopped).
    let mut output = pin!(replica.raft.stream_append(input));
    loop {
        let item = tokio::select! {
            item = output.next() => item,
            _ = stopped(&mut stop) => {
                // Ends the exchange so that the server's graceful shutdown
                // is not held up by a stream that would never finish.
                let _ = send(&answers, &AppendAnswer::Unavailable("stopping".into())).await;
                return;
            }
        };
        let Some(item) = item else { break };
        let (answer, go_on) = match item {
            Ok(result) => {
                if let Some((quorum_age_ms, arrived)) = ages.lock().pop_front() {
                    // Counted from the frame's arrival, not from now: time
                    // it spent queued behind earlier appends must not stretch
                    // the lease.
                    let queued = u64::try_from(arrived.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let response = AppendEntriesResponse::from(result.clone());
                    replica
                        .lease
                        .renew(&response, quorum_age_ms.saturating_add(queued));
                }
                let go_on = result.is_ok();
                (AppendAnswer::Appended(result), go_on)
            }
            Err(fatal) => (
                AppendAnswer::Unavailable(format!("raft stopped: {fatal}")),
                false,
            ),
        };
        if !send(&answers, &answer).await || !go_on {
            return;
        }
    }
    let reason = refused.lock().take();
    if let Some(reason) = reason {
        let _ = send(&answers, &AppendAnswer::Refused(reason)).await;
    }
}

/// Sends one answer; false once the leader is gone.
async fn send(answers: &mpsc::Sender<Bytes>, answer: &AppendAnswer) -> bool {
    match encode_frame(answer) {
        Ok(frame) => answers.send(frame).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "could not encode a stream answer");
            false
        }
    }
}
