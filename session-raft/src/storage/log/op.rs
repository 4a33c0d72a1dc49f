//! What callers queue for the [writer](super::writer): one operation per
//! record (or a barrier), with where its frame goes, who hears when it is
//! durable, and what it gives back once written.

use std::io;

use bytes::Bytes;
use openraft::storage::IOFlushed;

use crate::types::TypeConfig;

/// Who hears that an operation is durable.
pub(super) enum Done {
    /// openraft's callback for an append.
    Flushed(IOFlushed<TypeConfig>),
    /// A caller awaiting the fsync (`save_vote`, `truncate_after`).
    Waiter(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl Done {
    pub(super) fn complete(self, result: Result<(), &(io::ErrorKind, String)>) {
        let result = result.map_err(|(kind, message)| io::Error::new(*kind, message.clone()));
        match self {
            Done::Flushed(callback) => callback.io_completed(result),
            Done::Waiter(waiter) => {
                // The waiter may have given up (its future was dropped).
                let _ = waiter.send(result);
            }
        }
    }
}

/// What an operation does to the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Append its frame to segment `segment`, where it starts at `offset`.
    Append { segment: u32, offset: u64 },
    /// Start segment `0` with its frame (the segment's state record).
    NewSegment(u32),
    /// No frame: complete once everything queued before it is durable.
    Barrier,
}

/// One queued operation.
pub(super) struct Op {
    /// Queue position (for the cache: entries up to the written position
    /// can be read back from the files).
    pub(super) seq: u64,
    pub(super) target: Target,
    /// The frame's body (empty for a barrier).
    pub(super) body: Bytes,
    /// Needs no fsync of its own.
    pub(super) lazy: bool,
    pub(super) done: Option<Done>,
    /// Queue budget to give back once written.
    pub(super) permits: u32,
    /// Encoded entry bytes it carries (for the metric).
    pub(super) entry_bytes: u64,
    /// Segments whose files go once it is durable.
    pub(super) delete: Vec<u32>,
}
