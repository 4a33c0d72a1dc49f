//! The read lease: whether this member may answer reads from its own state.
//!
//! A member cut off from the cluster still holds the last state it applied.
//! Without a bound it would keep serving it (a logged-out session, a user
//! whose rights were revoked) for as long as the cut lasts. So in
//! [`crate::ReadMode::Session`] a member serves local reads only while its
//! lease runs:
//!
//! - a **leader** holds it while a quorum has acknowledged it within the
//!   lease (openraft's `last_quorum_acked`);
//! - a **follower** renews it on every append entries (heartbeats included)
//!   it accepts. The leader puts into each one how long ago a quorum last
//!   acknowledged it, and the follower's lease ends that much earlier, so a
//!   follower of a leader that has itself lost the majority (a minority of
//!   two in a cluster of five) does not outlive the leader's own lease.
//!
//! Why that bounds staleness: a new leader can only be elected once a
//! majority stopped acknowledging the old one, so a change it commits at
//! time `T` comes after the old leader's last quorum acknowledgement, and
//! every lease derived from that acknowledgement ends before `T + lease`
//! (plus the one-way network delay of the last heartbeat). Past that, the
//! member forwards the read to the leader, or answers `Unavailable`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;

use crate::storage::Raft;
use crate::types::AppendEntriesResponse;

/// A quorum age that renews nothing: the leader has no quorum ack yet.
pub(crate) const NO_QUORUM: u64 = u64::MAX;

/// This member's read lease; shared by the store, the RPC dispatch and the
/// network (which stamps the quorum age into outgoing appends).
#[derive(Debug)]
pub(crate) struct ReadLease {
    /// How long contact with a quorum-backed leader lets this member serve.
    lease: Duration,
    /// Origin of [`ReadLease::follower_until_ms`].
    base: Instant,
    /// Milliseconds after `base` until which this member may serve locally:
    /// renewed by a follower on every accepted append, and by a leader each
    /// time it finds its quorum fresh (on every append it sends), so that
    /// the per-read check is one atomic load.
    valid_until_ms: AtomicU64,
    /// The Raft instance, set once it exists (the network is built first).
    raft: OnceLock<Raft>,
}

impl ReadLease {
    pub(crate) fn new(lease: Duration) -> Self {
        Self {
            lease,
            base: Instant::now(),
            valid_until_ms: AtomicU64::new(0),
            raft: OnceLock::new(),
        }
    }

    /// Connects the lease to the Raft instance once it is built.
    pub(crate) fn attach(&self, raft: Raft) {
        let _ = self.raft.set(raft);
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Leader side: milliseconds since a quorum last acknowledged this
    /// member as leader ([`NO_QUORUM`] if never, or not leader). Extends
    /// this member's own lease by what is left of it.
    pub(crate) fn quorum_age_ms(&self) -> u64 {
        let age = self.read_quorum_age_ms();
        self.extend(age);
        age
    }

    fn read_quorum_age_ms(&self) -> u64 {
        let Some(raft) = self.raft.get() else {
            return NO_QUORUM;
        };
        let metrics = raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.state != openraft::ServerState::Leader {
            return NO_QUORUM;
        }
        let mut voters = metrics.membership_config.membership().voter_ids();
        if voters.next() == Some(metrics.id) && voters.next().is_none() {
            // A leader that is its own quorum (the only voter).
            return 0;
        }
        match &metrics.last_quorum_acked {
            Some(at) => u64::try_from(at.elapsed().as_millis()).unwrap_or(NO_QUORUM),
            None => NO_QUORUM,
        }
    }

    /// Follower side: an append entries from the current leader, whose quorum
    /// acknowledged it `quorum_age_ms` before it sent it, was answered with
    /// `response`.
    pub(crate) fn renew(&self, response: &AppendEntriesResponse, quorum_age_ms: u64) {
        // A higher vote means the sender is not (or no longer) our leader.
        if matches!(response, AppendEntriesResponse::HigherVote(_)) {
            return;
        }
        self.extend(quorum_age_ms);
    }

    /// Lets this member serve until the lease, less `quorum_age_ms` already
    /// spent, runs out from now.
    fn extend(&self, quorum_age_ms: u64) {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let Some(left) = lease_ms.checked_sub(quorum_age_ms) else {
            return;
        };
        let until = self.elapsed_ms().saturating_add(left);
        self.valid_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether this member may serve a read from its own state now.
    pub(crate) fn allows_local_reads(&self) -> bool {
        if self.elapsed_ms() < self.valid_until_ms.load(Ordering::Relaxed) {
            return true;
        }
        // A leader that sends no appends (the only voter) or whose lease
        // just ran out: ask openraft, which also renews the fast path.
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        self.quorum_age_ms() < lease_ms
    }
}
