//! Session model, store contract and Tower layer for raft-sessions.
//!
//! This crate knows nothing of Raft. It defines what a session is
//! ([`SessionId`], [`SessionRecord`], [`ChangeSet`]), what a store must do
//! ([`SessionStore`]), an in-memory store ([`MemoryStore`]), and the layer.

mod clock;
mod id;
mod record;
pub mod store;

pub use clock::{Clock, UnixMillis};
pub use id::{IdError, MeshTag, SessionId, ID_RANDOM_BYTES, MAX_MESH_TAG_LEN};
pub use record::{data_size, ChangeSet, NewSession, SessionData, SessionRecord, PER_KEY_OVERHEAD};
pub use store::{
    Committed, ConsistencyToken, MemoryStore, MemoryStoreConfig, SessionStore, StoreError, Version,
};
