//! Raft-replicated session store (work in progress).

pub mod admin;
mod append_split;
mod bincode_limit;
pub mod command;
mod config;
pub mod mesh;
pub mod types;

mod cross_mesh;
mod group;
mod lease;
mod log_limit;
mod network;
mod node;
#[cfg(test)]
mod proptests;
mod rpc;
mod server;
mod snapshot_transfer;
mod status;
pub(crate) mod storage;
mod store;
mod tls;

pub use command::{Command, CommandResponse};

pub use config::{ClusterSecret, NodeConfig, ReadMode};
pub use mesh::{MeshDirectory, MeshDirectoryError};
pub use node::{AdminError, NoLeader, RaftNode, ShutdownError, StartError};
pub use status::{ClusterStatus, MemberStatus, Role};
pub use store::RaftStore;
pub use tls::ClusterTls;
pub use types::Raft;

/// Decodes a cluster-port request body exactly as a node's server does
/// (bincode, length-limited to the default `max_rpc_bytes`, trailing bytes
/// refused) and drops it: the
/// request's kind, or the error the server would answer `400` with.
///
/// Nodes never need this; it is public so that fuzzers (see `fuzz/`) and
/// hostile-input tests reach the real decoder without a running node.
pub fn decode_cluster_request(body: &[u8]) -> Result<&'static str, String> {
    rpc::decode::<rpc::Request>(body, config::DEFAULT_MAX_RPC_BYTES)
        .map(|request| request.kind())
        .map_err(|e| e.to_string())
}

/// Internals for this workspace's tests, benchmarks and fuzz targets: the
/// storage types, openraft's type configuration and the snapshot format.
/// Not part of the supported API; they change without notice.
#[doc(hidden)]
pub mod internals {
    pub use crate::storage::log::LogStore;
    pub use crate::storage::snapshot;
    pub use crate::storage::state_machine::{SessionReader, StateMachineStore};
}
