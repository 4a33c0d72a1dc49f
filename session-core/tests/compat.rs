//! The behaviour a tower-sessions user relies on, through the real layer:
//! browser-session cookies, no save on 5xx, emptied sessions removed, bad
//! cookies cleared, equal inserts no change, `id()` around `cycle_id`,
//! always-save, and the expiry calls.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::cookie_pair;
use common::harness::{is_removal, set_cookie, Harness};
use session_core::{ConsistencyToken, Expiry, Session, SessionId, SessionStore};

/// A session holding `n = 1`; returns its cookie and id.
async fn session_with_n(harness: &Harness) -> (String, SessionId) {
    let response = harness
        .call(None, |session: Session| async move {
            session.insert("n", 1u64).await.unwrap();
            session.save().await.unwrap();
            session.id().unwrap().to_string()
        })
        .await;
    let cookie = cookie_pair(&response).unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let id = SessionId::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    (cookie, id)
}

async fn stored(
    harness: &Harness,
    id: &SessionId,
) -> Option<std::sync::Arc<session_core::SessionRecord>> {
    let now = harness.clock.now();
    match harness.store.load(id, ConsistencyToken::NONE, now).await {
        Ok(record) => record,
        // Deleted or moved moments ago: not stored.
        Err(session_core::StoreError::Superseded) => None,
        Err(error) => panic!("load failed: {error}"),
    }
}

#[tokio::test]
async fn on_session_end_cookies_have_no_max_age_but_idle_sessions_still_end() {
    let harness = Harness::new(|l| l.with_expiry(Expiry::OnSessionEnd));
    let (cookie, id) = session_with_n(&harness).await;
    let response = harness
        .call(Some(&cookie), |s: Session| async move {
            s.insert("n", 2u64).await.unwrap();
        })
        .await;
    let set = set_cookie(&response).unwrap();
    assert!(!set.contains("Max-Age"), "{set}");
    assert!(!set.contains("Expires"), "{set}");
    harness.clock.advance(Duration::from_secs(101));
    assert!(
        stored(&harness, &id).await.is_none(),
        "idle timeout still ends it"
    );

    // Per session, as tower-sessions' set_expiry(Some(OnSessionEnd)).
    let harness = Harness::new(|l| l);
    let response = harness
        .call(None, |s: Session| async move {
            s.insert("n", 1u64).await.unwrap();
            s.set_expiry(Some(Expiry::OnSessionEnd));
            assert_eq!(s.expiry(), Some(Expiry::OnSessionEnd));
        })
        .await;
    assert!(!set_cookie(&response).unwrap().contains("Max-Age"));
}

