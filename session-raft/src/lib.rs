//! Raft-replicated session store (work in progress).

pub mod command;
pub mod log_store;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use command::{Command, CommandResponse};
pub use log_store::LogStore;
pub use state_machine::{SessionReader, StateMachineStore};
