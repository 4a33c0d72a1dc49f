//! The store's per-call metric handles, registered once when the member
//! starts rather than looked up in the recorder on every read and write
//! (a lookup hashes the name and takes a lock; a handle is an atomic add).
//!
//! Handles bind to the recorder installed when they are made: an
//! application installs its recorder before starting the node, as the demo
//! does.

use metrics::{Counter, Histogram};

/// Counters and histograms of the read and write paths.
pub(crate) struct StoreMetrics {
    /// Every load through the store.
    pub(crate) reads: Counter,
    /// Loads this member could not serve within its read lease.
    pub(crate) reads_without_lease: Counter,
    /// Loads sent to the leader because this member was behind the token.
    pub(crate) reads_forwarded: Counter,
    /// Tokens of another history, asked for nothing.
    pub(crate) foreign_tokens: Counter,
    /// Every write proposed through this member.
    pub(crate) writes: Counter,
    /// Writes that did not commit (or whose outcome is unknown).
    pub(crate) write_failures: Counter,
    /// Time from proposing a write to its commit and apply.
    pub(crate) commit_seconds: Histogram,
}

impl StoreMetrics {
    /// Registers the handles with the current recorder.
    pub(crate) fn register() -> Self {
        Self {
            reads: metrics::counter!("session_raft_reads_total"),
            reads_without_lease: metrics::counter!("session_raft_reads_without_lease_total"),
            reads_forwarded: metrics::counter!("session_raft_reads_forwarded_total"),
            foreign_tokens: metrics::counter!("session_raft_foreign_tokens_total"),
            writes: metrics::counter!("session_raft_writes_total"),
            write_failures: metrics::counter!("session_raft_write_failures_total"),
            commit_seconds: metrics::histogram!("session_raft_commit_seconds"),
        }
    }
}
