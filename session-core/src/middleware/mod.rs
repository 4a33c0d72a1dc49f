//! The Tower middleware: [`SessionLayer`] wraps a service in a
//! [`SessionManager`], which puts a [`Session`](crate::Session) in each
//! request's extensions and saves it after the inner service answers.
//!
//! Works with any `Service<http::Request<B>, Response = http::Response<ResBody>>`
//! (axum 0.8 routers, hyper 1 services). The inner service's error type passes
//! through unchanged; the layer's own failures become responses:
//!
//! | final save fails with            | response                      |
//! |----------------------------------|-------------------------------|
//! | `StoreError::Unavailable`        | 503 with `Retry-After`        |
//! | `StoreError::TooLarge`           | 413                           |
//! | `VersionConflict` (after [`expect_unchanged`](crate::Session::expect_unchanged)), or the session was deleted or moved (a login) meanwhile or moments before (`NotFound`, `Superseded`): the client's cookie is left alone | 409 |
//! | `StoreError::Backend` (a real store fault) | 500                 |
//!
//! The replacement response has an empty body, which is why `ResBody` must
//! implement `Default` (axum's `Body`, `http_body_util::Full` and `Empty` do).
//! A failed sliding renewal on a request that only read is logged, not
//! turned into an error.
//!
//! ```
//! use axum::{routing::get, Router};
//! use session_core::{Key, MemoryStore, Session, SessionLayer};
//!
//! async fn handler(session: Session) -> String {
//!     let visits: u64 = session.get("visits").await.ok().flatten().unwrap_or(0);
//!     let _ = session.insert("visits", visits + 1).await;
//!     format!("visit {}", visits + 1)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(MemoryStore::default(), Key::generate()));
//! # }
//! ```

mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub use service::SessionManager;
