//! Property tests of everything session-core decodes from outside input,
//! through the public API:
//!
//! - `SessionId::parse` on arbitrary text never panics, and whatever it
//!   accepts is canonical (prints back to the same text), so one id has one
//!   text form; every well-formed id round-trips.
//! - The wire form of `ChangeSet`, `NewSession` and `SessionRecord` (bincode 2,
//!   serde API, standard config with a limit, as the Raft log and RPCs use):
//!   arbitrary bytes give a value or an error, never a panic; encoding then
//!   decoding is the identity.
//! - `SessionRecord::apply` of an arbitrary (possibly hostile, e.g. `clear`
//!   with sets and removals at once) change set never panics, and its size
//!   check agrees with the size the data really has afterwards.
//! - The session layer's cookie and header reading, fed arbitrary header
//!   bytes: every request gets 200 and a fresh session, never an adopted id.
//!
//! Case counts are modest so that the whole file runs in a few seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::wire::{decode, encode};
use http::{HeaderName, HeaderValue, Request, Response};
use proptest::prelude::*;
use session_core::{
    data_size, ChangeSet, Key, MemoryStore, NewSession, Session, SessionId, SessionLayer,
    SessionRecord, StoreError,
};
use tower::{Layer as _, ServiceExt as _};

fn mesh() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-z0-9-]{1,15}")
}

/// Text of a well-formed id.
fn id_text() -> impl Strategy<Value = String> {
    (mesh(), any::<[u8; 16]>()).prop_map(|(mesh, random)| {
        let random = URL_SAFE_NO_PAD.encode(random);
        match mesh {
            Some(mesh) => format!("{mesh}.{random}"),
            None => random,
        }
    })
}

fn session_id() -> impl Strategy<Value = SessionId> {
    id_text().prop_map(|text| SessionId::parse(&text).unwrap())
}

fn data() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    proptest::collection::btree_map(
        "[a-c]{0,3}",
        proptest::collection::vec(any::<u8>(), 0..24),
        0..6,
    )
}

