//! Raft-replicated session store (work in progress).

pub mod admin;
mod append_split;
mod bincode_limit;
pub mod command;
mod config;
pub mod log_store;
pub mod mesh;
pub mod snapshot;
pub mod state_machine;
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
mod store;
mod tls;

pub use command::{Command, CommandResponse};
pub use log_store::LogStore;
pub use state_machine::{SessionReader, StateMachineStore};

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
