//! The shared conformance suite: what every [`SessionStore`] must do.
//!
//! A store is correct when it passes this suite. Each check is a public async
//! function taking a fresh store, so another crate can run them against its
//! own store (for example a three-node Raft cluster), with the `conformance`
//! feature on in its dev-dependencies
//! (`session-core = { ..., features = ["conformance"] }`):
//!
//! ```
//! # use session_core::{MemoryStore, store::conformance};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! conformance::run_all(MemoryStore::default).await;
//! # }
//! ```
//!
//! or, to get one `#[tokio::test]` per check, from an integration test of
//! the store's crate (which needs `tokio` with the `macros` and
//! `rt-multi-thread` features as a dev-dependency; see this crate's
//! `tests/conformance.rs`):
//!
//! ```ignore
//! // tests/conformance.rs of a store crate. The expression may `.await`
//! // (it runs inside each test), e.g. to start a three-node cluster.
//! session_core::store_conformance_tests!(raft_store, start_cluster().await.store());
//! ```
//!
//! Times passed to the store are explicit and relative to the real current
//! time, so a replicated store whose own expiry timer reads the system clock
//! does not delete sessions under the suite's feet. A failing check panics
//! with a message naming the rule it broke.

use crate::clock::{Clock, UnixMillis};
use crate::id::SessionId;
use crate::record::{ChangeSet, SessionData};
use crate::store::testing::{new_session, session_data as data, LIFETIME_MS};
use crate::store::{ConsistencyToken, SessionStore, StoreError};

/// Names of every check, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &[
    "create_then_load_round_trips",
    "duplicate_create_is_id_exists",
    "disjoint_change_sets_both_kept",
    "clear_remove_set_order",
    "compare_and_set_conflict",
    "too_large_changes_nothing",
    "rotate_moves_data",
    "rotate_into_taken_id_is_id_exists",
    "delete_then_load_and_apply",
    "delete_missing_succeeds",
    "expired_is_gone",
    "tokens_are_monotonic_and_readable",
];

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S: SessionStore>(make: impl Fn() -> S) {
    create_then_load_round_trips(&make()).await;
    duplicate_create_is_id_exists(&make()).await;
    disjoint_change_sets_both_kept(&make()).await;
    clear_remove_set_order(&make()).await;
    compare_and_set_conflict(&make()).await;
    too_large_changes_nothing(&make()).await;
    rotate_moves_data(&make()).await;
    rotate_into_taken_id_is_id_exists(&make()).await;
    delete_then_load_and_apply(&make()).await;
    delete_missing_succeeds(&make()).await;
    expired_is_gone(&make()).await;
    tokens_are_monotonic_and_readable(&make()).await;
}

/// Generates one `#[tokio::test]` per check inside module `$module`;
/// `$make` is an expression (it may `.await`) that builds a fresh store.
#[macro_export]
macro_rules! store_conformance_tests {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance_tests!(@each $make;
                create_then_load_round_trips, duplicate_create_is_id_exists,
                disjoint_change_sets_both_kept, clear_remove_set_order,
                compare_and_set_conflict, too_large_changes_nothing,
                rotate_moves_data, rotate_into_taken_id_is_id_exists,
                delete_then_load_and_apply, delete_missing_succeeds,
                expired_is_gone, tokens_are_monotonic_and_readable);
        }
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let store = $make;
                $crate::store::conformance::$check(&store).await;
            }
        )*
    };
}

fn base() -> UnixMillis {
    Clock::system().now()
}

fn fresh_id() -> SessionId {
    SessionId::generate(None).expect("OS random number generator")
}

/// Creates a session and returns its id and the token of the create.
async fn create<S: SessionStore>(
    store: &S,
    base: UnixMillis,
    pairs: &[(&str, &[u8])],
) -> (SessionId, ConsistencyToken) {
    let id = fresh_id();
    let committed = store
        .create(&id, new_session(base, base + LIFETIME_MS, pairs))
        .await
        .expect("create of a fresh id must succeed");
    (id, committed.token)
}

async fn load_data<S: SessionStore>(
    store: &S,
    id: &SessionId,
    token: ConsistencyToken,
    now: UnixMillis,
) -> Option<SessionData> {
    match store.load(id, token, now).await {
        Ok(record) => record.map(|r| r.data.clone()),
        // A store may say an id it moved or deleted moments ago is
        // superseded instead of missing: gone either way.
        Err(StoreError::Superseded) => None,
        Err(error) => panic!("load must succeed: {error}"),
    }
}

/// A created session loads back with its data, times and a version.
pub async fn create_then_load_round_trips<S: SessionStore>(store: &S) {
    let now = base();
    let (id, token) = create(store, now, &[("a", b"1"), ("b", b"22")]).await;
    let record = store
        .load(&id, token, now)
        .await
        .expect("load")
        .expect("created session must load");
    assert_eq!(record.data, data(&[("a", b"1"), ("b", b"22")]));
    assert_eq!(record.created_at, now);
    assert_eq!(record.expires_at, now + LIFETIME_MS);
    assert!(
        store
            .load(&fresh_id(), token, now)
            .await
            .expect("load")
            .is_none(),
        "an unknown id must load as None"
    );
}

