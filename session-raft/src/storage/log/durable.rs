//! The durable log backend: one redb database (see the parent module for why).
//!
//! Tables: `entries` maps a log index to a bincode-encoded entry; `meta` holds
//! the vote, the committed log id and the last purged log id, each
//! bincode-encoded under a fixed key.

use std::io;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bincode_limit;
use crate::types::{Entry, LogId, Vote};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE_KEY: &str = "vote";
const COMMITTED_KEY: &str = "committed";
const LAST_PURGED_KEY: &str = "last_purged";

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_limit::encode_config()).map_err(io::Error::other)
}

/// Decodes a stored value. No length prefix inside it may claim more than
/// the value's own bytes could hold (a stored entry cannot hold a longer
/// string than is stored for it), so a corrupt prefix is refused before
/// bincode allocates for it.
fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    match bincode_limit::decode_slice(bytes, bytes.len()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log: trailing bytes in stored {what}"),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log: stored {what} does not decode: {e}"),
        )),
    }
}

fn db_error(e: impl Into<redb::Error>) -> io::Error {
    io::Error::other(e.into())
}

/// The redb-backed log.
pub(super) struct DurableLog {
    db: Database,
}

impl std::fmt::Debug for DurableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DurableLog")
    }
}

impl DurableLog {
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        let db = Database::create(path)
            .map_err(|e| io::Error::other(format!("opening raft log {}: {e}", path.display())))?;
        let log = Self { db };
        // Create the tables up front, so that read transactions find them.
        log.commit(Durability::Immediate, |txn| {
            txn.open_table(ENTRIES).map_err(db_error)?;
            txn.open_table(META).map_err(db_error)?;
            Ok(())
        })?;
        Ok(log)
    }

    /// Runs `body` in a write transaction committed with `durability`.
    fn commit<T>(
        &self,
        durability: Durability,
        body: impl FnOnce(&redb::WriteTransaction) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut txn = self.db.begin_write().map_err(db_error)?;
        txn.set_durability(durability).map_err(io::Error::other)?;
        let value = body(&txn)?;
        txn.commit().map_err(db_error)?;
        Ok(value)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(META).map_err(db_error)?;
        match table.get(key).map_err(db_error)? {
            Some(bytes) => decode(bytes.value(), key).map(Some),
            None => Ok(None),
        }
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> io::Result<()> {
        let bytes = encode(value)?;
        self.commit(durability, |txn| {
            let mut table = txn.open_table(META).map_err(db_error)?;
            table.insert(key, bytes.as_slice()).map_err(db_error)?;
            Ok(())
        })
    }

    pub(super) fn entries(&self, start: u64, end: Option<u64>) -> io::Result<Vec<Entry>> {
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ENTRIES).map_err(db_error)?;
        let range = match end {
            Some(end) => table.range(start..end),
            None => table.range(start..),
        }
        .map_err(db_error)?;
        let mut entries = Vec::new();
        for item in range {
            let (_, value) = item.map_err(db_error)?;
            entries.push(decode(value.value(), "log entry")?);
        }
        Ok(entries)
    }

    pub(super) fn vote(&self) -> io::Result<Option<Vote>> {
        self.read_meta(VOTE_KEY)
    }

    pub(super) fn committed(&self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED_KEY)?.flatten())
    }

    /// Last purged log id and last present entry's log id.
    pub(super) fn state(&self) -> io::Result<(Option<LogId>, Option<LogId>)> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let meta = txn.open_table(META).map_err(db_error)?;
        let last_purged = match meta.get(LAST_PURGED_KEY).map_err(db_error)? {
            Some(bytes) => Some(decode::<LogId>(bytes.value(), "last purged log id")?),
            None => None,
        };
        let entries = txn.open_table(ENTRIES).map_err(db_error)?;
        let last = match entries.last().map_err(db_error)? {
            Some((_, value)) => Some(decode::<Entry>(value.value(), "log entry")?.log_id),
            None => None,
        };
        Ok((last_purged, last))
    }

    /// Durable before returning: a vote must never be forgotten.
    pub(super) fn save_vote(&self, vote: &Vote) -> io::Result<()> {
        self.write_meta(VOTE_KEY, vote, Durability::Immediate)
    }

    /// Not fsync'd on its own (see the module doc of the parent).
    pub(super) fn save_committed(&self, committed: Option<LogId>) -> io::Result<()> {
        self.write_meta(COMMITTED_KEY, &committed, Durability::None)
    }

    /// One transaction and one fsync for the whole batch.
    ///
    /// Once the batch is durable, adds the sum of its encoded entry sizes to
    /// the counter `session_raft_log_bytes_appended_total` (one add per batch;
    /// redb's own page and B-tree overhead is not counted), so that the log
    /// bytes each write costs a node can be measured (`bench/scaling.sh`).
    pub(super) fn append(&self, entries: &[Entry]) -> io::Result<()> {
        let encoded = entries
            .iter()
            .map(|entry| Ok((entry.log_id.index, encode(entry)?)))
            .collect::<io::Result<Vec<_>>>()?;
        let appended: usize = encoded.iter().map(|(_, bytes)| bytes.len()).sum();
        self.commit(Durability::Immediate, |txn| {
            let mut table = txn.open_table(ENTRIES).map_err(db_error)?;
            for (index, bytes) in &encoded {
                table.insert(*index, bytes.as_slice()).map_err(db_error)?;
            }
            Ok(())
        })?;
        metrics::counter!("session_raft_log_bytes_appended_total").increment(appended as u64);
        Ok(())
    }

    /// Removes entries after `keep_until` (all if `None`); fsync'd, so that
    /// conflicting entries the leader overwrote never come back.
    pub(super) fn truncate_after(&self, keep_until: Option<u64>) -> io::Result<()> {
        let first_removed = match keep_until {
            Some(index) => match index.checked_add(1) {
                Some(first) => first,
                None => return Ok(()),
            },
            None => 0,
        };
        self.commit(Durability::Immediate, |txn| {
            let mut table = txn.open_table(ENTRIES).map_err(db_error)?;
            table
                .retain_in(first_removed.., |_, _| false)
                .map_err(db_error)?;
            Ok(())
        })
    }

    /// Removes entries up to and including `log_id` and records it as the
    /// purge point, in one transaction.
    pub(super) fn purge(&self, log_id: LogId) -> io::Result<()> {
        if self
            .read_meta::<LogId>(LAST_PURGED_KEY)?
            .is_some_and(|purged| purged >= log_id)
        {
            return Ok(());
        }
        let bytes = encode(&log_id)?;
        self.commit(Durability::None, |txn| {
            let mut table = txn.open_table(ENTRIES).map_err(db_error)?;
            table
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            meta.insert(LAST_PURGED_KEY, bytes.as_slice())
                .map_err(db_error)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use session_core::{ChangeSet, SessionId};

    use super::*;
    use crate::command::Command;

    #[test]
    fn a_stored_entry_claiming_a_huge_key_is_refused_without_allocating() {
        let mut changes = ChangeSet::default();
        changes.set("kkkkkkkkkkkkkkkk".into(), vec![1]);
        let entry = Entry {
            log_id: openraft::testing::log_id::<crate::types::TypeConfig>(1, 1, 5),
            payload: openraft::EntryPayload::Normal(Command::Apply {
                id: SessionId::generate(None).unwrap(),
                changes,
                now: 1,
            }),
        };
        let mut bytes = encode(&entry).unwrap();
        assert!(decode::<Entry>(&bytes, "log entry").is_ok());
        // The key's length prefix (16) now claims 128 MiB: within the old
        // fixed 256 MiB limit, which let bincode allocate that much first.
        let key = b"\x10kkkkkkkkkkkkkkkk";
        let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
        let mut claim = vec![0xfd];
        claim.extend_from_slice(&(1u64 << 27).to_le_bytes());
        bytes.splice(at..at + 1, claim);
        let refused = decode::<Entry>(&bytes, "log entry").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert!(refused.to_string().contains("LimitExceeded"), "{refused}");
    }
}
