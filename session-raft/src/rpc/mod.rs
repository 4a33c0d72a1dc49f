//! The cluster port: the messages members exchange and their wire form
//! (this file), the HTTP client that carries them ([`client`], with
//! [`call_error`] saying what may be resent), the server that receives them
//! ([`server`]) and hands them to [`dispatch`], openraft's network traits on
//! the client ([`raft_network`], which splits large appends with
//! [`append_split`]), snapshot streaming ([`snapshot_transfer`]), the group
//! and secret checks ([`group`], [`crate::secret`]), rate-limited refusal
//! logs ([`log_limit`]) and TLS ([`tls`]).
//!
//! Every call is one HTTP `POST` whose body is a bincode-encoded [`Request`]
//! and whose `200` answer is a bincode-encoded [`Response`]. Raft's own
//! messages (append entries, vote, transfer leader) go to [`RPC_PATH`]; the
//! full snapshot, which can be large, goes to [`SNAPSHOT_PATH`] on its own
//! connection pool so that it never delays a heartbeat. Forwarded writes,
//! reads and admin calls share [`RPC_PATH`]. Replication is the exception
//! to one call per message: a leader streams its appends to a follower on
//! one long-lived exchange ([`append_stream`], sent by [`append_pipeline`],
//! served by [`append_serve`]), many in flight at once.
//!
//! Decoding is defensive: a body has a size limit (checked while it arrives,
//! see [`server`]), bincode refuses length prefixes beyond that same
//! limit before allocating (see [`crate::bincode_limit`]), and trailing bytes
//! are an error. Bad input yields a [`DecodeError`], never a panic.

pub(crate) mod append_pipeline;
pub(crate) mod append_serve;
pub(crate) mod append_split;
pub(crate) mod append_stream;
pub(crate) mod call_error;
pub(crate) mod client;
pub(crate) mod dispatch;
pub(crate) mod group;
pub(crate) mod log_limit;
pub(crate) mod raft_network;
pub(crate) mod server;
pub(crate) mod snapshot_transfer;
pub(crate) mod tls;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use session_core::{ConsistencyToken, SessionId, SessionRecord, StoreError, UnixMillis};

use crate::bincode_limit;
use crate::command::Command;
use crate::status::ClusterStatus;
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, NodeId, SnapshotMeta, SnapshotResponse, Vote,
    VoteRequest, VoteResponse,
};
use session_core::Committed;

/// Path of Raft messages, forwarded writes and reads, and admin calls.
pub(crate) const RPC_PATH: &str = "/raft/rpc";
/// Path of full-snapshot installs.
pub(crate) const SNAPSHOT_PATH: &str = "/raft/snapshot";
/// Header naming the member a call is meant for (its node id, decimal).
/// A member that is not that node refuses the call with `421 Misdirected
/// Request`: a peer address that leads to the wrong member (a typo in
/// `--peers`, a port reused by another member) then shows as a clear error
/// on both sides instead of Raft messages reaching a node they were not
/// meant for (a leader fed its own heartbeats stops with a panic inside
/// openraft). Calls that do not know the node (a cross-mesh forward to an
/// address from the mesh directory) leave it out.
pub(crate) const TARGET_HEADER: &str = "x-raft-sessions-to";
/// Header a member puts on every refusal it makes *before* acting on a call
/// (wrong secret, wrong member or group, malformed or oversized body). Only
/// a non-`200` answer carrying it proves the call did nothing: any other one
/// (a proxy's `502`, a member's `500` after acting) leaves the outcome
/// unknown, so a write must not be sent again blindly.
pub(crate) const REFUSED_UNREAD_HEADER: &str = "x-raft-sessions-refused";
/// Content type of every body.
pub(crate) const CONTENT_TYPE: &str = "application/x-raft-sessions-bincode";

/// Transfer-leader request as openraft defines it.
pub(crate) type TransferLeaderRequest =
    openraft::raft::TransferLeaderRequest<crate::types::TypeConfig>;
/// Transfer-leader response as openraft defines it.
pub(crate) type TransferLeaderResponse =
    openraft::raft::TransferLeaderResponse<crate::types::TypeConfig>;

