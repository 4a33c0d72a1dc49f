//! The storage contract: what the session layer needs from a store.
//!
//! The contract is shaped for a replicated store:
//!
//! - Stores apply [`ChangeSet`](crate::ChangeSet)s, not whole records, so
//!   concurrent requests that change different keys of one session both keep
//!   their writes.
//! - Every write returns a [`Committed`]: the record's new [`Version`] and a
//!   [`ConsistencyToken`]. The layer hands the token back to the client (in the
//!   cookie) and passes it to the next [`SessionStore::load`], so a replica that
//!   serves the read first catches up to that point (read-your-writes on any
//!   node). A single-node store may ignore tokens.
//! - A store that cannot answer *right now* (no quorum, no leader, a replica
//!   that cannot catch up in time) says [`StoreError::Unavailable`] with a
//!   retry hint; the layer turns that into `503 Service Unavailable` with
//!   `Retry-After`, never a success for a change that was not saved.
//!
//! Every store must pass the shared conformance suite (`conformance`, with
//! its helpers in `testing`: both behind the `conformance` feature).
//!
//! Files: `contract.rs` (the trait), `token.rs` (what a write returns),
//! `error.rs`, `map.rs` (the sharded records every store here keeps),
//! `memory.rs` (the one-node store), `tombstones.rs`, `conformance.rs` and
//! `testing.rs` (for tests).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod contract;
mod error;
mod map;
mod memory;
#[cfg(any(test, feature = "conformance"))]
pub mod testing;
mod token;
mod tombstones;

pub use contract::SessionStore;
pub use error::{StoreError, Version};
pub use map::{CreateError, SessionMap};
pub use memory::{MemoryStore, MemoryStoreConfig};
pub use token::{Committed, ConsistencyToken};
pub use tombstones::{Tombstones, MAX_TOMBSTONES, SUPERSEDED_WINDOW};
