//! The one openraft type configuration of this crate, and the concrete aliases
//! every other module uses (the Raft handle and snapshot types, which name
//! our storage, are in [`crate::storage`]).
//!
//! openraft is generic over a [`openraft::RaftTypeConfig`]; naming the
//! instantiated types here (rather than spelling `openraft::X<TypeConfig>` all
//! over the crate) keeps the storage, network and node modules in agreement and
//! makes an openraft upgrade a one-file change.

use std::sync::Arc;

use crate::command::{Command, CommandResponse};

openraft::declare_raft_types!(
    /// Type configuration of the session Raft group: log entries carry
    /// [`Command`]s, applying one yields a [`CommandResponse`], members are
    /// `u64` ids with a [`openraft::BasicNode`] whose `addr` is the member's
    /// cluster (Raft RPC) address.
    ///
    /// The command is behind an `Arc` (encoded as the command itself) because
    /// openraft clones entries: the log's cache hands one out per follower
    /// replicated to and one to the state machine, and a proposal is cloned
    /// for each attempt; with the `Arc` those are reference counts, not
    /// copies of the session data (and not decodes of the cached bytes).
    pub TypeConfig:
        D = Arc<Command>,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// Id of a cluster member.
pub type NodeId = u64;
/// What the cluster knows about a member: `addr` is its cluster RPC address.
pub type Node = openraft::BasicNode;

/// openraft configuration (timeouts, snapshot policy, ...).
pub type Config = openraft::Config;

/// Position of a log entry: committed leader id and index.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A (possibly committed) vote: term and candidate.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// The leader id as used in votes.
pub type LeaderId = openraft::alias::LeaderIdOf<TypeConfig>;
/// One Raft log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// What an entry carries: blank, membership, or a [`Command`].
pub type EntryPayload = openraft::alias::EntryPayloadOf<TypeConfig>;
/// A membership configuration.
pub type Membership = openraft::Membership<NodeId, Node>;
/// A membership configuration and the log id that introduced it.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;

/// Snapshot metadata: last included log id and membership.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// Storage failure as openraft reports it.
pub type StorageError = openraft::StorageError<TypeConfig>;
/// Error of a Raft API call; `E` is the call-specific part.
pub type RaftError<E = openraft::errors::Infallible> = openraft::errors::RaftError<TypeConfig, E>;
/// Call-specific error of [`openraft::Raft::client_write`].
pub type ClientWriteError = openraft::errors::ClientWriteError<TypeConfig>;
/// Successful result of [`openraft::Raft::client_write`].
pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TypeConfig>;
/// Fatal Raft error (the node stopped).
pub type Fatal = openraft::errors::Fatal<TypeConfig>;
/// Append-entries RPC request.
pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
/// Append-entries RPC response.
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<TypeConfig>;
/// Vote RPC request.
pub type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
/// Vote RPC response.
pub type VoteResponse = openraft::raft::VoteResponse<TypeConfig>;
/// Response to a full-snapshot install.
pub type SnapshotResponse = openraft::raft::SnapshotResponse<TypeConfig>;
/// Node metrics (leader, applied index, membership, ...).
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
