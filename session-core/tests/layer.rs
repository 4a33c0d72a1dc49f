//! Layer tests through `tower::ServiceExt::oneshot` on an axum router.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use common::{app, cookie_pair, send, signed_cookie, TestApp, START};
use http_body_util::BodyExt as _;
use session_core::{ConsistencyToken, MeshTag, Session, SessionId, SessionStore};
use tower::ServiceExt as _;

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Creates a session with `x = 1` and returns its cookie and id.
async fn logged_in(app: &TestApp) -> (String, SessionId) {
    let response = send(app, "POST", "/set/x/1", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_pair(&response).expect("a new session sets a cookie");
    let id = send(app, "GET", "/id", Some(&cookie)).await;
    let id = SessionId::parse(&text(id).await).unwrap();
    (cookie, id)
}

#[tokio::test]
async fn untouched_or_read_only_requests_set_no_cookie_and_store_nothing() {
    let app = app(|l| l);
    let response = send(&app, "GET", "/noop", None).await;
    assert!(response.headers().get("set-cookie").is_none());
    let response = send(&app, "GET", "/get/x", None).await;
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(text(response).await, "none");
    assert!(
        app.store.inner.is_empty(),
        "a read must not create a session"
    );

    let (cookie, _) = logged_in(&app).await;
    let response = send(&app, "GET", "/get/x", Some(&cookie)).await;
    assert!(
        response.headers().get("set-cookie").is_none(),
        "a read of a fresh session writes nothing"
    );
    assert_eq!(text(response).await, "1");
}

#[tokio::test]
async fn cookie_has_safe_attributes_and_max_age_from_expiry() {
    let app = app(|l| l.with_secure(true));
    let response = send(&app, "POST", "/set/x/1", None).await;
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=100",
    ] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
}

