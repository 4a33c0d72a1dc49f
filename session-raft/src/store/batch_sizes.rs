//! The sizes of the latest write batches (forwarded by a follower, proposed
//! by the leader), kept in the process so tests can check that batches grow
//! with load (`session_raft::internals`); operators see the same sizes as
//! histograms in `/metrics`.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Batches kept.
const KEPT: usize = 4096;

/// A ring of the latest [`KEPT`] batch sizes.
pub(crate) struct RecentSizes(Mutex<VecDeque<usize>>);

impl RecentSizes {
    /// An empty ring (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Self(parking_lot::const_mutex(VecDeque::new()))
    }

    /// Notes one batch of `size`.
    pub(crate) fn record(&self, size: usize) {
        let mut recent = self.0.lock();
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(size);
    }

    /// The sizes kept, oldest first.
    pub(crate) fn all(&self) -> Vec<usize> {
        self.0.lock().iter().copied().collect()
    }
}
