//! The wire form of a full snapshot transfer, streamed on both sides.
//!
//! Body of a `POST` to [`crate::rpc::SNAPSHOT_PATH`]: `offer length (u32 LE)
//! | bincode SnapshotOffer (the leader's vote and the snapshot's meta) |
//! snapshot file bytes`. The sender reads the snapshot in chunks on a
//! blocking thread and hands them to hyper through a small channel, so a
//! transfer holds a few chunks in memory, not the snapshot. The receiver
//! writes the body to a spool file as it arrives (refusing it once it passes
//! `max_snapshot_bytes`), then checks header, checksum and contents from the
//! file before anything is installed.

use std::io::{self, Read as _};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::rpc::{self, EncodeError, SnapshotOffer};
use crate::storage::snapshot::{self, SnapshotData, SnapshotError};

/// Size of the chunks a snapshot is sent in.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the network.
const CHUNKS_AHEAD: usize = 2;

/// A snapshot transfer's request body, fed chunk by chunk.
pub(crate) struct SnapshotBody {
    /// Chunks from the reading thread; an error ends the body.
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    /// Bytes not yet handed to hyper (for `Content-Length`).
    remaining: u64,
}

impl Body for SnapshotBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.chunks.poll_recv(cx).map(|chunk| {
            chunk.map(|chunk| {
                chunk.map(|bytes| {
                    self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
                    Frame::data(bytes)
                })
            })
        })
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The body offering `data` with `offer`. Reading starts at once on a
/// blocking thread and stops when the body is dropped.
pub(crate) fn body(offer: &SnapshotOffer, data: SnapshotData) -> Result<SnapshotBody, EncodeError> {
    let head = rpc::encode(offer)?;
    // An offer is a vote and a membership: never near 4 GiB (and a receiver
    // refuses one over its limit anyway).
    let head_len = u32::try_from(head.len()).unwrap_or(u32::MAX);
    let mut prefix = head_len.to_le_bytes().to_vec();
    prefix.extend_from_slice(&head);
    let remaining = prefix.len() as u64 + data.len();
    let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        if sender.blocking_send(Ok(Bytes::from(prefix))).is_err() {
            return;
        }
        let mut reader = data.reader();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let sent = match reader.read(&mut chunk) {
                Ok(0) => return,
                Ok(read) => {
                    chunk.truncate(read);
                    sender.blocking_send(Ok(Bytes::from(chunk)))
                }
                Err(e) => sender.blocking_send(Err(e)),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Ok(SnapshotBody { chunks, remaining })
}

/// Why a snapshot transfer was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveError {
    /// The body passed the receiver's limit (`413`).
    #[error("snapshot body larger than {limit} bytes")]
    TooLarge {
        /// `max_snapshot_bytes` (plus the offer).
        limit: u64,
    },
    /// The offer in front of the snapshot is malformed (`400`).
    #[error("malformed snapshot offer: {0}")]
    Malformed(String),
    /// The body could not be read from the connection.
    #[error("could not read the snapshot body: {0}")]
    Body(String),
    /// The spool file could not be written.
    #[error("could not spool the snapshot: {0}")]
    Spool(#[from] io::Error),
    /// The snapshot is corrupt or does not match its offer.
    #[error("snapshot rejected: {0}")]
    Invalid(#[from] SnapshotError),
}

/// Reads a transfer from `body`: the offer (at most `max_offer_bytes`), then
/// the snapshot (at most `max_snapshot_bytes`) into a spool file in
/// `spool_dir`, which is then verified against the offer.
pub(crate) async fn receive(
    mut body: Incoming,
    max_offer_bytes: usize,
    max_snapshot_bytes: usize,
    spool_dir: &Path,
) -> Result<(SnapshotOffer, SnapshotData), ReceiveError> {
    let mut head = Vec::new();
    let mut offer: Option<SnapshotOffer> = None;
    let mut spool: Option<tokio::fs::File> = None;
    let mut spooled: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReceiveError::Body(e.to_string()))?;
        let Ok(mut chunk) = frame.into_data() else {
            continue;
        };
        while offer.is_none() && !chunk.is_empty() {
            let wanted = head_wanted(&head, max_offer_bytes)?;
            let take = chunk.len().min(wanted - head.len());
            head.extend_from_slice(&chunk.split_to(take));
            if head.len() < 4 || head.len() < head_wanted(&head, max_offer_bytes)? {
                continue;
            }
            offer = Some(
                rpc::decode::<SnapshotOffer>(&head[4..], max_offer_bytes)
                    .map_err(|e| ReceiveError::Malformed(e.to_string()))?,
            );
            let dir = spool_dir.to_path_buf();
            let file = tokio::task::spawn_blocking(move || snapshot::spool_file(&dir))
                .await
                .map_err(io::Error::other)??;
            spool = Some(tokio::fs::File::from_std(file));
        }
        spooled += chunk.len() as u64;
        if spooled > max_snapshot_bytes as u64 {
            return Err(ReceiveError::TooLarge {
                limit: max_snapshot_bytes as u64,
            });
        }
        if let Some(spool) = spool.as_mut() {
            spool.write_all(&chunk).await?;
        }
    }
    let (Some(offer), Some(mut spool)) = (offer, spool) else {
        return Err(ReceiveError::Malformed(format!(
            "body ended after {} bytes, inside the offer",
            head.len()
        )));
    };
    spool.flush().await?;
    let data = SnapshotData::from_file(spool.into_std().await)?;
    let (meta, checked) = (offer.meta.clone(), data.clone());
    tokio::task::spawn_blocking(move || snapshot::verify_data(&meta, &checked))
        .await
        .map_err(io::Error::other)??;
    Ok((offer, data))
}

/// How many bytes the offer and its length prefix take, once known.
fn head_wanted(head: &[u8], max_offer_bytes: usize) -> Result<usize, ReceiveError> {
    let Some(prefix) = head.get(..4) else {
        return Ok(4);
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > max_offer_bytes {
        return Err(ReceiveError::Malformed(format!(
            "offer of {len} bytes, over the {max_offer_bytes} byte limit"
        )));
    }
    Ok(4 + len)
}