#[tokio::test]
async fn a_5xx_answer_saves_nothing_unless_the_handler_saved() {
    let harness = Harness::new(|l| l);
    let failing = |session: Session| async move {
        session.insert("n", 99u64).await.unwrap();
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let response = harness.call(None, failing).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookie(&response).is_none());
    assert!(harness.store.inner.is_empty(), "a 5xx created a session");

    let (cookie, id) = session_with_n(&harness).await;
    let response = harness.call(Some(&cookie), failing).await;
    assert!(set_cookie(&response).is_none());
    assert_eq!(
        stored(&harness, &id).await.unwrap().data.get("n"),
        Some(&b"1"[..])
    );

    // The app asks for the save by saving before it answers.
    let response = harness
        .call(Some(&cookie), |session: Session| async move {
            session.insert("n", 7u64).await.unwrap();
            session.save().await.unwrap();
            StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    assert!(
        set_cookie(&response).is_some(),
        "a saved write's cookie is sent"
    );
    assert_eq!(
        stored(&harness, &id).await.unwrap().data.get("n"),
        Some(&b"7"[..])
    );
}

#[tokio::test]
async fn an_emptied_session_is_deleted_and_its_cookie_removed() {
    let harness = Harness::new(|l| l);
    for empty_it in [0, 1] {
        let (cookie, id) = session_with_n(&harness).await;
        let response = harness
            .call(Some(&cookie), move |session: Session| async move {
                if empty_it == 0 {
                    session.clear().await;
                } else {
                    session.remove::<u64>("n").await.unwrap();
                }
                assert!(session.is_empty().await);
            })
            .await;
        assert!(is_removal(&response), "{:?}", set_cookie(&response));
        assert!(
            stored(&harness, &id).await.is_none(),
            "an empty session was kept"
        );
    }
    // Emptied and filled again in one request: kept.
    let (cookie, id) = session_with_n(&harness).await;
    harness
        .call(Some(&cookie), |session: Session| async move {
            session.clear().await;
            session.insert("m", 2u64).await.unwrap();
        })
        .await;
    assert!(stored(&harness, &id).await.unwrap().data.contains_key("m"));
}

#[tokio::test]
async fn a_malformed_or_forged_cookie_is_answered_with_a_removal() {
    let harness = Harness::new(|l| l);
    let (good, id) = session_with_n(&harness).await;
    let forged = common::signed_cookie(&session_core::Key::generate(), &format!("{id}~1"));
    for bad in [
        "sid=garbage".to_owned(),
        format!("sid={id}~1"),
        forged,
        format!("{good}x"),
    ] {
        let response = harness
            .call(Some(&bad), |s: Session| async move {
                assert_eq!(s.get::<u64>("n").await.unwrap(), None);
            })
            .await;
        assert!(is_removal(&response), "{bad}: {:?}", set_cookie(&response));
    }
    // A good cookie, and a good one whose session is gone (maybe rotated by
    // a login in another tab), are left alone by a read.
    let unknown = common::signed_cookie(
        &harness.key,
        &SessionId::generate(None).unwrap().to_string(),
    );
    for fine in [good, unknown] {
        let response = harness
            .call(Some(&fine), |s: Session| async move {
                s.get::<u64>("n").await.unwrap();
            })
            .await;
        assert!(set_cookie(&response).is_none(), "{fine}");
    }
}

#[tokio::test]
async fn inserting_the_value_already_stored_is_no_change() {
    let harness = Harness::new(|l| l);
    let (cookie, id) = session_with_n(&harness).await;
    let version = stored(&harness, &id).await.unwrap().version;
    let response = harness
        .call(Some(&cookie), |session: Session| async move {
            session.insert("n", 1u64).await.unwrap();
            assert!(!session.is_modified());
            session.insert("n", 2u64).await.unwrap();
            assert!(session.is_modified());
            session.insert("n", 1u64).await.unwrap();
        })
        .await;
    // Set back to what was stored: still a change against the pending 2,
    // so it is written; the check is against what the handler sees.
    assert!(set_cookie(&response).is_some());
    let version_after = stored(&harness, &id).await.unwrap().version;
    let response = harness
        .call(Some(&cookie), |session: Session| async move {
            session.insert("n", 1u64).await.unwrap();
        })
        .await;
    assert!(
        set_cookie(&response).is_none(),
        "an unchanged insert set a cookie"
    );
    assert_eq!(stored(&harness, &id).await.unwrap().version, version_after);
    assert!(version_after > version);
}

#[tokio::test]
async fn id_is_none_between_cycle_id_and_the_save_then_the_new_id() {
    let harness = Harness::new(|l| l);
    let (cookie, old) = session_with_n(&harness).await;
    let response = harness
        .call(Some(&cookie), move |session: Session| async move {
            session.load().await.unwrap();
            assert_eq!(session.id(), Some(old));
            session.cycle_id().await.unwrap();
            assert_eq!(session.id(), None, "id() still shows the old id");
            session.save().await.unwrap();
            let new = session.id().expect("saved: the new id");
            assert_ne!(new, old);
        })
        .await;
    assert!(set_cookie(&response).is_some());
    assert!(stored(&harness, &old).await.is_none());
}

#[tokio::test]
async fn always_save_renews_every_request_that_carries_a_session() {
    let harness = Harness::new(|l| l.with_always_save(true));
    let (cookie, id) = session_with_n(&harness).await;
    let before = stored(&harness, &id).await.unwrap().expires_at;
    harness.clock.advance(Duration::from_secs(1));
    // The handler does not even touch the session.
    let response = harness.call(Some(&cookie), |_: Session| async {}).await;
    assert!(set_cookie(&response).is_some());
    assert_eq!(
        stored(&harness, &id).await.unwrap().expires_at,
        before + 1_000
    );

    // Without it, the same request writes nothing.
    let harness = Harness::new(|l| l);
    let (cookie, id) = session_with_n(&harness).await;
    let before = stored(&harness, &id).await.unwrap().expires_at;
    harness.clock.advance(Duration::from_secs(1));
    let response = harness.call(Some(&cookie), |_: Session| async {}).await;
    assert!(set_cookie(&response).is_none());
    assert_eq!(stored(&harness, &id).await.unwrap().expires_at, before);
}

#[tokio::test]
async fn expiry_calls_tell_when_the_session_ends() {
    let harness = Harness::new(|l| l);
    let start = time::OffsetDateTime::from_unix_timestamp(common::START as i64 / 1000).unwrap();
    let (cookie, id) = session_with_n(&harness).await;
    let at = start + time::Duration::hours(1);
    harness
        .call(Some(&cookie), move |session: Session| async move {
            session.load().await.unwrap();
            assert_eq!(session.expiry(), None);
            assert_eq!(session.expiry_date(), start + time::Duration::seconds(100));
            assert_eq!(session.expiry_age(), time::Duration::seconds(100));
            session.set_expiry(Some(Expiry::AtDateTime(at)));
            assert_eq!(session.expiry(), Some(Expiry::AtDateTime(at)));
            assert_eq!(session.expiry_date(), at);
            assert_eq!(session.expiry_age(), time::Duration::hours(1));
        })
        .await;
    assert_eq!(
        stored(&harness, &id).await.unwrap().expires_at,
        common::START + 3_600_000
    );

    // The layer's AtDateTime caps every session.
    let harness = Harness::new(|l| l);
    let layer_harness = Harness {
        configure: |l| {
            let start = time::OffsetDateTime::from_unix_timestamp(common::START as i64 / 1000);
            l.with_expiry(Expiry::AtDateTime(
                start.unwrap() + time::Duration::seconds(30),
            ))
        },
        ..harness
    };
    let (_, id) = session_with_n(&layer_harness).await;
    assert_eq!(
        stored(&layer_harness, &id).await.unwrap().expires_at,
        common::START + 30_000
    );
}

#[tokio::test]
async fn flush_and_delete_end_the_session_and_remove_the_cookie() {
    let harness = Harness::new(|l| l);
    for use_delete in [false, true] {
        let (cookie, id) = session_with_n(&harness).await;
        let response = harness
            .call(Some(&cookie), move |session: Session| async move {
                if use_delete {
                    session.delete().await.unwrap();
                } else {
                    session.flush().await.unwrap();
                }
                assert!(session.is_empty().await);
                assert!(session.is_modified());
            })
            .await;
        assert!(is_removal(&response));
        assert!(stored(&harness, &id).await.is_none());
    }
}
