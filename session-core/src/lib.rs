//! Sessions for axum / Tower services, kept in a [`SessionStore`]: one
//! node's memory ([`MemoryStore`]) or a Raft-replicated map
//! (`session_raft::RaftStore`), with no Redis to run.
//!
//! This crate knows nothing of Raft. It defines what a session is
//! ([`SessionId`], [`SessionRecord`], [`ChangeSet`]), what a store must do
//! ([`SessionStore`], checked by the `store::conformance` suite), an
//! in-memory store, and the Tower layer ([`SessionLayer`]) with the
//! [`Session`] handle handlers use.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use session_core::{Key, MemoryStore, Session, SessionError, SessionLayer};
//!
//! async fn count(session: Session) -> Result<String, SessionError> {
//!     let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", n).await?;
//!     Ok(format!("you have been here {n} times"))
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     // Use one fixed secret key on every instance; generate() is for demos.
//!     let layer = SessionLayer::new(MemoryStore::default(), Key::generate())
//!         .with_secure(false); // plain HTTP on localhost only
//!     let app = Router::new().route("/", get(count)).layer(layer);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//!     axum::serve(listener, app).await.unwrap();
//! }
//! ```
//!
//! # Coming from tower-sessions
//!
//! The [`Session`] handle has tower-sessions' API: the same calls
//! (`get`/`insert`/`remove` and their untyped `*_value` forms, `clear`,
//! `is_empty`, `cycle_id`, `flush`, `delete`, `save`, `load`,
//! `set_expiry`/`expiry`/`expiry_date`/`expiry_age`, `is_modified`) with
//! the same meanings, and values stored as JSON as tower-sessions stores
//! them. Handlers mostly move over by changing imports; the layer does not:
//! [`SessionLayer::new`] takes a cookie [`Key`], and some setters have other
//! names. `docs/coming-from-tower-sessions.md` lists every difference and
//! why.
//!
//! # What it does differently
//!
//! - **Change sets, not whole records.** A request's changes (keys set,
//!   removed, cleared, expiry, new id) are sent as a [`ChangeSet`], so two
//!   concurrent requests changing different keys of one session both keep
//!   their writes. Opt into compare-and-set per request with
//!   [`Session::expect_unchanged`].
//! - **Lazy.** No store call unless the handler touches the session, no write
//!   unless something changed, no cookie and no stored session for a request
//!   that stores nothing. Sliding expiry renews only after a share of the
//!   idle timeout has passed, not on every request. (A request whose handler
//!   never touches the session does not renew it either.)
//! - **Read-your-writes on replicas.** The cookie carries the id and the
//!   [`ConsistencyToken`] of the client's last write; the store will not
//!   answer from an older state.
//! - **Honest failures.** A change the store could not persist never yields a
//!   success: the response becomes 503 with `Retry-After` (see
//!   [`middleware`] for the full table). A bad, forged or unknown cookie is
//!   treated as no cookie: a fresh session, never the client's id (and a
//!   cookie that does not verify is removed).
//! - **Values outlive releases.** They are JSON, read only when asked for:
//!   a value of the wrong type is [`SessionError::Decode`] naming the key,
//!   never a wrong value, and breaks nothing else. JSON over MessagePack:
//!   MessagePack measured faster (1.05x to 1.3x on small values, 5x on a
//!   1 KiB string) and 20% smaller on structs (`benches/encoding.rs`), but
//!   both cost well under the layer's own microseconds per request, and JSON
//!   is what tower-sessions stores, so values mean the same through a
//!   tower-sessions adapter and `get_value` returns exactly what was stored.
//! - **Safe defaults.** HMAC-signed cookies (optionally encrypted),
//!   `Secure`, `HttpOnly`, `SameSite=Lax`, 64 KiB size limit.
//!
//! # Features
//!
//! - `axum` (default): the [`Session`] extractor and `IntoResponse` for
//!   [`SessionError`], so handlers can use `?`.
//! - `conformance`: `store::conformance`, the suite every store must pass,
//!   and `store::testing`, the sessions and failing store tests build on;
//!   for dev-dependencies.

mod clock;
pub mod data;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
mod id;
pub mod middleware;
mod record;
mod session;
pub mod store;
mod transport;

pub use clock::{Clock, UnixMillis};
pub use cookie::{Key, SameSite};
pub use data::{data_size, SessionData, PER_KEY_OVERHEAD};
pub use expiry::Expiry;
pub use id::{IdError, MeshTag, SessionId, ID_RANDOM_BYTES, MAX_MESH_TAG_LEN};
pub use middleware::{SessionLayer, SessionManager};
pub use record::{ChangeSet, NewSession, SessionRecord};
pub use session::{Session, SessionError, SessionResult};
pub use store::{
    Committed, ConsistencyToken, MemoryStore, MemoryStoreConfig, SessionStore, StoreError, Version,
};