/// Creating on a taken id fails with `IdExists` and keeps the first session.
pub async fn duplicate_create_is_id_exists<S: SessionStore>(store: &S) {
    let now = base();
    let (id, token) = create(store, now, &[("a", b"first")]).await;
    let second = store
        .create(
            &id,
            new_session(now, now + LIFETIME_MS, &[("a", b"second")]),
        )
        .await;
    assert_eq!(second, Err(StoreError::IdExists));
    assert_eq!(
        load_data(store, &id, token, now).await,
        Some(data(&[("a", b"first")])),
        "a refused create must not overwrite"
    );
}

/// Two change sets on different keys, applied one after the other from the
/// same loaded version, both survive.
pub async fn disjoint_change_sets_both_kept<S: SessionStore>(store: &S) {
    let now = base();
    let (id, _) = create(store, now, &[("shared", b"0")]).await;
    let mut first = ChangeSet::default();
    first.set("x".into(), b"1".to_vec());
    let mut second = ChangeSet::default();
    second.set("y".into(), b"2".to_vec());
    store.apply(&id, first, now).await.expect("first apply");
    let token = store
        .apply(&id, second, now)
        .await
        .expect("second apply")
        .token;
    assert_eq!(
        load_data(store, &id, token, now).await,
        Some(data(&[("shared", b"0"), ("x", b"1"), ("y", b"2")])),
        "disjoint change sets must both be kept"
    );
}

/// Within one change set: clear, then removals, then sets.
pub async fn clear_remove_set_order<S: SessionStore>(store: &S) {
    let now = base();
    let (id, _) = create(store, now, &[("a", b"1"), ("b", b"2"), ("c", b"3")]).await;
    let changes = ChangeSet {
        remove: ["b".to_owned()].into(),
        set: [
            ("c".to_owned(), b"33".to_vec()),
            ("d".to_owned(), b"4".to_vec()),
        ]
        .into(),
        ..ChangeSet::default()
    };
    let token = store.apply(&id, changes, now).await.expect("apply").token;
    assert_eq!(
        load_data(store, &id, token, now).await,
        Some(data(&[("a", b"1"), ("c", b"33"), ("d", b"4")]))
    );
    let changes = ChangeSet {
        clear: true,
        set: [("z".to_owned(), b"9".to_vec())].into(),
        ..ChangeSet::default()
    };
    let token = store.apply(&id, changes, now).await.expect("apply").token;
    assert_eq!(
        load_data(store, &id, token, now).await,
        Some(data(&[("z", b"9")])),
        "clear must run before the sets of the same change set"
    );
}

/// An expected version that is no longer current is refused, changing nothing.
pub async fn compare_and_set_conflict<S: SessionStore>(store: &S) {
    let now = base();
    let (id, token) = create(store, now, &[("n", b"0")]).await;
    let loaded = store
        .load(&id, token, now)
        .await
        .expect("load")
        .expect("live");
    let mut cas = ChangeSet {
        expected_version: Some(loaded.version),
        ..ChangeSet::default()
    };
    cas.set("n".into(), b"1".to_vec());
    let committed = store
        .apply(&id, cas.clone(), now)
        .await
        .expect("CAS on current version");
    assert!(
        committed.version != loaded.version,
        "a write must change the version"
    );
    let mut stale = cas;
    stale.set("n".into(), b"2".to_vec());
    match store.apply(&id, stale, now).await {
        Err(StoreError::VersionConflict { current }) => assert_eq!(current, committed.version),
        other => panic!("stale CAS must be VersionConflict, got {other:?}"),
    }
    assert_eq!(
        load_data(store, &id, committed.token, now).await,
        Some(data(&[("n", b"1")]))
    );
}

