//! What a store hands back for a write: a [`Committed`] holding the record's
//! new version and a [`ConsistencyToken`], the point in the store's history
//! that later loads must not fall behind (read-your-writes on replicas).

use crate::store::Version;

/// A point in the store's history that a client has seen: for the Raft store,
/// a log index of one Raft group's history. [`ConsistencyToken::NONE`] asks
/// for nothing.
///
/// `history` names the history the index belongs to (for the Raft store, the
/// group's cluster id, made at initialization, so a rebuilt cluster or another
/// mesh has another one). A store ignores a token of a history that is not
/// its own instead of waiting for an index it may never reach; `0` means
/// "unknown history" (single-node stores, cookies from before histories).
/// Tokens of different histories are not comparable, so there is no `Ord`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ConsistencyToken {
    /// The history (Raft group and its incarnation) `index` belongs to.
    pub history: u64,
    /// The position in that history (for the Raft store, a log index).
    pub index: u64,
}

impl ConsistencyToken {
    /// No consistency requirement.
    pub const NONE: Self = Self {
        history: 0,
        index: 0,
    };

    /// The token for `index` of `history`.
    pub const fn new(history: u64, index: u64) -> Self {
        Self { history, index }
    }

    /// Whether this token asks for nothing.
    pub fn is_none(self) -> bool {
        self.index == 0
    }

    /// This token if it belongs to `history`, else [`ConsistencyToken::NONE`]:
    /// what a store of that history should wait for.
    pub fn within(self, history: u64) -> Self {
        if self.history == history {
            self
        } else {
            Self::NONE
        }
    }
}

/// What a successful write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    /// The record's new version (compare-and-set uses it).
    pub version: Version,
    /// Pass this to later loads to see this write (read-your-writes).
    pub token: ConsistencyToken,
}