/// A call from one member to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Raft: replicate entries or heartbeat.
    AppendEntries(AppendEntriesRequest),
    /// Raft: request a vote.
    Vote(VoteRequest),
    /// Raft: would you vote (no term change)?
    PreVote(VoteRequest),
    /// Raft: the leader hands leadership to the receiver.
    TransferLeader(TransferLeaderRequest),
    /// A follower forwards session writes to the leader, batched.
    Write(Vec<Arc<Command>>),
    /// A follower asks the leader for a linearizable read index.
    ReadIndex,
    /// A follower that cannot catch up to `token` in time asks the leader to
    /// serve the read.
    Load {
        /// Session to read.
        id: SessionId,
        /// Point the client has seen; the answer must not be older.
        token: ConsistencyToken,
        /// Caller's time, for expiry.
        now: UnixMillis,
    },
    /// Admin: add a member as a non-voting learner.
    AddLearner {
        /// New member's id.
        id: NodeId,
        /// Its cluster address.
        addr: String,
    },
    /// Admin: make a learner a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Admin: remove a member (voter or learner).
    Remove {
        /// The member.
        id: NodeId,
    },
    // Cross-mesh variants come last so that the wire indexes of the older
    // ones stay the same.
    /// A node of another mesh asks a member of the session's mesh to serve a
    /// load through its own store (see [`crate::store::cross_mesh`]).
    MeshLoad {
        /// Session to read; tagged with the receiver's mesh.
        id: SessionId,
        /// The client's token, a log index of the receiver's mesh.
        token: ConsistencyToken,
        /// Caller's time, for expiry.
        now: UnixMillis,
        /// How long the caller will wait, in milliseconds; the receiver gives
        /// up sooner rather than work for nobody.
        budget_ms: u64,
    },
    /// A node of another mesh asks a member of the session's mesh to commit a
    /// session write (create, apply or delete) through its own store.
    MeshWrite {
        /// The write; its session is tagged with the receiver's mesh.
        command: Command,
        /// How long the caller will wait, in milliseconds.
        budget_ms: u64,
    },
    /// Admin: the cluster's status, for operator tools
    /// ([`crate::admin::call`]); answered by the leader, which alone knows
    /// every member's lag. Last, to keep the older wire indexes.
    Status,
    /// Raft: replicate entries or heartbeat, with the leader's quorum age for
    /// the receiver's read lease (see [`crate::lease`]). Leaders send this;
    /// [`Request::AppendEntries`] is still accepted but renews no lease.
    LeasedAppendEntries {
        /// The append.
        rpc: AppendEntriesRequest,
        /// Milliseconds since a quorum last acknowledged the sender as leader.
        quorum_age_ms: u64,
    },
}

impl Request {
    /// Short name for logs (never the payload: it holds session data).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Request::AppendEntries(_) | Request::LeasedAppendEntries { .. } => "append-entries",
            Request::Vote(_) => "vote",
            Request::PreVote(_) => "pre-vote",
            Request::TransferLeader(_) => "transfer-leader",
            Request::Write(_) => "write",
            Request::ReadIndex => "read-index",
            Request::Load { .. } => "load",
            Request::AddLearner { .. } => "add-learner",
            Request::Promote { .. } => "promote",
            Request::Remove { .. } => "remove",
            Request::MeshLoad { .. } => "mesh-load",
            Request::MeshWrite { .. } => "mesh-write",
            Request::Status => "status",
        }
    }
}

/// Outcome of one forwarded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WriteOutcome {
    /// Committed and applied (`Ok`), or refused by the state machine or
    /// failed in a way retrying elsewhere will not fix (`Err`).
    Done(Result<Committed, StoreError>),
    /// The receiver is not the leader; nothing was proposed. Retry at `leader`.
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
    },
}

/// An answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    /// To [`Request::AppendEntries`] and [`Request::LeasedAppendEntries`].
    AppendEntries(AppendEntriesResponse),
    /// To [`Request::Vote`] and [`Request::PreVote`].
    Vote(VoteResponse),
    /// To [`Request::TransferLeader`].
    TransferLeader(TransferLeaderResponse),
    /// To [`Request::Write`]: one outcome per command, in order.
    Write(Vec<WriteOutcome>),
    /// To [`Request::ReadIndex`]: apply up to this index, then read.
    ReadIndex(u64),
    /// To [`Request::Load`].
    Load(Option<SessionRecord>),
    /// To an admin request: done.
    Done,
    /// The receiver is not the leader and cannot serve this; retry at `leader`.
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
        /// Its cluster address, if known (a joining node knows no members yet).
        addr: Option<String>,
    },
    /// The receiver could not serve the request now (stopping, no quorum,
    /// behind); retrying later may work.
    Unavailable(String),
    /// The request was refused for good (bad membership change, a session
    /// of another mesh, ...).
    Refused(String),
    /// To [`Request::MeshLoad`]: what the receiver's store answered.
    MeshLoad(Result<Option<SessionRecord>, StoreError>),
    /// To [`Request::MeshWrite`]: what the receiver's store answered; an
    /// error may leave the outcome unknown (`Unavailable`), exactly as a
    /// local write's would.
    MeshWrite(Result<Committed, StoreError>),
    /// To [`Request::Status`]: the answering member's view (the leader's,
    /// unless no leader is known).
    Status(Box<ClusterStatus>),
}

