//! Raft-replicated session store (work in progress).

pub mod command;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use command::{Command, CommandResponse};
pub use state_machine::{SessionReader, StateMachineStore};