/// A change set that would exceed its size limit is refused whole; so is a
/// new session over its limit.
pub async fn too_large_changes_nothing<S: SessionStore>(store: &S) {
    let now = base();
    let (id, token) = create(store, now, &[("a", b"1")]).await;
    let mut changes = ChangeSet {
        size_limit: 64,
        ..ChangeSet::default()
    };
    changes.remove("a");
    changes.set("big".into(), vec![7; 100]);
    changes.expires_at = Some(now + 2 * LIFETIME_MS);
    assert!(matches!(
        store.apply(&id, changes, now).await,
        Err(StoreError::TooLarge { .. })
    ));
    let record = store
        .load(&id, token, now)
        .await
        .expect("load")
        .expect("live");
    assert_eq!(
        record.data,
        data(&[("a", b"1")]),
        "nothing may be partly written"
    );
    assert_eq!(record.expires_at, now + LIFETIME_MS);

    let big = fresh_id();
    let mut session = new_session(now, now + LIFETIME_MS, &[("big", &[0; 100])]);
    session.size_limit = 64;
    assert!(matches!(
        store.create(&big, session).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert!(store.load(&big, token, now).await.expect("load").is_none());
}

/// Rotation moves the data (with the change set applied) to the new id; the
/// old id is gone.
pub async fn rotate_moves_data<S: SessionStore>(store: &S) {
    let now = base();
    let (old, _) = create(store, now, &[("user", b"alice")]).await;
    let new = fresh_id();
    let mut changes = ChangeSet {
        rotate_to: Some(new),
        ..ChangeSet::default()
    };
    changes.set("role".into(), b"admin".to_vec());
    let token = store.apply(&old, changes, now).await.expect("rotate").token;
    assert_eq!(
        load_data(store, &new, token, now).await,
        Some(data(&[("role", b"admin"), ("user", b"alice")]))
    );
    assert_eq!(
        load_data(store, &old, token, now).await,
        None,
        "old id must be gone"
    );
    assert_eq!(
        store.apply(&old, ChangeSet::default(), now).await,
        Err(StoreError::NotFound)
    );
}

/// Rotating onto a live session's id fails with `IdExists`, changing nothing.
pub async fn rotate_into_taken_id_is_id_exists<S: SessionStore>(store: &S) {
    let now = base();
    let (a, _) = create(store, now, &[("who", b"a")]).await;
    let (b, token) = create(store, now, &[("who", b"b")]).await;
    let mut changes = ChangeSet {
        rotate_to: Some(b),
        ..ChangeSet::default()
    };
    changes.set("who".into(), b"changed".to_vec());
    assert_eq!(
        store.apply(&a, changes, now).await,
        Err(StoreError::IdExists)
    );
    assert_eq!(
        load_data(store, &a, token, now).await,
        Some(data(&[("who", b"a")]))
    );
    assert_eq!(
        load_data(store, &b, token, now).await,
        Some(data(&[("who", b"b")]))
    );
}

/// A deleted session does not load, and applying to it is `NotFound`.
pub async fn delete_then_load_and_apply<S: SessionStore>(store: &S) {
    let now = base();
    let (id, _) = create(store, now, &[("a", b"1")]).await;
    let token = store.delete(&id).await.expect("delete").token;
    assert_eq!(load_data(store, &id, token, now).await, None);
    let mut changes = ChangeSet::default();
    changes.set("a".into(), b"2".to_vec());
    assert_eq!(
        store.apply(&id, changes, now).await,
        Err(StoreError::NotFound)
    );
}

/// Deleting a session that does not exist succeeds.
pub async fn delete_missing_succeeds<S: SessionStore>(store: &S) {
    store
        .delete(&fresh_id())
        .await
        .expect("deleting a missing session must succeed");
}

/// A session past its `expires_at` does not load and cannot be changed, and
/// moving `expires_at` forward keeps a session alive.
pub async fn expired_is_gone<S: SessionStore>(store: &S) {
    let now = base();
    let (id, token) = create(store, now, &[("a", b"1")]).await;
    let after = now + LIFETIME_MS;
    assert_eq!(
        load_data(store, &id, token, after).await,
        None,
        "expired at expires_at"
    );
    assert_eq!(
        store.apply(&id, ChangeSet::default(), after).await,
        Err(StoreError::NotFound)
    );

    let (kept, _) = create(store, now, &[("a", b"1")]).await;
    let renew = ChangeSet {
        expires_at: Some(now + 2 * LIFETIME_MS),
        ..ChangeSet::default()
    };
    let token = store.apply(&kept, renew, now).await.expect("renew").token;
    assert!(
        load_data(store, &kept, token, after).await.is_some(),
        "renewal must extend"
    );
}

/// Tokens from successive writes never go backwards, and a load with the
/// newest token sees the newest write.
pub async fn tokens_are_monotonic_and_readable<S: SessionStore>(store: &S) {
    let now = base();
    let (id, mut last) = create(store, now, &[]).await;
    for round in 0u8..10 {
        let mut changes = ChangeSet::default();
        changes.set("round".into(), vec![round]);
        let token = store.apply(&id, changes, now).await.expect("apply").token;
        assert_eq!(token.history, last.history, "one store, one history");
        assert!(
            token.index >= last.index,
            "token went backwards: {token:?} < {last:?}"
        );
        assert!(!token.is_none(), "a write must return a real token");
        last = token;
        let seen = load_data(store, &id, token, now).await.expect("live");
        assert_eq!(seen.get("round"), Some(&[round][..]), "read-your-writes");
    }
    let token = store.delete(&id).await.expect("delete").token;
    assert_eq!(token.history, last.history, "one store, one history");
    assert!(token.index >= last.index, "delete token went backwards");
}
