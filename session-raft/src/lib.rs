//! Raft-replicated session store (work in progress).

pub mod command;
mod config;
pub mod log_store;
pub mod mesh;
pub mod snapshot;
pub mod state_machine;
pub mod types;

mod cross_mesh;
mod network;
mod node;
#[cfg(test)]
mod proptests;
mod rpc;
mod server;
mod status;
mod store;

pub use command::{Command, CommandResponse};
pub use log_store::LogStore;
pub use state_machine::{SessionReader, StateMachineStore};

pub use config::{ClusterSecret, NodeConfig, ReadMode};
pub use mesh::{MeshDirectory, MeshDirectoryError};
pub use node::{AdminError, NoLeader, RaftNode, ShutdownError, StartError};
pub use status::{ClusterStatus, MemberStatus, Role};
pub use store::RaftStore;
pub use types::Raft;
