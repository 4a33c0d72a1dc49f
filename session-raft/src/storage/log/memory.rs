//! The in-memory log backend (`--ephemeral`, tests): a `BTreeMap` of entries
//! under one mutex. Nothing survives the process.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::types::{Entry, LogId, Vote};

#[derive(Debug, Default)]
struct State {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

/// In-memory log.
#[derive(Debug, Default)]
pub(super) struct MemoryLog {
    state: Mutex<State>,
}

impl MemoryLog {
    pub(super) fn entries(&self, start: u64, end: Option<u64>) -> Vec<Entry> {
        let state = self.state.lock();
        match end {
            Some(end) if end <= start => Vec::new(),
            Some(end) => state
                .entries
                .range(start..end)
                .map(|(_, e)| e.clone())
                .collect(),
            None => state
                .entries
                .range(start..)
                .map(|(_, e)| e.clone())
                .collect(),
        }
    }

    pub(super) fn vote(&self) -> Option<Vote> {
        self.state.lock().vote
    }

    pub(super) fn committed(&self) -> Option<LogId> {
        self.state.lock().committed
    }

    /// Last purged log id and last present entry's log id.
    pub(super) fn state(&self) -> (Option<LogId>, Option<LogId>) {
        let state = self.state.lock();
        let last = state.entries.values().next_back().map(|e| e.log_id);
        (state.last_purged, last)
    }

    pub(super) fn save_vote(&self, vote: Vote) {
        self.state.lock().vote = Some(vote);
    }

    pub(super) fn save_committed(&self, committed: Option<LogId>) {
        self.state.lock().committed = committed;
    }

    pub(super) fn append(&self, entries: Vec<Entry>) {
        let mut state = self.state.lock();
        for entry in entries {
            state.entries.insert(entry.log_id.index, entry);
        }
    }

    pub(super) fn truncate_after(&self, keep_until: Option<u64>) {
        let mut state = self.state.lock();
        let first_removed = keep_until.map_or(0, |i| i.saturating_add(1));
        drop(state.entries.split_off(&first_removed));
    }

    pub(super) fn purge(&self, log_id: LogId) {
        let mut state = self.state.lock();
        if state.last_purged.is_some_and(|p| p >= log_id) {
            return;
        }
        let kept = state.entries.split_off(&(log_id.index.saturating_add(1)));
        state.entries = kept;
        state.last_purged = Some(log_id);
    }
}
