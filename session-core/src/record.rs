//! What a store keeps per session, and the change sets that modify it.
//!
//! A handler's changes are recorded as a [`ChangeSet`] (keys set, keys removed,
//! cleared, new expiry, new id) and stores apply change sets rather than
//! overwrite whole records. Two concurrent requests that touch different keys
//! of one session therefore both keep their writes.
//!
//! [`SessionRecord::apply`] is the single, deterministic definition of what
//! applying a change set means. Every store calls it: the in-memory store under
//! a lock, the Raft state machine inside its apply step (where it must not read
//! a clock, which is why `now` is a parameter).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::clock::UnixMillis;
pub(crate) use crate::data::{data_size, SessionData, PER_KEY_OVERHEAD};
use crate::id::SessionId;
use crate::store::{StoreError, Version};

/// One stored session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The data.
    pub data: SessionData,
    /// When the session was created (for the absolute lifetime).
    pub created_at: UnixMillis,
    /// The session is gone at and after this instant.
    pub expires_at: UnixMillis,
    /// Changes each time the record changes; for the Raft store it is the log
    /// index of the last change. Used for compare-and-set.
    pub version: Version,
}

impl SessionRecord {
    /// Whether the record has expired at `now`.
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        self.expires_at <= now
    }

    /// Size of the data as counted against the size limit.
    pub fn size(&self) -> usize {
        data_size(&self.data)
    }

    /// Applies `changes` atomically: on error the record is unchanged.
    ///
    /// Order inside one change set: clear, then removals, then sets, then
    /// expiry. `version` becomes the record's new version. A rotation
    /// (`changes.rotate_to`) is the store's business (it moves the record to a
    /// new key); this only updates the contents.
    pub fn apply(&mut self, changes: &ChangeSet, version: Version) -> Result<(), StoreError> {
        if let Some(expected) = changes.expected_version {
            if expected != self.version {
                return Err(StoreError::VersionConflict {
                    current: self.version,
                });
            }
        }
        // Size check before touching anything, so that nothing is partly written.
        let new_size = self.size_after(changes);
        if changes.size_limit > 0 && new_size > changes.size_limit as usize {
            return Err(StoreError::TooLarge {
                size: new_size,
                limit: changes.size_limit as usize,
            });
        }
        // One pass over the packed data, whatever the number of changes.
        if changes.clear || !changes.remove.is_empty() || !changes.set.is_empty() {
            self.data = self
                .data
                .merged(changes.clear, &changes.remove, &changes.set);
        }
        if let Some(expires_at) = changes.expires_at {
            self.expires_at = expires_at;
        }
        self.version = version;
        Ok(())
    }

    /// Size the data would have after `changes`, computed without cloning.
    fn size_after(&self, changes: &ChangeSet) -> usize {
        let mut size = if changes.clear { 0 } else { self.size() };
        if !changes.clear {
            for key in &changes.remove {
                if let Some(v) = self.data.get(key) {
                    size -= key.len() + v.len() + PER_KEY_OVERHEAD;
                }
            }
        }
        for (key, value) in &changes.set {
            let old = if changes.clear || changes.remove.contains(key) {
                None
            } else {
                self.data.get(key)
            };
            if let Some(old) = old {
                size -= key.len() + old.len() + PER_KEY_OVERHEAD;
            }
            size += key.len() + value.len() + PER_KEY_OVERHEAD;
        }
        size
    }
}

/// The changes one request made to a session.
///
/// Built by the session layer and sent to [`SessionStore::apply`]; also the
/// payload of the Raft log's "apply change set" command, hence serde.
///
/// [`SessionStore::apply`]: crate::SessionStore::apply
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// Remove every key first.
    pub clear: bool,
    /// Keys removed.
    pub remove: BTreeSet<String>,
    /// Keys set, with their encoded values.
    pub set: BTreeMap<String, Vec<u8>>,
    /// New expiry deadline, if it moves.
    pub expires_at: Option<UnixMillis>,
    /// Move the session to this new id (login: same data, new id).
    pub rotate_to: Option<SessionId>,
    /// Apply only if the session's version is still this (compare-and-set).
    pub expected_version: Option<Version>,
    /// Refuse the change if the data would be larger than this many bytes
    /// (0: no limit). Carried in the change so that every replica checks the
    /// same limit.
    pub size_limit: u32,
}

