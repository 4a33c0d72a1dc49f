//! The benchmark's peer: what a user would pick instead of raft-sessions.
//!
//! `bench/run.sh` compares our store against the usual choice for axum,
//! tower-sessions 0.14 with its Redis store, behind the same two handlers as
//! the demo app (`GET /api/counter` reads the session's counter, `POST`
//! increments and saves it, creating the session and its cookie on the first
//! POST) and with the same JSON shape (`CounterView` in demo-app/src/app.rs).
//! The cookie is signed, named `sid`, expires after 30 minutes of inactivity
//! and is not `Secure` (plain HTTP on loopback), as in `demo-app standalone
//! --insecure-cookies`. `--ceiling` serves the same routes with no session
//! layer, so the peer's own ceiling is measured in the same run.
//!
//! ```text
//! peer --listen 127.0.0.1:3950 --redis redis://127.0.0.1:6390 [--ceiling] [--pool N]
//! ```

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_sessions::cookie::{time::Duration, Key};
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;

/// Session key of the counter (as in the demo app).
const COUNTER_KEY: &str = "counter";
/// Session key of the logged-in user's name (as in the demo app).
const USER_KEY: &str = "user";
/// Shown as `node` in every answer.
const NODE: &str = "peer";

/// `GET/POST /api/counter` answer: the demo app's `CounterView`.
#[derive(Serialize)]
struct CounterView {
    count: u64,
    user: Option<String>,
    node: &'static str,
    leader: Option<u64>,
    session_mesh: Option<String>,
    node_mesh: Option<String>,
}

impl CounterView {
    fn new(count: u64, user: Option<String>) -> Self {
        Self {
            count,
            user,
            node: NODE,
            leader: None,
            session_mesh: None,
            node_mesh: None,
        }
    }
}

type Answer = Result<Json<CounterView>, (StatusCode, String)>;

fn internal(e: tower_sessions::session::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn read_counter(session: Session) -> Answer {
    let count = session.get::<u64>(COUNTER_KEY).await.map_err(internal)?;
    let user = session.get::<String>(USER_KEY).await.map_err(internal)?;
    Ok(Json(CounterView::new(count.unwrap_or(0), user)))
}

async fn increment_counter(session: Session) -> Answer {
    // The same plain read-modify-write as the demo's handler.
    let count = session.get::<u64>(COUNTER_KEY).await.map_err(internal)?;
    let count = count.unwrap_or(0) + 1;
    session.insert(COUNTER_KEY, count).await.map_err(internal)?;
    let user = session.get::<String>(USER_KEY).await.map_err(internal)?;
    Ok(Json(CounterView::new(count, user)))
}

async fn ceiling_counter() -> Json<CounterView> {
    Json(CounterView::new(0, None))
}

async fn healthz() -> &'static str {
    "ok"
}

struct Args {
    listen: SocketAddr,
    redis: String,
    ceiling: bool,
    pool: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut redis = None;
    let mut ceiling = false;
    let mut pool = 6; // tower-sessions-redis-store's own example
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--redis" => redis = Some(value()?),
            "--pool" => pool = value()?.parse().map_err(|e| format!("--pool: {e}"))?,
            "--ceiling" => ceiling = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen ADDR is required")?,
        redis: redis.unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
        ceiling,
        pool,
    })
}

/// The allocator demo-app uses (see its main.rs), so that the comparison is
/// of the session layers and stores, not of two allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| {
        format!("{e}\nusage: peer --listen ADDR --redis redis://HOST:PORT [--ceiling] [--pool N]")
    })?;
    let app = if args.ceiling {
        Router::new().route("/api/counter", get(ceiling_counter).post(ceiling_counter))
    } else {
        let pool = Pool::new(Config::from_url(&args.redis)?, None, None, None, args.pool)?;
        pool.connect();
        pool.wait_for_connect().await?;
        let sessions = SessionManagerLayer::new(RedisStore::new(pool))
            .with_name("sid")
            .with_secure(false)
            .with_expiry(Expiry::OnInactivity(Duration::minutes(30)))
            .with_signed(Key::generate());
        Router::new()
            .route("/api/counter", get(read_counter).post(increment_counter))
            .layer(sessions)
    }
    .route("/healthz", get(healthz));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
