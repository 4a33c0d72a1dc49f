//! A session's state during one request: the record as loaded plus the
//! changes the handler made, seen together as one view.
//!
//! Nothing here does I/O; the handle (`mod.rs`) loads and saves around it.

use std::sync::Arc;

use crate::clock::UnixMillis;
use crate::expiry::Expiry;
use crate::id::SessionId;
use crate::record::{data_size, ChangeSet, SessionRecord, PER_KEY_OVERHEAD};
use crate::store::ConsistencyToken;
use crate::transport::ClientUpdate;

/// Per-request session state, behind the handle's mutex.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Whether the store was asked for the incoming id (once per request).
    pub(crate) loaded: bool,
    /// The live record and its id; `None` for a new (not yet stored) session.
    pub(crate) current: Option<(SessionId, Arc<SessionRecord>)>,
    /// Changes not yet sent to the store.
    pub(crate) changes: ChangeSet,
    /// The handler asked for a new id (`cycle_id`).
    pub(crate) rotate: bool,
    /// A deadline the handler asked for (`set_expiry`).
    pub(crate) requested_expiry: Option<UnixMillis>,
    /// Compare-and-set against the version as loaded (`expect_unchanged`).
    pub(crate) expect_unchanged: bool,
    /// Newest token the client has seen or will see.
    pub(crate) token: ConsistencyToken,
    /// What the response must tell the client.
    pub(crate) client_update: ClientUpdate,
    /// This request changed the session (recorded a change, saved it, or
    /// deleted the session), for `is_modified`.
    pub(crate) modified: bool,
    /// The session this request loaded vanished before its write (deleted,
    /// expired, or rotated by a concurrent login): its writes are dropped,
    /// never saved into a new session, and the client's cookie is left
    /// alone, because the browser may already hold a newer one.
    pub(crate) orphaned: bool,
    /// What `set_expiry` last set (`None`: the layer's rule).
    pub(crate) expiry: Option<Expiry>,
    /// `set_expiry` was called: the cookie must be re-sent even if no data
    /// changed (for example to drop its Max-Age).
    pub(crate) expiry_touched: bool,
}

impl State {
    /// The encoded value of `key` as the handler currently sees it.
    pub(crate) fn value(&self, key: &str) -> Option<&[u8]> {
        if let Some(v) = self.changes.set.get(key) {
            return Some(v);
        }
        if self.changes.clear || self.changes.remove.contains(key) {
            return None;
        }
        self.current.as_ref().and_then(|(_, r)| r.data.get(key))
    }

    /// Whether no key is visible.
    pub(crate) fn is_empty(&self) -> bool {
        if !self.changes.set.is_empty() {
            return false;
        }
        if self.changes.clear {
            return true;
        }
        self.current
            .as_ref()
            .is_none_or(|(_, r)| r.data.keys().all(|k| self.changes.remove.contains(k)))
    }

    /// Size the session would have if the pending changes were saved.
    pub(crate) fn projected_size(&self) -> usize {
        let changes = &self.changes;
        let record = match (&self.current, changes.clear) {
            (Some((_, r)), false) => r,
            _ => return data_size(&changes.set),
        };
        let mut size = record.size();
        let entry = |key: &String| {
            record
                .data
                .get(key)
                .map_or(0, |v| key.len() + v.len() + PER_KEY_OVERHEAD)
        };
        for key in changes.remove.iter().chain(changes.set.keys()) {
            size -= entry(key);
        }
        size + data_size(&changes.set)
    }

    /// Size after also setting `key` to a value of `value_len` bytes.
    pub(crate) fn size_with(&self, key: &str, value_len: usize) -> usize {
        let old = self
            .value(key)
            .map_or(0, |v| key.len() + v.len() + PER_KEY_OVERHEAD);
        self.projected_size() - old + key.len() + value_len + PER_KEY_OVERHEAD
    }

    /// Whether the handler changed anything that must be written.
    pub(crate) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
            || self.rotate
            || self.requested_expiry.is_some()
            || self.expiry_touched
    }
}

/// `older` followed by `newer`, as one change set. Used to put back changes
/// whose save failed while the handler kept changing the session.
pub(crate) fn merge(older: ChangeSet, newer: ChangeSet) -> ChangeSet {
    if newer.clear {
        return newer;
    }
    let mut merged = older;
    for key in &newer.remove {
        merged.remove(key);
    }
    for (key, value) in newer.set {
        merged.set(key, value);
    }
    merged.expires_at = newer.expires_at.or(merged.expires_at);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(pairs: &[(&str, &[u8])]) -> State {
        let record = SessionRecord {
            data: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            created_at: 0,
            expires_at: 1,
            version: 1,
        };
        State {
            loaded: true,
            current: Some((SessionId::generate(None).unwrap(), Arc::new(record))),
            ..State::default()
        }
    }

    #[test]
    fn pending_changes_overlay_the_record() {
        let mut s = loaded(&[("a", b"1"), ("b", b"2")]);
        s.changes.remove("a");
        s.changes.set("c".into(), b"3".to_vec());
        assert_eq!(s.value("a"), None);
        assert_eq!(s.value("b"), Some(&b"2"[..]));
        assert_eq!(s.value("c"), Some(&b"3"[..]));
        s.changes.clear();
        assert_eq!(s.value("b"), None);
        assert!(s.is_empty());
    }

    #[test]
    fn projected_size_matches_applying() {
        let mut s = loaded(&[("a", b"1"), ("b", b"22")]);
        s.changes.set("a".into(), vec![0; 10]);
        s.changes.remove("b");
        s.changes.set("new".into(), vec![0; 3]);
        let mut applied = SessionRecord::clone(&s.current.as_ref().unwrap().1);
        applied.apply(&s.changes, 2).unwrap();
        assert_eq!(s.projected_size(), applied.size());
        assert_eq!(s.size_with("a", 1), applied.size() - 9);
    }

    #[test]
    fn merge_is_sequential_composition() {
        let mut older = ChangeSet::default();
        older.set("a".into(), vec![1]);
        older.set("b".into(), vec![1]);
        let mut newer = ChangeSet::default();
        newer.remove("a");
        newer.set("c".into(), vec![2]);
        let merged = merge(older, newer);
        assert_eq!(merged.set.keys().collect::<Vec<_>>(), vec!["b", "c"]);
        assert!(merged.remove.contains("a"));
    }
}
