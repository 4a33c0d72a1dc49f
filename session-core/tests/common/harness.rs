//! One-route apps over a shared store: each call builds a router whose only
//! route runs the given handler, so a test can say what a handler does right
//! where it checks the outcome.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use session_core::{Clock, Key, Session, SessionLayer};
use tower::ServiceExt as _;

use super::{FlakyStore, START};

/// A layer configuration applied to every call.
pub type Configure = fn(SessionLayer<Arc<FlakyStore>>) -> SessionLayer<Arc<FlakyStore>>;

/// A store, key and clock that calls share.
pub struct Harness {
    pub store: Arc<FlakyStore>,
    pub key: Key,
    pub clock: Clock,
    pub configure: Configure,
}

impl Harness {
    pub fn new(configure: Configure) -> Self {
        Self {
            store: Arc::new(FlakyStore::default()),
            key: Key::generate(),
            clock: Clock::manual(START),
            configure,
        }
    }

    /// The router for `handler` (its only route is `POST /`).
    pub fn router<F, Fut, R>(&self, handler: F) -> Router
    where
        F: FnOnce(Session) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse + 'static,
    {
        let layer = (self.configure)(
            SessionLayer::new(self.store.clone(), self.key.clone())
                .with_secure(false)
                .with_clock(self.clock.clone())
                .with_idle_timeout(Duration::from_secs(100)),
        );
        Router::new()
            .route("/", post(move |session: Session| handler(session)))
            .layer(layer)
    }

    /// One request with `cookie` (a `name=value` pair) through `handler`.
    pub async fn call<F, Fut, R>(&self, cookie: Option<&str>, handler: F) -> Response<Body>
    where
        F: FnOnce(Session) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse + 'static,
    {
        self.router(handler).oneshot(request(cookie)).await.unwrap()
    }
}

/// `POST /` with an optional cookie.
pub fn request(cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method("POST").uri("/");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.body(Body::empty()).unwrap()
}

/// The first `Set-Cookie`, whole.
pub fn set_cookie(response: &Response<Body>) -> Option<String> {
    Some(
        response
            .headers()
            .get("set-cookie")?
            .to_str()
            .ok()?
            .to_owned(),
    )
}

/// Whether the response tells the browser to drop its cookie.
pub fn is_removal(response: &Response<Body>) -> bool {
    set_cookie(response).is_some_and(|c| c.starts_with("sid=;") && c.contains("Max-Age=0"))
}
