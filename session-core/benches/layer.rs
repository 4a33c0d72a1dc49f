//! Cost of the session layer: the same handler (a) with no layer, (b) behind
//! `SessionLayer` + `MemoryStore` reading an existing session, (c) writing it.
//!
//! Run: `cargo bench -p session-core --bench layer -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use axum::body::Body;
use axum::http::Request;
use axum::routing::{get, post};
use axum::Router;
use criterion::{criterion_main, Criterion};
use session_core::{Key, MemoryStore, Session, SessionLayer};
use tower::ServiceExt as _;

async fn plain() -> &'static str {
    "hello"
}

async fn read(session: Session) -> String {
    let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0);
    n.to_string()
}

async fn write(session: Session) -> &'static str {
    let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0);
    session.insert("n", n + 1).await.ok();
    "ok"
}

fn request(method: &str, uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder.body(Body::empty()).unwrap()
}

fn layer_bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare = Router::new().route("/read", get(plain));
    let with_sessions = runtime.block_on(async {
        Router::new()
            .route("/read", get(read))
            .route("/write", post(write))
            .layer(SessionLayer::new(MemoryStore::default(), Key::generate()).with_secure(false))
    });
    // A session that exists, and the cookie naming it.
    let cookie = runtime.block_on(async {
        let response = with_sessions
            .clone()
            .oneshot(request("POST", "/write", None))
            .await
            .unwrap();
        let set = response.headers()["set-cookie"].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    });

    let mut group = c.benchmark_group("layer");
    group.bench_function("a_no_layer", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                bare.clone()
                    .oneshot(request("GET", "/read", None))
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("b_read_existing_session", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                with_sessions
                    .clone()
                    .oneshot(request("GET", "/read", Some(&cookie)))
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("c_write_session", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                with_sessions
                    .clone()
                    .oneshot(request("POST", "/write", Some(&cookie)))
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::layer_bench);
}
criterion_main!(group::benches);
