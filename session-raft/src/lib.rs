//! A replicated, durable [`session_core::SessionStore`] for raft-sessions:
//! each application instance runs a [`RaftNode`], a member of a Raft group
//! (openraft) over the instances' own cluster port, and hands the session
//! layer its [`RaftStore`]. A change acknowledged to a client is committed
//! on a majority and survives the loss of a minority; any member serves any
//! session of its group, and with a [`MeshDirectory`] the sessions of other
//! groups ("meshes") too.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use session_raft::{NodeConfig, RaftNode};
//!
//! // A single member with its log on disk; see `NodeConfig` for peers,
//! // secrets, TLS and meshes.
//! let node = RaftNode::start(
//!     NodeConfig::new(1, "127.0.0.1:7000".parse()?).with_data_dir("/var/lib/sessions"),
//! )
//! .await?;
//! let store = node.store(); // give this to session_core's layer
//! # drop(store);
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Layout (one job per module; arrows are "uses"): [`RaftNode`] (`node`)
//! starts and stops a member and uses the store, RPC, storage and admin
//! modules, which share the member's state through `replica`; nothing but
//! this root names `node`.

pub mod admin;
mod bincode_limit;
mod command;
mod config;
mod error;
mod lease;
mod mesh;
mod node;
#[cfg(test)]
mod proptests;
mod replica;
mod rpc;
mod secret;
mod status;
mod stop;
mod storage;
mod store;
mod types;

pub use config::{ConfigError, NodeConfig, ReadMode};
pub use error::{AdminError, NoLeader, RaftFailure, ShutdownError, StartError};
pub use mesh::{MeshDirectory, MeshDirectoryError};
pub use node::RaftNode;
pub use rpc::call_error::CallError;
pub use rpc::tls::{ClusterTls, TlsError};
pub use secret::ClusterSecret;
pub use status::{ClusterStatus, MemberStatus, Role};
pub use store::RaftStore;

/// Internals for this workspace's tests, benchmarks and fuzz targets: the
/// storage types, openraft's type configuration, the snapshot format and the
/// RPC decoder. Not part of the supported API; they change without notice.
#[doc(hidden)]
pub mod internals {
    pub use crate::command::{Command, CommandResponse, FULL_RETRY_AFTER};
    pub use crate::storage::log::LogStore;
    pub use crate::storage::snapshot;
    pub use crate::storage::state_machine::{SessionReader, StateMachineStore};

    /// openraft's type configuration of this crate and its aliases.
    pub mod types {
        pub use crate::types::*;
    }

    /// The most appends any replication stream of this process has had
    /// sent and unanswered at once (see `rpc::append_pipeline`).
    pub fn append_stream_peak_in_flight() -> usize {
        crate::rpc::append_pipeline::peak_in_flight()
    }

    /// The sizes of this process's latest forwarded write batches (up to
    /// 4096), oldest first (see `store::forward`).
    pub fn forward_batch_sizes() -> Vec<usize> {
        crate::store::forward::recent_batch_sizes()
    }

    /// The sizes of this process's latest forwarded write batches that
    /// were sent while another was in flight (up to 4096), oldest first
    /// (see `store::forward`).
    pub fn forward_overlapping_batch_sizes() -> Vec<usize> {
        crate::store::forward::recent_overlapping_sizes()
    }

    /// The sizes of this process's latest batches of the leader's own
    /// proposals (up to 4096), oldest first (see `store::propose`).
    pub fn proposal_batch_sizes() -> Vec<usize> {
        crate::store::propose::recent_batch_sizes()
    }

    /// Decodes one answer frame of a replication stream (its 4-byte length
    /// prefix included) as a leader does: its kind, or why it is malformed.
    pub fn decode_append_answer(frame: &[u8]) -> Result<&'static str, String> {
        crate::rpc::append_stream::answer_kind(frame, crate::config::DEFAULT_MAX_RPC_BYTES)
    }

    /// Decodes a cluster-port request body exactly as a node's server does
    /// (bincode, length-limited to the default `max_rpc_bytes`, trailing
    /// bytes refused) and drops it: the request's kind, or the error the
    /// server would answer `400` with.
    ///
    /// Nodes never need this; it is public so that fuzzers (see `fuzz/`) and
    /// hostile-input tests reach the real decoder without a running node.
    pub fn decode_cluster_request(body: &[u8]) -> Result<&'static str, String> {
        crate::rpc::decode::<crate::rpc::Request>(body, crate::config::DEFAULT_MAX_RPC_BYTES)
            .map(|request| request.kind())
            .map_err(|e| e.to_string())
    }
}
