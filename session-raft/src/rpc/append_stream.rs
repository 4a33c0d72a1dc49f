//! The wire form of the replication stream: length-prefixed bincode frames
//! in both bodies of one long-lived `POST` to [`APPEND_STREAM_PATH`], and
//! the reader and body that carry them.
//!
//! The leader's request body is a sequence of [`AppendFrame`]s, the
//! follower's answer body one [`AppendAnswer`] per frame, in the same order.
//! A frame is `length (u32 LE) | bincode message`; a length beyond the
//! receiver's `max_rpc_bytes` (the body limit of a single call) is refused
//! before anything is buffered for it, and each message is decoded with the
//! same limited decoder as a whole body ([`crate::rpc::decode`]).
//!
//! Why one HTTP/1 exchange whose two bodies stream, rather than HTTP/2:
//! the follower must process appends in the order sent, so they must travel
//! on one ordered stream whatever the protocol, and HTTP/2's multiplexing
//! would buy nothing. HTTP/1 keeps the cluster port one protocol, the
//! secret, target, group and TLS checks of every other call apply
//! unchanged (they run on the `POST`'s headers), and no new dependency is
//! needed. hyper drives both directions of an HTTP/1 exchange at once (its
//! client reads the answer head while still sending the body).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::rpc::{self, DecodeError, EncodeError};
use crate::types::{AppendEntriesRequest, TypeConfig};

/// Path of the replication stream.
pub(crate) const APPEND_STREAM_PATH: &str = "/raft/append-stream";

/// Bytes of a frame's length prefix.
const PREFIX: usize = 4;

/// One append the leader sends on the stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppendFrame {
    /// The append (within `max_rpc_bytes`: split like any other).
    pub(crate) rpc: AppendEntriesRequest,
    /// Milliseconds since a quorum last acknowledged the sender as leader,
    /// as [`crate::rpc::Request::LeasedAppendEntries`] carries it.
    pub(crate) quorum_age_ms: u64,
}

/// The follower's answer to one [`AppendFrame`], in order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum AppendAnswer {
    /// What the follower's Raft answered: the last log id it now holds, or
    /// a conflict or a higher vote (after which the stream ends).
    Appended(openraft::raft::StreamAppendResult<TypeConfig>),
    /// The follower cannot serve (stopping); the stream ends.
    Unavailable(String),
    /// The follower refused a frame (malformed, too large); the stream ends
    /// and frames after it were not acted on.
    Refused(String),
}

/// Why the stream could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// A frame claims more than the limit.
    #[error("a stream frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The claimed length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// The body failed (connection lost, reset).
    #[error("the stream failed: {0}")]
    Body(String),
    /// A frame did not decode.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
}

/// `message` as one frame.
pub(crate) fn encode_frame<T: Serialize>(message: &T) -> Result<Bytes, EncodeError> {
    // Encoded in place behind a prefix filled in afterwards: one pass, no
    // second copy of the body (frames carry every replicated entry).
    let mut frame = Vec::with_capacity(512);
    frame.extend_from_slice(&[0; PREFIX]);
    rpc::encode_into(message, &mut frame)?;
    let body = frame.len() - PREFIX;
    let len = u32::try_from(body).map_err(|_| EncodeError(format!("a frame of {body} bytes")))?;
    frame[..PREFIX].copy_from_slice(&len.to_le_bytes());
    Ok(Bytes::from(frame))
}

/// The kind of the answer in `frame` (prefix included), for tests.
pub(crate) fn answer_kind(frame: &[u8], limit: usize) -> Result<&'static str, String> {
    let body = frame.get(PREFIX..).ok_or("no length prefix")?;
    match rpc::decode::<AppendAnswer>(body, limit).map_err(|e| e.to_string())? {
        AppendAnswer::Appended(Ok(_)) => Ok("appended"),
        AppendAnswer::Appended(Err(_)) => Ok("append-refused"),
        AppendAnswer::Unavailable(_) => Ok("unavailable"),
        AppendAnswer::Refused(_) => Ok("refused"),
    }
}

/// Reads frames from an arriving body, holding at most one frame (and the
/// chunk that completed it) in memory.
pub(crate) struct FrameReader {
    /// The body.
    body: Incoming,
    /// Bytes received and not yet returned as frames.
    buf: BytesMut,
    /// Largest frame accepted (and the decoder's limit).
    limit: usize,
}

impl FrameReader {
    /// Frames of `body`, each at most `limit` bytes.
    pub(crate) fn new(body: Incoming, limit: usize) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            limit,
        }
    }

    /// The next message, or `None` at a clean end of the body.
    ///
    /// Cancel safe: the only wait is for the body's next chunk, which is
    /// kept in `self` as soon as it arrives, so that a `select!` may drop
    /// this future between chunks without losing bytes.
    pub(crate) async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            if self.buf.len() >= PREFIX {
                let mut prefix = [0u8; PREFIX];
                prefix.copy_from_slice(&self.buf[..PREFIX]);
                let len = u32::from_le_bytes(prefix) as usize;
                if len > self.limit {
                    return Err(FrameError::TooLarge {
                        len,
                        limit: self.limit,
                    });
                }
                if self.buf.len() >= PREFIX + len {
                    self.buf.advance(PREFIX);
                    let frame = self.buf.split_to(len);
                    return Ok(Some(rpc::decode(&frame, self.limit)?));
                }
                // Room for the whole frame at once, rather than regrowing.
                self.buf.reserve(PREFIX + len - self.buf.len());
            }
            match self.body.frame().await {
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(FrameError::Truncated),
                Some(Err(e)) => return Err(FrameError::Body(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// A body fed frame by frame through a channel; it ends (cleanly) when the
/// sender is dropped. The channel's capacity is the backpressure: hyper
/// takes the next frame only once it has written the earlier ones out.
pub(crate) struct FrameBody {
    /// Frames to send.
    frames: mpsc::Receiver<Bytes>,
}

impl FrameBody {
    /// A body and the sender feeding it, holding up to `buffered` frames.
    pub(crate) fn channel(buffered: usize) -> (mpsc::Sender<Bytes>, FrameBody) {
        let (sender, frames) = mpsc::channel(buffered.max(1));
        (sender, FrameBody { frames })
    }
}

impl Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(Frame::data(bytes))))
    }
}
