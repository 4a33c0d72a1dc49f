//! The demo's axum app: a counter page, a JSON API, login/logout, health,
//! readiness, Prometheus metrics and cluster status.
//!
//! The same router serves every mode; only the store behind the session layer
//! changes (`MemoryStore` for `standalone`, `RaftStore` for cluster nodes).

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use session_core::{Session, SessionError};
use session_raft::RaftNode;

/// Session key of the counter.
const COUNTER_KEY: &str = "counter";
/// Session key of the logged-in user's name.
const USER_KEY: &str = "user";

/// What backs this process's sessions.
pub(crate) enum Backend {
    /// One node, in-memory store.
    Memory,
    /// A Raft cluster member.
    Raft(Arc<RaftNode>),
}

/// Shared state of the handlers.
pub(crate) struct AppState {
    /// Human-readable name of this node ("node-2", "standalone").
    pub(crate) node_name: String,
    /// Store backing the sessions.
    pub(crate) backend: Backend,
    /// Renders `/metrics`.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// Whether `/cluster/status` answers on this (application) port.
    pub(crate) public_status: bool,
    /// `demo_requests_total` by route.
    requests: RouteCounters,
}

/// `demo_requests_total{route}` handles, made once: a `counter!` in the
/// handler looks its key up in the recorder's registry on every request.
struct RouteCounters {
    ceiling: metrics::Counter,
    counter_get: metrics::Counter,
    counter_post: metrics::Counter,
    login: metrics::Counter,
    logout: metrics::Counter,
}

impl RouteCounters {
    fn new() -> Self {
        let route = |name: &'static str| metrics::counter!("demo_requests_total", "route" => name);
        Self {
            ceiling: route("counter_ceiling"),
            counter_get: route("counter_get"),
            counter_post: route("counter_post"),
            login: route("login"),
            logout: route("logout"),
        }
    }
}

/// `GET/POST /api/counter` answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CounterView {
    /// This session's counter.
    pub(crate) count: u64,
    /// Logged-in user, if any.
    pub(crate) user: Option<String>,
    /// The node that served the request.
    pub(crate) node: String,
    /// The current leader's id, if known.
    pub(crate) leader: Option<u64>,
    /// The mesh that owns the session, if it has an id and meshes are in use.
    pub(crate) session_mesh: Option<String>,
    /// The mesh of the node that served the request.
    pub(crate) node_mesh: Option<String>,
}

/// Builds the app router around `state`; the session layer is added by the caller.
pub(crate) fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/counter", get(read_counter).post(increment_counter))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/cluster/status", get(cluster_status))
        .with_state(state)
}

/// The same `/api/counter` shape with no session at all: the benchmark ceiling.
pub(crate) fn ceiling_routes(state: Arc<AppState>) -> Router {
    async fn counter(State(state): State<Arc<AppState>>) -> Json<CounterView> {
        // Counted like the session handlers, so the only difference the
        // benchmark sees is the session itself.
        state.requests.ceiling.increment(1);
        Json(CounterView {
            count: 0,
            user: None,
            node: state.node_name.clone(),
            leader: None,
            session_mesh: None,
            node_mesh: None,
        })
    }
    Router::new()
        .route("/api/counter", get(counter).post(counter))
        .route("/healthz", get(healthz))
        .with_state(state)
}

impl AppState {
    /// The handlers' state. `metrics` is the installed recorder's handle:
    /// taking it here means the recorder is installed before the counters
    /// are made (a handle made before that counts into nothing).
    pub(crate) fn new(
        node_name: String,
        backend: Backend,
        metrics: Option<PrometheusHandle>,
        public_status: bool,
    ) -> Self {
        Self {
            node_name,
            backend,
            metrics,
            public_status,
            requests: RouteCounters::new(),
        }
    }

    fn leader(&self) -> Option<u64> {
        match &self.backend {
            Backend::Memory => None,
            Backend::Raft(node) => node.leader_id(),
        }
    }