#[tokio::test]
async fn bad_cookies_get_a_fresh_session_never_their_id() {
    let app = app(|l| l);
    let (good, id) = logged_in(&app).await;
    let value = good.strip_prefix("sid=").unwrap();
    // Flip one character of the signed part.
    let mut tampered: Vec<char> = value.chars().collect();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == 'A' { 'B' } else { 'A' };
    let tampered = format!("sid={}", tampered.into_iter().collect::<String>());
    let unknown = SessionId::generate(None).unwrap();
    let forged_unknown = signed_cookie(&app.key, &format!("{unknown}~5"));
    let signed_other_key = signed_cookie(&session_core::Key::generate(), &format!("{id}~1"));
    for bad in [
        tampered,
        format!("sid={id}~1"),
        format!("sid={id}"),
        "sid=%%%garbage".to_owned(),
        "sid=".to_owned(),
        forged_unknown,
        signed_other_key,
    ] {
        let response = send(&app, "POST", "/login", Some(&bad)).await;
        assert_eq!(response.status(), StatusCode::OK, "{bad}");
        let new_id = text(response).await;
        assert_ne!(new_id, id.to_string(), "{bad} kept the old id");
        assert_ne!(new_id, unknown.to_string(), "{bad} adopted the client's id");
        assert!(SessionId::parse(&new_id).is_ok());
    }
    assert!(app
        .store
        .load(&unknown, ConsistencyToken::NONE, START)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn cycle_id_moves_data_and_old_id_is_dead() {
    let app = app(|l| l);
    let (old_cookie, old_id) = logged_in(&app).await;
    let response = send(&app, "POST", "/login", Some(&old_cookie)).await;
    let new_cookie = cookie_pair(&response).unwrap();
    let new_id = text(response).await;
    assert_ne!(new_id, old_id.to_string());
    assert_eq!(
        text(send(&app, "GET", "/get/x", Some(&new_cookie)).await).await,
        "1"
    );
    assert_eq!(
        text(send(&app, "GET", "/get/user", Some(&new_cookie)).await).await,
        "alice"
    );
    assert_eq!(
        text(send(&app, "GET", "/get/x", Some(&old_cookie)).await).await,
        "none"
    );
}

#[tokio::test]
async fn new_ids_carry_the_node_mesh_and_rotated_ids_keep_the_session_mesh() {
    let app = app(|l| l);
    *app.store.mesh.lock() = Some(MeshTag::new("a").unwrap());
    let (cookie, id) = logged_in(&app).await;
    assert_eq!(id.mesh(), Some(MeshTag::new("a").unwrap()));

    // A node of mesh b serves the login: the rotated id must still route to
    // mesh a, which holds the data.
    *app.store.mesh.lock() = Some(MeshTag::new("b").unwrap());
    let response = send(&app, "POST", "/login", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = cookie_pair(&response).expect("login sets a new cookie");
    let new_id =
        SessionId::parse(&text(send(&app, "GET", "/id", Some(&rotated)).await).await).unwrap();
    assert_ne!(new_id, id);
    assert_eq!(new_id.mesh(), Some(MeshTag::new("a").unwrap()));

    // A brand-new session made on the mesh-b node is mesh b's.
    let (_, fresh) = logged_in(&app).await;
    assert_eq!(fresh.mesh(), Some(MeshTag::new("b").unwrap()));
}

#[tokio::test]
async fn destroy_removes_cookie_and_data() {
    let app = app(|l| l);
    let (cookie, id) = logged_in(&app).await;
    let response = send(&app, "POST", "/logout", Some(&cookie)).await;
    let set = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("sid=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    // Gone, and (moments after the logout) said to be: see Tombstones.
    assert_eq!(
        app.store.load(&id, ConsistencyToken::NONE, START).await,
        Err(session_core::StoreError::Superseded)
    );
    assert_eq!(
        text(send(&app, "GET", "/get/x", Some(&cookie)).await).await,
        "none"
    );
}

#[tokio::test]
async fn oversized_insert_is_refused_and_nothing_written() {
    let app = app(|l| l.with_size_limit(64 * 1024));
    let response = send(&app, "POST", "/big", None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The handler's smaller insert still stands, the big one left no trace.
    let cookie = cookie_pair(&response).unwrap();
    let id = SessionId::parse(&text(send(&app, "GET", "/id", Some(&cookie)).await).await).unwrap();
    let record = app
        .store
        .load(&id, ConsistencyToken::NONE, START)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.data.keys().collect::<Vec<_>>(), vec!["small"]);
}

#[tokio::test]
async fn unavailable_store_on_save_is_503_with_retry_after() {
    let app = app(|l| l);
    let (cookie, _) = logged_in(&app).await;
    app.store.fail_apply.store(true, Ordering::SeqCst);
    for cookie in [Some(cookie.as_str()), None] {
        let response = send(&app, "POST", "/set/x/2", cookie).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "2");
        assert!(response.headers().get("set-cookie").is_none());
    }
    app.store.fail_apply.store(false, Ordering::SeqCst);
    assert_eq!(
        text(send(&app, "GET", "/get/x", Some(&cookie)).await).await,
        "1"
    );
}

#[tokio::test]
async fn unavailable_store_on_load_reaches_the_handler_as_503() {
    let app = app(|l| l);
    let (cookie, _) = logged_in(&app).await;
    app.store.fail_load.store(true, Ordering::SeqCst);
    let response = send(&app, "GET", "/get/x", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2");
}

#[tokio::test]
async fn sliding_renewal_waits_for_the_configured_share() {
    let app = app(|l| l.with_renewal_share(0.25)); // idle 100 s: renew after 25 s
    let (cookie, id) = logged_in(&app).await;
    let expires = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            store
                .load(&id, ConsistencyToken::NONE, START)
                .await
                .unwrap()
                .unwrap()
                .expires_at
        }
    };
    assert_eq!(expires(&app).await, START + 100_000);
    app.clock.advance(Duration::from_secs(24));
    let response = send(&app, "GET", "/get/x", Some(&cookie)).await;
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(expires(&app).await, START + 100_000, "renewed too early");
    app.clock.advance(Duration::from_secs(1));
    let response = send(&app, "GET", "/get/x", Some(&cookie)).await;
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.contains("Max-Age=100"), "{set}");
    assert_eq!(expires(&app).await, START + 125_000);
    // Idle past the deadline: the session is gone.
    app.clock.advance(Duration::from_secs(101));
    assert_eq!(
        text(send(&app, "GET", "/get/x", Some(&cookie)).await).await,
        "none"
    );
}

#[tokio::test]
async fn absolute_lifetime_ends_an_active_session() {
    let app = app(|l| {
        l.with_absolute_lifetime(Duration::from_secs(150))
            .with_renewal_share(0.0)
    });
    let (cookie, _) = logged_in(&app).await;
    for _ in 0..7 {
        app.clock.advance(Duration::from_secs(20));
        assert_eq!(
            text(send(&app, "GET", "/get/x", Some(&cookie)).await).await,
            "1"
        );
    }
    app.clock.advance(Duration::from_secs(10)); // 150 s after creation
    assert_eq!(
        text(send(&app, "GET", "/get/x", Some(&cookie)).await).await,
        "none"
    );
}

#[tokio::test]
async fn compare_and_set_conflict_is_409_and_nothing_written() {
    let app = app(|l| l);
    let (cookie, id) = logged_in(&app).await;
    let response = send(&app, "POST", "/cas", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let record = app
        .store
        .load(&id, ConsistencyToken::NONE, START)
        .await
        .unwrap()
        .unwrap();
    assert!(record.data.contains_key("other"));
    assert!(
        !record.data.contains_key("n"),
        "conflicting write went through"
    );
}

#[tokio::test]
async fn header_mode_round_trips_without_cookies() {
    let app = app(|l| l.with_header(http::HeaderName::from_static("x-session-id")));
    let request = |value: Option<&str>, uri: &str, method: &str| {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(value) = value {
            request = request.header("x-session-id", value);
        }
        request.body(Body::empty()).unwrap()
    };
    let response = app
        .router
        .clone()
        .oneshot(request(Some(""), "/set/x/7", "POST"))
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    let value = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let response = app
        .router
        .clone()
        .oneshot(request(Some(&value), "/incr", "POST"))
        .await
        .unwrap();
    assert!(
        response.headers().get("set-cookie").is_none(),
        "header clients get no cookie"
    );
    let value = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let response = app
        .router
        .clone()
        .oneshot(request(Some(&value), "/get/x", "GET"))
        .await
        .unwrap();
    assert_eq!(text(response).await, "7");
}

#[tokio::test]
async fn header_mode_never_shows_a_cookie_client_its_value() {
    let app = app(|l| l.with_header(http::HeaderName::from_static("x-session-id")));
    let response = send(&app, "POST", "/set/x/7", None).await;
    assert!(
        response.headers().get("x-session-id").is_none(),
        "a browser's response carries the sealed value where scripts read it"
    );
    let cookie = cookie_pair(&response).expect("cookie clients get a cookie");
    let response = send(&app, "POST", "/incr", Some(&cookie)).await;
    assert!(response.headers().get("x-session-id").is_none());
    assert!(response.headers().get("set-cookie").is_some());
}

#[tokio::test]
async fn token_in_cookie_grows_with_writes() {
    let app = app(|l| l);
    let (mut cookie, _) = logged_in(&app).await;
    let token_of = |cookie: &str| -> u64 {
        let value = cookie.strip_prefix("sid=").unwrap();
        let decoded = cookie::Cookie::parse_encoded(format!("sid={value}")).unwrap();
        let token = decoded.value().rsplit('~').next().unwrap();
        // `<index>.<history in hex>`
        token.split('.').next().unwrap().parse().unwrap()
    };
    let mut last = token_of(&cookie);
    for _ in 0..3 {
        let response = send(&app, "POST", "/incr", Some(&cookie)).await;
        cookie = cookie_pair(&response).unwrap();
        let token = token_of(&cookie);
        assert!(token > last);
        last = token;
    }
}

#[tokio::test]
async fn extractor_without_layer_is_500_with_message() {
    let router: Router = Router::new().route("/", get(|_session: Session| async { "unreachable" }));
    let response = router
        .oneshot(Request::builder().uri("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(response).await.contains("SessionLayer"));
}
