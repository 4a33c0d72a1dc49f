//! What a member keeps on disk (or in memory with `--ephemeral`): the Raft
//! log ([`log`]), the applied session map ([`state_machine`]) and the
//! snapshots openraft builds from it and sends to lagging members
//! ([`snapshot`]). Nothing here talks to the network.

pub(crate) mod log;
pub mod snapshot;
pub(crate) mod state_machine;
