//! Tests of saving a session: failed saves keep their changes, untouched
//! sessions make no store call, tokens of gone sessions are dropped, a
//! rotation retries with every change, a too-large insert records nothing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::clock::Clock;
use crate::expiry::ExpiryPolicy;
use crate::session::Context;
use crate::store::testing::FlakyStore;
use crate::store::{ConsistencyToken, SessionStore};

fn session(store: Arc<FlakyStore>, incoming: Option<SessionId>) -> Session {
    let context = Context {
        store,
        clock: Clock::manual(1_000_000),
        expiry: ExpiryPolicy::new(Duration::from_secs(60), None, 0.25),
        size_limit: 1024,
        browser_session: false,
        always_save: false,
        metrics: Default::default(),
    };
    Session::new(
        Arc::new(context),
        incoming.map(|id| (id, ConsistencyToken::NONE)),
    )
}

#[tokio::test]
async fn failed_save_keeps_changes_for_the_next_attempt() {
    let store = Arc::new(FlakyStore::default());
    let first = session(store.clone(), None);
    first.insert("a", 1u32).await.unwrap();
    first.save().await.unwrap();
    let id = first.id().unwrap();

    let second = session(store.clone(), Some(id));
    second.insert("b", 2u32).await.unwrap();
    store.fail_apply.store(true, Ordering::SeqCst);
    let error = second.save().await.unwrap_err();
    assert_eq!(error.status(), 503);
    // Changed again while the store was down: both changes are kept.
    second.insert("c", 3u32).await.unwrap();
    assert_eq!(second.get::<u32>("b").await.unwrap(), Some(2));
    store.fail_apply.store(false, Ordering::SeqCst);
    let finish = second.finish(false).await;
    assert!(finish.error.is_none());
    assert!(matches!(finish.update, ClientUpdate::Set { .. }));
    let record = store
        .load(&id, ConsistencyToken::NONE, 1_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.data.len(), 3);
}

#[tokio::test]
async fn untouched_session_makes_no_store_call_and_clear_alone_creates_nothing() {
    let store = Arc::new(FlakyStore::default());
    store.fail_apply.store(true, Ordering::SeqCst);
    let untouched = session(store.clone(), None).finish(false).await;
    assert!(untouched.error.is_none());
    assert_eq!(untouched.update, ClientUpdate::Keep);

    let cleared = session(store.clone(), None);
    cleared.clear().await;
    let finish = cleared.finish(false).await;
    assert!(
        finish.error.is_none(),
        "nothing to store, so no store error"
    );
    assert!(store.inner.is_empty());
}

#[tokio::test]
async fn a_session_not_found_or_destroyed_forgets_the_clients_token() {
    let store = Arc::new(FlakyStore::default());
    let context = session(store.clone(), None).inner.context.clone();
    let gone = SessionId::generate(None).unwrap();
    let s = Session::new(context.clone(), Some((gone, ConsistencyToken::new(9, 5))));
    s.load().await.unwrap();
    assert_eq!(s.inner.state.lock().token, ConsistencyToken::NONE);

    let first = session(store.clone(), None);
    first.insert("a", 1u32).await.unwrap();
    first.save().await.unwrap();
    let id = first.id().unwrap();
    let s = Session::new(context, Some((id, ConsistencyToken::new(9, 5))));
    s.destroy().await.unwrap();
    assert_eq!(s.inner.state.lock().token, ConsistencyToken::NONE);
}

#[tokio::test]
async fn a_rotation_whose_fresh_id_is_taken_retries_with_all_its_changes() {
    let store = Arc::new(FlakyStore::default());
    let first = session(store.clone(), None);
    first.insert("a", 1u32).await.unwrap();
    first.save().await.unwrap();
    let old = first.id().unwrap();

    let login = session(store.clone(), Some(old));
    login.insert("user", "alice").await.unwrap();
    login.cycle_id().await.unwrap();
    store.taken_rotations.store(2, Ordering::SeqCst);
    let finish = login.finish(false).await;
    assert!(finish.error.is_none(), "{:?}", finish.error);
    assert_eq!(store.taken_rotations.load(Ordering::SeqCst), 0);
    let ClientUpdate::Set { id: new, .. } = finish.update else {
        panic!("no cookie for the new id: {:?}", finish.update);
    };
    assert_ne!(new, old);
    let load = |id: SessionId| {
        let store = store.clone();
        async move { store.load(&id, ConsistencyToken::NONE, 1_000_000).await }
    };
    let gone = load(old).await;
    assert!(
        matches!(gone, Ok(None) | Err(StoreError::Superseded)),
        "old id still live: {gone:?}"
    );
    let stored = load(new).await.unwrap().unwrap();
    // The third attempt carried every change, and this request's copy
    // of the record (what its later reads see) matches the store's.
    assert_eq!(stored.data.len(), 2);
    let mirrored = login.inner.state.lock().current.clone().unwrap();
    assert_eq!(mirrored.0, new);
    assert_eq!(*mirrored.1, *stored);
    assert_eq!(
        login.get::<String>("user").await.unwrap().as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn too_large_insert_records_nothing() {
    let store = Arc::new(FlakyStore::default());
    let s = session(store.clone(), None);
    s.insert("ok", 1u8).await.unwrap();
    let error = s.insert("big", vec![0u8; 2048]).await.unwrap_err();
    assert!(matches!(error, SessionError::TooLarge { limit: 1024, .. }));
    assert_eq!(s.get::<Vec<u8>>("big").await.unwrap(), None);
    s.save().await.unwrap();
    assert_eq!(store.inner.len(), 1);
}
