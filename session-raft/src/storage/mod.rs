//! What a member keeps on disk (or in memory with `--ephemeral`): the Raft
//! log ([`log`]), the applied session map ([`state_machine`]) and the
//! snapshots openraft builds from it and sends to lagging members
//! ([`snapshot`]). Nothing here talks to the network.

pub(crate) mod log;
pub mod snapshot;
pub(crate) mod state_machine;

/// The Raft handle, bound to our state machine.
pub(crate) type Raft = openraft::Raft<crate::types::TypeConfig, state_machine::StateMachineStore>;
