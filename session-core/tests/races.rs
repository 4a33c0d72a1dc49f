//! Requests that race a login or logout, made deterministic with `Notify`:
//! a request whose session was rotated or deleted while it ran must not
//! overwrite the browser's newer cookie (no removal, no unrelated fresh
//! session); and a session that is not found drops the client's token.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::cookie_pair;
use common::harness::{request, set_cookie, Harness};
use session_core::{ConsistencyToken, Session, SessionError, SessionId, SessionStore, StoreError};
use tokio::sync::Notify;
use tower::ServiceExt as _;

/// What the slow request does after the login ran.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// Only reads (a renewal is due, so the layer writes one).
    Read,
    /// Writes a key.
    Write,
    /// Saves a key, sees the failure, writes again.
    SaveThenWrite,
}

/// A session (`n = 1`), then two requests with its cookie: a slow one that
/// loads and waits, and a login that rotates the id meanwhile. Returns the
/// slow request's response and the login's cookie.
async fn race(slow: Slow) -> (axum::http::Response<axum::body::Body>, String, Harness) {
    let harness = Harness::new(|l| l.with_renewal_share(0.0));
    let created = harness
        .call(None, |s: Session| async move {
            s.insert("n", 1u64).await.unwrap();
        })
        .await;
    let cookie = cookie_pair(&created).unwrap();
    harness.clock.advance(Duration::from_secs(1)); // a renewal is due

    let loaded = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let slow_router = harness.router({
        let (loaded, go) = (loaded.clone(), go.clone());
        move |session: Session| async move {
            session.get::<u64>("n").await.unwrap();
            loaded.notify_one();
            go.notified().await;
            match slow {
                Slow::Read => StatusCode::OK,
                Slow::Write => {
                    session.insert("last_seen", 5u64).await.unwrap();
                    StatusCode::OK
                }
                Slow::SaveThenWrite => {
                    session.insert("last_seen", 5u64).await.unwrap();
                    let saved = session.save().await;
                    assert!(
                        matches!(saved, Err(SessionError::Store(StoreError::NotFound))),
                        "{saved:?}"
                    );
                    session.insert("again", 6u64).await.unwrap();
                    StatusCode::OK
                }
            }
        }
    });
    let slow_request = tokio::spawn(slow_router.oneshot(request(Some(&cookie))));
    loaded.notified().await;

    let login = harness
        .call(Some(&cookie), |session: Session| async move {
            session.insert("user", "alice").await.unwrap();
            session.cycle_id().await.unwrap();
        })
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let logged_in = cookie_pair(&login).expect("login sets the new cookie");
    go.notify_one();
    let response = slow_request.await.unwrap().unwrap();
    (response, logged_in, harness)
}

#[tokio::test]
async fn a_request_racing_a_login_leaves_the_new_cookie_alone() {
    for slow in [Slow::Read, Slow::Write, Slow::SaveThenWrite] {
        let (response, logged_in, harness) = race(slow).await;
        assert!(
            set_cookie(&response).is_none(),
            "{slow:?}: the racing request sent {:?}, logging the user out",
            set_cookie(&response)
        );
        let expected = match slow {
            Slow::Read => StatusCode::OK,
            // Its writes had nowhere to go: said so, not silently dropped.
            Slow::Write | Slow::SaveThenWrite => StatusCode::CONFLICT,
        };
        assert_eq!(response.status(), expected, "{slow:?}");
        assert_eq!(
            harness.store.inner.len(),
            1,
            "{slow:?}: an unrelated session was created"
        );
        // The browser's newest cookie still names the logged-in session.
        harness
            .call(Some(&logged_in), |s: Session| async move {
                assert_eq!(
                    s.get::<String>("user").await.unwrap().as_deref(),
                    Some("alice")
                );
            })
            .await;
    }
}

