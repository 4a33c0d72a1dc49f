//! An app written for tower-sessions, moved over by changing its imports
//! and the layer's constructor only. Everything between the two `MOVED`
//! markers is handler code as a tower-sessions user writes it (typed and
//! untyped values, expiry, flush, cycle_id), and this test drives it over
//! real HTTP, through a `RaftStore` of a one-node cluster.

use std::net::SocketAddr;

use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
// MOVED: was `use tower_sessions::{Expiry, Session};`
use session_core::{Expiry, Session};
use time::Duration;

// ---- the app's own code, unchanged ----

const COUNTER_KEY: &str = "counter";
const PREFS_KEY: &str = "prefs";

#[derive(Default, Deserialize, Serialize)]
struct Counter(usize);

async fn counter(session: Session) -> impl IntoResponse {
    let counter: Counter = session.get(COUNTER_KEY).await.unwrap().unwrap_or_default();
    session.insert(COUNTER_KEY, counter.0 + 1).await.unwrap();
    format!("Current count: {}", counter.0)
}

async fn set_prefs(session: Session) -> impl IntoResponse {
    let previous = session
        .insert_value(
            PREFS_KEY,
            serde_json::json!({"theme": "dark", "lang": ["en", "de"]}),
        )
        .await
        .unwrap();
    format!("previous: {previous:?}")
}

async fn prefs(session: Session) -> impl IntoResponse {
    let value = session.get_value(PREFS_KEY).await.unwrap();
    value.map(|v| v.to_string()).unwrap_or_default()
}

async fn remember_me(session: Session) -> impl IntoResponse {
    session.set_expiry(Some(Expiry::OnInactivity(Duration::days(30))));
    session.insert("remember", true).await.unwrap();
    format!("{}", session.expiry_age().whole_days())
}

async fn login(session: Session) -> impl IntoResponse {
    session.cycle_id().await.unwrap();
    session.insert("user", "alice").await.unwrap();
    "logged in"
}

async fn whoami(session: Session) -> impl IntoResponse {
    let user: Option<String> = session.get("user").await.unwrap();
    user.unwrap_or_else(|| "nobody".into())
}

async fn logout(session: Session) -> impl IntoResponse {
    session.flush().await.unwrap();
    "bye"
}

fn routes() -> Router {
    Router::new()
        .route("/", get(counter))
        .route("/prefs", post(set_prefs).get(prefs))
        .route("/remember", post(remember_me))
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route("/logout", post(logout))
}

// ---- end of the app's code ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_sessions_app_runs_unchanged_on_a_raft_store() {
    let node = session_raft::RaftNode::start(session_raft::NodeConfig::new(
        1,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap();
    node.wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    // MOVED: was `SessionManagerLayer::new(store).with_secure(false)`.
    let layer = session_core::SessionLayer::new(node.store(), session_core::Key::generate())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let app = routes().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{addr}{path}");
    let text = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };

    for n in 0..3 {
        let body = text(http.get(url("/")).send().await.unwrap()).await;
        assert_eq!(body, format!("Current count: {n}"));
    }
    let body = text(http.post(url("/prefs")).send().await.unwrap()).await;
    assert_eq!(body, "previous: None");
    let body = text(http.get(url("/prefs")).send().await.unwrap()).await;
    let prefs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(prefs["lang"][1], "de");
    let body = text(http.post(url("/remember")).send().await.unwrap()).await;
    assert_eq!(body, "30");

    assert_eq!(
        text(http.get(url("/whoami")).send().await.unwrap()).await,
        "nobody"
    );
    text(http.post(url("/login")).send().await.unwrap()).await;
    assert_eq!(
        text(http.get(url("/whoami")).send().await.unwrap()).await,
        "alice"
    );
    // The counter moved with the session to its new id.
    let body = text(http.get(url("/")).send().await.unwrap()).await;
    assert_eq!(body, "Current count: 3");

    text(http.post(url("/logout")).send().await.unwrap()).await;
    assert_eq!(
        text(http.get(url("/whoami")).send().await.unwrap()).await,
        "nobody"
    );
    let body = text(http.get(url("/")).send().await.unwrap()).await;
    assert_eq!(body, "Current count: 0", "a fresh session after logout");

    server.abort();
    node.shutdown().await.unwrap();
}
