//! What the durable log knows in memory about what is on disk: the vote, the
//! committed and purged log ids, the last log id, and where each entry's
//! record is. Replay at open and the live write path change it through the
//! same methods, so that a reopened log means what the running one meant.
//!
//! Per entry only its location is kept (16 bytes); the entries themselves
//! are on disk or in the bounded cache of the tail (see [`super::durable`]).

use std::collections::VecDeque;
use std::io;

use openraft::LogIdOptionExt as _;

use super::frame::{SegmentState, FORMAT};
use crate::types::{LogId, Vote};

/// Where an entry's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    /// Segment number.
    pub(super) segment: u32,
    /// Body length.
    pub(super) len: u32,
    /// Offset of the frame's header in the segment.
    pub(super) offset: u64,
}

/// The log's state, without the entries.
#[derive(Debug, Default)]
pub(super) struct LogIndex {
    pub(super) vote: Option<Vote>,
    pub(super) committed: Option<LogId>,
    pub(super) purged: Option<LogId>,
    /// Log id of the last entry appended, or the purge point if it is later.
    last: Option<LogId>,
    /// Index of `slots[0]`.
    first: u64,
    slots: VecDeque<Loc>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl LogIndex {
    /// Log id of the last entry, or the purge point if no entry is left.
    pub(super) fn last(&self) -> Option<LogId> {
        self.last
    }

    /// Index of the first entry present (meaningful if there is one).
    pub(super) fn first_index(&self) -> u64 {
        self.first
    }

    /// Index the next appended entry must have (any, if the log is empty
    /// and nothing was ever purged).
    pub(super) fn next_index(&self) -> u64 {
        if self.slots.is_empty() {
            self.last.next_index()
        } else {
            self.first + self.slots.len() as u64
        }
    }

    /// Refuses an append at `index` that would leave a hole or rewrite the
    /// purged part of the log. An append at or before the last entry
    /// replaces it and everything after (Raft's rule for a conflict).
    pub(super) fn check_append(&self, index: u64) -> io::Result<()> {
        let next = self.next_index();
        if self.slots.is_empty() && self.last.is_none() {
            // A log that never had an entry may start anywhere (openraft's
            // conformance suite starts some at index 2).
        } else if self.slots.is_empty() && index != next {
            // After a purge (or a truncation) of every entry the log goes on
            // right after the purge point.
            return Err(invalid(format!(
                "raft log: append at index {index}, but the log ends at {}",
                next.saturating_sub(1)
            )));
        } else if index > next {
            return Err(invalid(format!(
                "raft log: append at index {index} would leave a gap after {}",
                next - 1
            )));
        } else if index < self.first {
            return Err(invalid(format!(
                "raft log: append at index {index} rewrites the purged log (first entry {})",
                self.first
            )));
        }
        Ok(())
    }

    /// Records an entry (after [`LogIndex::check_append`]).
    pub(super) fn append(&mut self, log_id: LogId, loc: Loc) {
        let index = log_id.index;
        if self.slots.is_empty() {
            self.first = index;
        } else if index < self.next_index() {
            self.slots.truncate((index - self.first) as usize);
        }
        self.slots.push_back(loc);
        self.last = Some(log_id);
    }

    /// Whether [`LogIndex::truncate_after`] with `keep` would remove anything.
    pub(super) fn truncates(&self, keep: Option<LogId>) -> bool {
        !self.slots.is_empty() && keep.next_index() < self.next_index()
    }

    /// Removes the entries after `keep` (all if `None`).
    pub(super) fn truncate_after(&mut self, keep: Option<LogId>) {
        if !self.truncates(keep) {
            return;
        }
        let kept = keep.next_index().saturating_sub(self.first) as usize;
        self.slots.truncate(kept);
        self.last = if self.slots.is_empty() {
            // Whichever is later: the purge point or the kept log id.
            match (self.purged, keep) {
                (Some(purged), Some(keep)) if keep.index > purged.index => Some(keep),
                (purged, keep) => purged.or(keep),
            }
        } else {
            keep
        };
    }

    /// Whether [`LogIndex::purge`] with `upto` would change anything.
    pub(super) fn purges(&self, upto: &LogId) -> bool {
        self.purged.is_none_or(|purged| purged.index < upto.index)
    }

    /// Removes the entries up to and including `upto` and records it as the
    /// purge point.
    pub(super) fn purge(&mut self, upto: LogId) {
        if !self.purges(&upto) {
            return;
        }
        if !self.slots.is_empty() && upto.index >= self.first {
            let gone = (upto.index - self.first + 1).min(self.slots.len() as u64);
            self.slots.drain(..gone as usize);
            self.first += gone;
        }
        if self.slots.is_empty() {
            self.first = upto.index + 1;
        }
        if self.last.is_none_or(|last| last.index < upto.index) {
            self.last = Some(upto);
        }
        self.purged = Some(upto);
    }

    /// Location of the entry at `index`.
    pub(super) fn get(&self, index: u64) -> Option<Loc> {
        let at = index.checked_sub(self.first)?;
        self.slots.get(usize::try_from(at).ok()?).copied()
    }

    /// The present indexes within `start..end` (`end` `None`: to the last).
    pub(super) fn clip(&self, start: u64, end: Option<u64>) -> std::ops::Range<u64> {
        let next = self.first + self.slots.len() as u64;
        let start = start.max(self.first);
        let end = end.map_or(next, |end| end.min(next));
        start..end.max(start)
    }

    /// Everything but the entries, as a segment's first record holds it.
    pub(super) fn state(&self) -> SegmentState {
        SegmentState {
            format: FORMAT,
            vote: self.vote,
            committed: self.committed,
            purged: self.purged,
            last: self.last,
        }
    }

    /// Starts replay from the first segment left on disk: the entries before
    /// its state's last log id were in segments deleted after a purge.
    pub(super) fn adopt(&mut self, state: &SegmentState) {
        self.vote = state.vote;
        self.committed = state.committed;
        self.purged = state.purged;
        self.last = state.last;
        self.first = state.last.next_index();
        self.slots.clear();
    }

    /// Entries that should be there but are not: the log ends after the
    /// purge point, yet no record of the entries in between was found (a
    /// segment file removed by hand). `None` if there is no such gap.
    pub(super) fn missing(&self) -> Option<std::ops::Range<u64>> {
        let after_purge = self.purged.next_index();
        let first_present = if self.slots.is_empty() {
            self.last.next_index()
        } else {
            self.first
        };
        (first_present > after_purge).then_some(after_purge..first_present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TypeConfig;

    fn id(index: u64) -> LogId {
        openraft::testing::log_id::<TypeConfig>(1, 1, index)
    }

    fn loc(offset: u64) -> Loc {
        Loc {
            segment: 1,
            len: 1,
            offset,
        }
    }

    #[test]
    fn appends_truncations_and_purges_keep_the_slots_in_step() {
        let mut index = LogIndex::default();
        for i in 0..10 {
            index.check_append(i).unwrap();
            index.append(id(i), loc(i));
        }
        assert!(index.check_append(11).is_err(), "a gap");
        index.truncate_after(Some(id(6)));
        assert_eq!(index.last(), Some(id(6)));
        assert_eq!(index.next_index(), 7);
        // A conflicting append replaces the tail.
        index.append(id(5), loc(50));
        assert_eq!(index.get(5), Some(loc(50)));
        assert_eq!(index.get(6), None);
        index.purge(id(3));
        assert_eq!(index.clip(0, None), 4..6);
        assert!(index.check_append(2).is_err(), "rewrites the purged log");
        index.purge(id(20));
        assert_eq!(index.clip(0, None), 21..21);
        assert_eq!(index.last(), Some(id(20)));
        assert_eq!(index.next_index(), 21);
        assert_eq!(index.missing(), None);
    }
}