/// The token of a `sid=` cookie pair: `(history, index)`.
fn token_of(pair: &str) -> (u64, u64) {
    let value = pair.strip_prefix("sid=").unwrap();
    let decoded = cookie::Cookie::parse_encoded(format!("sid={value}")).unwrap();
    let token = decoded.value().split('~').nth(1).unwrap().to_owned();
    let (index, history) = token.split_once('.').unwrap();
    (
        u64::from_str_radix(history, 16).unwrap(),
        index.parse().unwrap(),
    )
}

#[tokio::test]
async fn a_session_not_found_drops_the_clients_token() {
    let harness = Harness::new(|l| l);
    // A signed cookie naming a session that does not exist, with a token of
    // some other history far ahead.
    let gone = SessionId::generate(None).unwrap();
    let cookie = common::signed_cookie(&harness.key, &format!("{gone}~9000.abc"));
    let response = harness
        .call(Some(&cookie), |s: Session| async move {
            assert_eq!(s.get::<u64>("n").await.unwrap(), None);
            s.insert("n", 1u64).await.unwrap();
        })
        .await;
    let fresh = cookie_pair(&response).unwrap();
    let (history, index) = token_of(&fresh);
    assert_eq!(
        history, 0,
        "the old history was carried into the new session"
    );
    assert!(
        index < 9000,
        "the old index was carried into the new session"
    );

    // Destroy then insert in one request: the new session's token is its
    // own write's, not the destroy's.
    let response = harness
        .call(Some(&fresh), |s: Session| async move {
            s.destroy().await.unwrap();
            s.insert("n", 2u64).await.unwrap();
        })
        .await;
    let next = cookie_pair(&response).unwrap();
    let new_id = harness
        .call(Some(&next), |s: Session| async move {
            s.load().await.unwrap();
            s.id().unwrap().to_string()
        })
        .await;
    let body = http_body_util::BodyExt::collect(new_id.into_body())
        .await
        .unwrap()
        .to_bytes();
    let id = SessionId::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    let record = harness
        .store
        .load(&id, ConsistencyToken::NONE, harness.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token_of(&next), (0, record.version));
}

/// A request the browser sent before the login's answer came back, but
/// that reaches the store only after the rotation: its cookie names an id
/// that moved a moment ago. It must not log the user out either.
#[tokio::test]
async fn a_request_arriving_just_after_a_login_or_logout_leaves_the_cookie_alone() {
    for logout in [false, true] {
        let harness = Harness::new(|l| l);
        let created = harness
            .call(None, |s: Session| async move {
                s.insert("n", 1u64).await.unwrap();
            })
            .await;
        let old = cookie_pair(&created).unwrap();
        let changed = harness
            .call(Some(&old), move |s: Session| async move {
                if logout {
                    s.destroy().await.unwrap();
                } else {
                    s.insert("user", "alice").await.unwrap();
                    s.cycle_id().await.unwrap();
                }
            })
            .await;
        assert_eq!(changed.status(), StatusCode::OK);
        let sessions_after = harness.store.inner.len();

        // With the old cookie: a read, then a write.
        let read = harness
            .call(Some(&old), |s: Session| async move {
                assert_eq!(s.get::<u64>("n").await.unwrap(), None);
            })
            .await;
        assert_eq!(read.status(), StatusCode::OK, "logout {logout}");
        assert!(
            set_cookie(&read).is_none(),
            "logout {logout}: {:?}",
            set_cookie(&read)
        );
        let write = harness
            .call(Some(&old), |s: Session| async move {
                s.insert("cart", 3u64).await.unwrap();
            })
            .await;
        assert_eq!(write.status(), StatusCode::CONFLICT, "logout {logout}");
        assert!(
            set_cookie(&write).is_none(),
            "logout {logout}: the late request sent {:?}",
            set_cookie(&write)
        );
        assert_eq!(
            harness.store.inner.len(),
            sessions_after,
            "logout {logout}: the late request created a session"
        );
    }
}