    fn node_mesh(&self) -> Option<String> {
        match &self.backend {
            Backend::Memory => None,
            // Not `status()`: that builds the whole member list, per request.
            Backend::Raft(node) => node.mesh().map(|m| m.to_string()),
        }
    }

    async fn view(&self, session: &Session) -> Result<CounterView, SessionError> {
        let node_mesh = self.node_mesh();
        // Load first: `id()` is `None` until the session is loaded, and a GET
        // reaches here unloaded (a session of another mesh would otherwise be
        // shown with this node's mesh).
        let empty = session.is_empty().await;
        let session_mesh = match session.id() {
            Some(id) => id.mesh().map(|m| m.to_string()),
            // A new session gets its id when the layer saves it, after this
            // handler; that id is minted by this node's store, so it will
            // carry this node's mesh. An empty new session is never saved.
            None if !empty => node_mesh.clone(),
            None => None,
        };
        Ok(CounterView {
            count: session.get::<u64>(COUNTER_KEY).await?.unwrap_or(0),
            user: session.get::<String>(USER_KEY).await?,
            node: self.node_name.clone(),
            leader: self.leader(),
            session_mesh,
            node_mesh,
        })
    }
}

async fn page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(include_str!("page.html")),
    )
}

async fn read_counter(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Json<CounterView>, SessionError> {
    state.requests.counter_get.increment(1);
    Ok(Json(state.view(&session).await?))
}

async fn increment_counter(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Json<CounterView>, SessionError> {
    state.requests.counter_post.increment(1);
    // Plain read-modify-write, as session code usually is: two *concurrent*
    // increments of one session may both write N + 1 (last writer wins per
    // key). A handler that must not lose such an update calls
    // `session.expect_unchanged()` and gets 409 on a conflict instead.
    let count = session.get::<u64>(COUNTER_KEY).await?.unwrap_or(0) + 1;
    session.insert(COUNTER_KEY, count).await?;
    Ok(Json(state.view(&session).await?))
}

/// Login form.
#[derive(Debug, Deserialize)]
struct LoginForm {
    /// Name to log in as.
    user: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Result<Response, SessionError> {
    state.requests.login.increment(1);
    let user = form.user.trim();
    if user.is_empty() || user.len() > 64 {
        return Ok((StatusCode::BAD_REQUEST, "user must be 1-64 characters").into_response());
    }
    session.insert(USER_KEY, user.to_owned()).await?;
    // A new id on privilege change, so an id seen before login is worthless after it.
    session.cycle_id().await?;
    Ok(Redirect::to("/").into_response())
}

async fn logout(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, SessionError> {
    state.requests.logout.increment(1);
    session.destroy().await?;
    Ok(Redirect::to("/").into_response())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match &state.backend {
        Backend::Memory => (StatusCode::OK, "ready").into_response(),
        Backend::Raft(node) => {
            let status = node.status();
            let caught_up = status.applied_index >= status.committed_index;
            if status.leader_id.is_some() && caught_up {
                (StatusCode::OK, "ready").into_response()
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no leader or not caught up",
                )
                    .into_response()
            }
        }
    }
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics disabled").into_response();
    };
    if let Backend::Raft(node) = &state.backend {
        crate::telemetry::record_cluster_gauges(&node.status());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

async fn cluster_status(State(state): State<Arc<AppState>>) -> Response {
    if !state.public_status {
        return (
            StatusCode::NOT_FOUND,
            "cluster status is not served on the application port (--public-status); \
             use `demo-app admin status` on the cluster port",
        )
            .into_response();
    }
    match &state.backend {
        Backend::Memory => Json(serde_json::json!({
            "node": state.node_name,
            "mode": "standalone",
            "members": [],
        }))
        .into_response(),
        Backend::Raft(node) => {
            let mut value = serde_json::to_value(node.status()).unwrap_or_default();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("node".into(), state.node_name.clone().into());
                obj.insert("mode".into(), "cluster".into());
            }
            Json(value).into_response()
        }
    }
}