/// What precedes a full snapshot sent to a follower (see
/// [`crate::rpc::snapshot_transfer`] for the body around it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotOffer {
    /// The leader's vote; the follower refuses snapshots of stale leaders.
    pub(crate) vote: Vote,
    /// Last included log id and membership.
    pub(crate) meta: SnapshotMeta,
}

/// Answer to a snapshot transfer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SnapshotReply {
    /// Installed (or refused because of a newer vote, which the response says).
    Installed(SnapshotResponse),
    /// The receiver is stopping.
    Unavailable(String),
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub(crate) struct DecodeError(String);

/// Why a message could not be encoded (a bug or an unencodable value).
#[derive(Debug, thiserror::Error)]
#[error("could not encode message: {0}")]
pub(crate) struct EncodeError(String);

/// Encodes a message.
pub(crate) fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, EncodeError> {
    bincode::serde::encode_to_vec(message, bincode_limit::encode_config())
        .map_err(|e| EncodeError(e.to_string()))
}

/// Appends the encoding of `message` (as [`encode`] makes it) to `out`.
pub(crate) fn encode_into<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    bincode::serde::encode_into_std_write(message, out, bincode_limit::encode_config())
        .map(|_| ())
        .map_err(|e| EncodeError(e.to_string()))
}

/// Decodes a whole body into one message; trailing bytes are an error.
///
/// `limit` is the body limit of the path the body came on: no length prefix
/// inside it may claim more, since a body that size could not have held it.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, DecodeError> {
    let (message, read) =
        bincode_limit::decode_slice::<T>(body, limit).map_err(|e| DecodeError(e.to_string()))?;
    if read != body.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after the message",
            body.len() - read
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body limit the tests decode under (the default `max_rpc_bytes`).
    const LIMIT: usize = 64 << 20;

    #[test]
    fn requests_round_trip() {
        let id = SessionId::generate(None).unwrap();
        let request = Request::Write(vec![
            Arc::new(Command::Delete { id }),
            Arc::new(Command::ExpireBefore { now: 42 }),
        ]);
        let bytes = encode(&request).unwrap();
        match decode::<Request>(&bytes, LIMIT).unwrap() {
            Request::Write(commands) => {
                assert_eq!(*commands[0], Command::Delete { id });
                assert_eq!(*commands[1], Command::ExpireBefore { now: 42 });
            }
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            &b""[..],
            &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
            &b"\x04\xfd\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
            &[0x7f; 64][..],
        ] {
            assert!(decode::<Request>(body, LIMIT).is_err());
        }
        // A valid message followed by junk is refused too.
        let mut bytes = encode(&Request::ReadIndex).unwrap();
        bytes.push(0);
        assert!(decode::<Request>(&bytes, LIMIT).is_err());
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // Write(Vec<Command>) claiming 2^60 commands in a 12-byte body.
        let mut bytes = vec![4u8];
        bytes.push(0xfd);
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode::<Request>(&bytes, LIMIT).is_err());
    }

    #[test]
    fn a_claim_beyond_the_body_limit_is_refused_before_allocating() {
        // AddLearner whose address claims 1 GiB: under the old fixed 2 GiB
        // limit bincode allocated that much before finding the body short.
        let mut bytes = encode(&Request::AddLearner {
            id: 7,
            addr: String::new(),
        })
        .unwrap();
        bytes.pop();
        bytes.push(0xfc);
        bytes.extend_from_slice(&(1u32 << 30).to_le_bytes());
        let refused = decode::<Request>(&bytes, 1 << 20).unwrap_err();
        assert!(refused.to_string().contains("LimitExceeded"), "{refused}");
    }
}
