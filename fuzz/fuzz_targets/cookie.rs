//! The session layer's cookie and session-header reading (the `<id>~<token>`
//! value, signed), through the public `SessionLayer` over a `MemoryStore`.
//!
//! Input: first byte picks the shape, the rest is split in two at a 0 byte
//! into the `cookie` header and the `x-session` header. Shape 1 puts a
//! valid signed cookie next to the fuzzed bytes, so that the verified path
//! (and the verified-value cache) is exercised too. Whatever comes in, the
//! request must get 200, and the session it sees must be the valid one or
//! none, never an id the input named.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use session_core::{Key, MemoryStore, Session, SessionId, SessionLayer};
use tower::{Layer as _, ServiceExt as _};

struct Setup {
    runtime: tokio::runtime::Runtime,
    layer: SessionLayer<std::sync::Arc<MemoryStore>>,
    /// `sid=<sealed>` of a session that exists.
    valid_cookie: String,
    valid_id: SessionId,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = std::sync::Arc::new(MemoryStore::default());
        let layer = SessionLayer::new(store, Key::generate())
            .with_header(HeaderName::from_static("x-session"));
        // One request that creates a session, to get a valid cookie.
        let (valid_cookie, valid_id) = runtime.block_on(async {
            let service = layer.layer(tower::service_fn(|request: Request<String>| async move {
                let session = request.extensions().get::<Session>().cloned().unwrap();
                session.insert("k", 1u8).await.unwrap();
                session.save().await.unwrap();
                let id = session.id().unwrap().to_string();
                Ok::<_, std::convert::Infallible>(Response::new(id))
            }));
            let response = service.oneshot(Request::new(String::new())).await.unwrap();
            let set = response.headers()["set-cookie"].to_str().unwrap().to_owned();
            let pair = set.split(';').next().unwrap().to_owned();
            (pair, SessionId::parse(response.body()).unwrap())
        });
        Setup {
            runtime,
            layer,
            valid_cookie,
            valid_id,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let (cookie, header) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut cookie = cookie.to_vec();
    if shape % 2 == 1 {
        let mut with_valid = setup.valid_cookie.clone().into_bytes();
        with_valid.extend_from_slice(b"; ");
        with_valid.extend_from_slice(&cookie);
        cookie = with_valid;
    }
    let mut request = Request::new(String::new());
    if let Ok(value) = HeaderValue::from_bytes(&cookie) {
        request.headers_mut().insert(http::header::COOKIE, value);
    }
    if let Ok(value) = HeaderValue::from_bytes(header) {
        request
            .headers_mut()
            .insert(HeaderName::from_static("x-session"), value);
    }
    let service = setup
        .layer
        .layer(tower::service_fn(|request: Request<String>| async move {
            let session = request.extensions().get::<Session>().cloned().unwrap();
            // Loads (if a cookie verified) but stores nothing, so the store
            // does not grow with the run.
            let _ = session.get::<u8>("k").await.unwrap();
            Ok::<_, std::convert::Infallible>(Response::new(
                session.id().map(|id| id.to_string()).unwrap_or_default(),
            ))
        }));
    let response = setup.runtime.block_on(service.oneshot(request)).unwrap();
    assert_eq!(response.status(), 200);
    if let Ok(seen) = SessionId::parse(response.body()) {
        assert_eq!(seen, setup.valid_id, "a session the server never made");
    }
});
