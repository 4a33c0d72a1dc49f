//! Shared pieces of the layer tests: a small axum app over a store that can
//! be told to fail (`FlakyStore`, from `session_core::store::testing`), and
//! cookie helpers.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod harness;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use cookie::{Cookie, CookieJar};
pub use session_core::store::testing::FlakyStore;
use session_core::{
    ChangeSet, Clock, Key, Session, SessionError, SessionLayer, SessionStore, UnixMillis,
};
use tokio::sync::Barrier;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<FlakyStore>,
    pub barrier: Arc<Barrier>,
}

pub struct TestApp {
    pub router: Router,
    pub store: Arc<FlakyStore>,
    pub key: Key,
    pub clock: Clock,
}

pub const START: UnixMillis = 1_700_000_000_000;

/// `method uri` through the app's router, with `cookie` if given.
pub async fn send(
    app: &TestApp,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
) -> axum::http::Response<axum::body::Body> {
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    app.router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

/// The app over a fresh store; `configure` adjusts the layer.
pub fn app(
    configure: impl FnOnce(SessionLayer<Arc<FlakyStore>>) -> SessionLayer<Arc<FlakyStore>>,
) -> TestApp {
    let store = Arc::new(FlakyStore::default());
    let key = Key::generate();
    let clock = Clock::manual(START);
    let layer = configure(
        SessionLayer::new(store.clone(), key.clone())
            .with_secure(false)
            .with_clock(clock.clone())
            .with_idle_timeout(Duration::from_secs(100)),
    );
    let state = AppState {
        store: store.clone(),
        barrier: Arc::new(Barrier::new(2)),
    };
    let router = Router::new()
        .route("/noop", get(|| async { "noop" }))
        .route("/get/{key}", get(get_key))
        .route("/set/{key}/{value}", post(set_key))
        .route("/overlap/{key}/{value}", post(overlap))
        .route("/incr", post(incr))
        .route("/big", post(big))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/cas", post(cas))
        .route("/id", get(id))
        .with_state(state)
        .layer(layer);
    TestApp {
        router,
        store,
        key,
        clock,
    }
}

async fn get_key(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(session
        .get::<String>(&key)
        .await?
        .unwrap_or_else(|| "none".into()))
}

async fn set_key(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.insert(&key, value).await?;
    Ok("ok")
}

/// Loads, waits until the other request has loaded too, then writes: the two
/// requests really overlap.
async fn overlap(
    State(state): State<AppState>,
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.get::<String>("anything").await?;
    state.barrier.wait().await;
    session.insert(&key, value).await?;
    Ok("ok")
}

async fn incr(session: Session) -> Result<String, SessionError> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

async fn big(session: Session) -> (StatusCode, String) {
    session.insert("small", 1u8).await.ok();
    match session.insert("big", vec![7u8; 100 * 1024]).await {
        Err(SessionError::TooLarge { .. }) => (StatusCode::BAD_REQUEST, "too large".into()),
        other => (StatusCode::OK, format!("{other:?}")),
    }
}

async fn login(session: Session) -> Result<String, SessionError> {
    session.insert("user", "alice".to_owned()).await?;
    session.cycle_id().await?;
    session.save().await?;
    Ok(session.id().map(|id| id.to_string()).unwrap_or_default())
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("bye")
}

/// Compare-and-set: another writer changes the session between this
/// request's load and its save.
async fn cas(
    State(state): State<AppState>,
    session: Session,
) -> Result<&'static str, SessionError> {
    session.expect_unchanged();
    let n = session.get::<u64>("n").await?.unwrap_or(0);
    if let Some(id) = session.id() {
        let mut other = ChangeSet::default();
        other.set("other".into(), vec![1]);
        state.store.inner.apply(&id, other, START).await?;
    }
    session.insert("n", n + 10).await?;
    Ok("ok")
}

async fn id(session: Session) -> Result<String, SessionError> {
    session.get::<String>("x").await?;
    Ok(session
        .id()
        .map(|id| id.to_string())
        .unwrap_or_else(|| "none".into()))
}

/// The `name=value` pair of the first `Set-Cookie`, ready to send back.
pub fn cookie_pair(response: &axum::http::Response<axum::body::Body>) -> Option<String> {
    let set = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(set.split(';').next()?.trim().to_owned())
}

/// A cookie signed with `key` naming `id` (for forging and unknown ids).
pub fn signed_cookie(key: &Key, value: &str) -> String {
    let mut jar = CookieJar::new();
    jar.signed_mut(key)
        .add(Cookie::new("sid", value.to_owned()));
    jar.get("sid").unwrap().encoded().to_string()
}