impl ChangeSet {
    /// Whether applying this would change nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.clear
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.expires_at.is_none()
            && self.rotate_to.is_none()
    }

    /// Records `key = value`.
    pub fn set(&mut self, key: String, value: Vec<u8>) {
        self.remove.remove(&key);
        self.set.insert(key, value);
    }

    /// Records the removal of `key`.
    pub fn remove(&mut self, key: &str) {
        self.set.remove(key);
        if !self.clear {
            self.remove.insert(key.to_owned());
        }
    }

    /// Records removal of every key: earlier sets and removals are dropped.
    pub fn clear(&mut self) {
        self.clear = true;
        self.set.clear();
        self.remove.clear();
    }
}

/// Data for a session that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// Initial data.
    pub data: SessionData,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Initial expiry deadline.
    pub expires_at: UnixMillis,
    /// Size limit in bytes (0: none), checked by the store.
    pub size_limit: u32,
}

impl NewSession {
    /// Checks the size limit, then builds the record with `version`.
    pub fn into_record(self, version: Version) -> Result<SessionRecord, StoreError> {
        let size = data_size(&self.data);
        if self.size_limit > 0 && size > self.size_limit as usize {
            return Err(StoreError::TooLarge {
                size,
                limit: self.size_limit as usize,
            });
        }
        Ok(SessionRecord {
            data: self.data,
            created_at: self.created_at,
            expires_at: self.expires_at,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        let mut data = SessionData::new();
        data.insert("a", vec![1]);
        data.insert("b", vec![2, 2]);
        SessionRecord {
            data,
            created_at: 0,
            expires_at: 100,
            version: 1,
        }
    }

    #[test]
    fn apply_orders_clear_remove_set() {
        let mut r = record();
        let mut c = ChangeSet::default();
        c.set("a".into(), vec![9]);
        c.remove("b");
        c.set("c".into(), vec![3]);
        r.apply(&c, 2).unwrap();
        assert_eq!(r.data.get("a"), Some(&[9][..]));
        assert_eq!(r.data.get("b"), None);
        assert_eq!(r.data.get("c"), Some(&[3][..]));
        assert_eq!(r.version, 2);

        let mut c = ChangeSet::default();
        c.set("x".into(), vec![1]);
        c.clear();
        c.set("y".into(), vec![2]);
        r.apply(&c, 3).unwrap();
        assert_eq!(r.data.keys().collect::<Vec<_>>(), vec!["y"]);
    }

    #[test]
    fn compare_and_set_refuses_stale_version() {
        let mut r = record();
        let c = ChangeSet {
            expected_version: Some(0),
            ..ChangeSet::default()
        };
        assert_eq!(
            r.apply(&c, 5),
            Err(StoreError::VersionConflict { current: 1 })
        );
        assert_eq!(r, record());
    }

    #[test]
    fn too_large_changes_nothing() {
        let mut r = record();
        let mut c = ChangeSet {
            size_limit: 40,
            ..ChangeSet::default()
        };
        c.set("big".into(), vec![0; 64]);
        c.remove("a");
        assert!(matches!(r.apply(&c, 2), Err(StoreError::TooLarge { .. })));
        assert_eq!(r, record());
    }

    #[test]
    fn size_after_matches_real_size() {
        let mut r = record();
        let mut c = ChangeSet::default();
        c.set("a".into(), vec![0; 10]);
        c.remove("b");
        c.set("new".into(), vec![0; 3]);
        let predicted = r.size_after(&c);
        r.apply(&c, 2).unwrap();
        assert_eq!(predicted, r.size());
        let mut c = ChangeSet::default();
        c.clear();
        c.set("z".into(), vec![0; 5]);
        let predicted = r.size_after(&c);
        r.apply(&c, 3).unwrap();
        assert_eq!(predicted, r.size());
    }
}