/// Any change set, including combinations the layer never builds.
fn change_set() -> impl Strategy<Value = ChangeSet> {
    (
        any::<bool>(),
        proptest::collection::btree_set("[a-c]{0,3}", 0..4),
        data(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(session_id()),
        proptest::option::of(0u64..4),
        prop_oneof![Just(0u32), 0u32..200],
    )
        .prop_map(
            |(clear, remove, set, expires_at, rotate_to, expected_version, size_limit)| ChangeSet {
                clear,
                remove: remove.into_iter().collect::<BTreeSet<_>>(),
                set,
                expires_at,
                rotate_to,
                expected_version,
                size_limit,
            },
        )
}

fn record() -> impl Strategy<Value = SessionRecord> {
    (data(), any::<u64>(), any::<u64>(), 0u64..4).prop_map(
        |(data, created_at, expires_at, version)| SessionRecord {
            data: data.into(),
            created_at,
            expires_at,
            version,
        },
    )
}

/// What `apply` must produce, written the obvious way.
fn model(record: &SessionRecord, changes: &ChangeSet) -> BTreeMap<String, Vec<u8>> {
    let mut data = if changes.clear {
        BTreeMap::new()
    } else {
        BTreeMap::from(&record.data)
    };
    for key in &changes.remove {
        data.remove(key);
    }
    for (key, value) in &changes.set {
        data.insert(key.clone(), value.clone());
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn id_parser_never_panics_and_accepts_only_canonical_text(text in any::<String>()) {
        if let Ok(id) = SessionId::parse(&text) {
            prop_assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn id_parser_on_near_miss_text(text in "([a-zA-Z0-9._-]{0,17}\\.)?[A-Za-z0-9_+/=-]{20,24}") {
        if let Ok(id) = SessionId::parse(&text) {
            prop_assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn well_formed_ids_round_trip(text in id_text()) {
        let id = SessionId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text);
        prop_assert_eq!(decode::<SessionId>(&encode(&id)), Ok(id));
    }

    #[test]
    fn wire_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<ChangeSet>(&bytes);
        let _ = decode::<NewSession>(&bytes);
        let _ = decode::<SessionRecord>(&bytes);
        let _ = decode::<SessionId>(&bytes);
        let _ = decode::<StoreError>(&bytes);
    }

    #[test]
    fn change_sets_and_records_round_trip(changes in change_set(), record in record()) {
        prop_assert_eq!(decode::<ChangeSet>(&encode(&changes)), Ok(changes));
        prop_assert_eq!(decode::<SessionRecord>(&encode(&record)), Ok(record));
    }

    #[test]
    fn mutated_change_set_bytes_never_panic(
        changes in change_set(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&changes);
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let _ = decode::<ChangeSet>(&bytes);
    }

    #[test]
    fn apply_is_all_or_nothing_and_its_size_check_is_exact(
        record in record(),
        changes in change_set(),
    ) {
        let mut applied = record.clone();
        match applied.apply(&changes, 99) {
            Ok(()) => {
                prop_assert_eq!(BTreeMap::from(&applied.data), model(&record, &changes));
                prop_assert_eq!(applied.version, 99);
                if changes.size_limit > 0 {
                    prop_assert!(applied.size() <= changes.size_limit as usize);
                }
            }
            Err(StoreError::TooLarge { size, limit }) => {
                prop_assert_eq!(&applied, &record, "nothing written");
                prop_assert_eq!(size, data_size(&model(&record, &changes)));
                prop_assert!(size > limit);
            }
            Err(StoreError::VersionConflict { current }) => {
                prop_assert_eq!(&applied, &record, "nothing written");
                prop_assert_eq!(current, record.version);
                prop_assert_ne!(changes.expected_version, Some(record.version));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

/// One request through the real layer over a `MemoryStore`, with the given
/// raw `cookie` and `x-session` header bytes; returns the status and the id
/// the handler's session ended with.
async fn through_layer(
    layer: &SessionLayer<Arc<MemoryStore>>,
    cookie: &[u8],
    header: &[u8],
) -> (u16, Option<SessionId>) {
    let service = layer.layer(tower::service_fn(|request: Request<String>| async move {
        let session = request.extensions().get::<Session>().cloned().unwrap();
        session.insert("k", 1u8).await.unwrap();
        session.save().await.unwrap();
        Ok::<_, std::convert::Infallible>(
            Response::builder()
                .body(session.id().map(|id| id.to_string()).unwrap_or_default())
                .unwrap(),
        )
    }));
    let mut request = Request::new(String::new());
    // Only bytes HTTP allows in a header value reach a server at all.
    if let Ok(value) = HeaderValue::from_bytes(cookie) {
        request.headers_mut().insert(http::header::COOKIE, value);
    }
    if let Ok(value) = HeaderValue::from_bytes(header) {
        request
            .headers_mut()
            .insert(HeaderName::from_static("x-session"), value);
    }
    let response = service.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    (status, SessionId::parse(response.body()).ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_cookie_or_header_bytes_get_a_fresh_session(
        cookie in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            id_text().prop_map(|id| format!("sid={id}~1").into_bytes()),
            "(sid=[ -~]{0,60}; ?){1,4}".prop_map(String::into_bytes),
        ],
        header in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..100),
            id_text().prop_map(String::into_bytes),
        ],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = Arc::new(MemoryStore::default());
        let layer = SessionLayer::new(store.clone(), Key::generate())
            .with_header(HeaderName::from_static("x-session"));
        let (status, id) = runtime.block_on(through_layer(&layer, &cookie, &header));
        prop_assert_eq!(status, 200);
        let id = id.expect("a new session");
        // The new id is the server's, never one the client named.
        let named = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(&id.to_string());
        prop_assert!(!named(&cookie) && !named(&header));
        prop_assert_eq!(store.len(), 1);
    }
}
