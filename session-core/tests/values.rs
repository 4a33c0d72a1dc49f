//! Session values are self-describing (JSON): a value read with another type
//! is an error naming the key, never a wrong value; untyped values, tagged
//! and untagged enums, and structs that gained `#[serde(default)]` fields
//! work; a value that no longer fits can be removed to heal the session.

mod common;

use axum::http::StatusCode;
use common::cookie_pair;
use common::harness::Harness;
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use session_core::{Session, SessionError};

/// A session holding `key = value`; returns its cookie.
async fn stored<T: Serialize + Clone + Send + Sync + 'static>(
    harness: &Harness,
    key: &'static str,
    value: T,
) -> String {
    let response = harness
        .call(None, move |session: Session| async move {
            session.insert(key, value).await.unwrap();
        })
        .await;
    cookie_pair(&response).expect("a session was created")
}

async fn body(response: axum::http::Response<axum::body::Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_type_mismatch_is_an_error_never_a_wrong_value() {
    let harness = Harness::new(|l| l);
    let cookie = stored(&harness, "n", 42i32).await;
    harness
        .call(Some(&cookie), |session: Session| async move {
            // Integers read as any integer type that holds them.
            assert_eq!(session.get::<usize>("n").await.unwrap(), Some(42));
            assert_eq!(session.get::<u8>("n").await.unwrap(), Some(42));
            for error in [
                session.get::<String>("n").await.map(|_| ()),
                session.get::<bool>("n").await.map(|_| ()),
                session.get::<Vec<u8>>("n").await.map(|_| ()),
            ] {
                assert!(
                    matches!(&error, Err(SessionError::Decode { key, .. }) if key == "n"),
                    "{error:?}"
                );
            }
        })
        .await;
    let cookie = stored(&harness, "n", -1i32).await;
    harness
        .call(Some(&cookie), |session: Session| async move {
            assert!(matches!(
                session.get::<u32>("n").await,
                Err(SessionError::Decode { .. })
            ));
        })
        .await;
}

/// A stored u64 read as String (what aborted the process with bincode):
/// the handler gets `Decode` naming the key, answers what it chooses, heals
/// the session by removing the key, and the process and other requests
/// carry on.
#[tokio::test]
async fn an_unreadable_value_is_reported_by_key_and_can_be_removed() {
    let harness = Harness::new(|l| l);
    let response = harness
        .call(None, |session: Session| async move {
            session.insert("since", 1_700_000_000_000u64).await.unwrap();
            session.insert("keep", "me").await.unwrap();
        })
        .await;
    let cookie = cookie_pair(&response).unwrap();
    let other = stored(&harness, "since", 5u64).await;

    let heal = |session: Session| async move {
        match session.get::<String>("since").await {
            Err(SessionError::Decode { key, .. }) => {
                session.remove_value(&key).await.unwrap();
                (StatusCode::OK, format!("healed {key}"))
            }
            other => (StatusCode::IM_A_TEAPOT, format!("{other:?}")),
        }
    };
    let response = harness.call(Some(&cookie), heal).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "healed since");

    // Not healed, the error's own response is a 500 (the server's data).
    let response = harness
        .call(Some(&other), |session: Session| async move {
            session.get::<String>("since").await.map(|_| "read")
        })
        .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // The healed session has lost the key, nothing else; the other one is
    // untouched.
    harness
        .call(Some(&cookie), |session: Session| async move {
            assert!(session.load().await.is_ok());
            assert!(session.id().is_some(), "the healed session still exists");
            assert_eq!(session.get_value("since").await.unwrap(), None);
            assert_eq!(
                session.get::<String>("keep").await.unwrap().as_deref(),
                Some("me")
            );
        })
        .await;
    harness
        .call(Some(&other), |session: Session| async move {
            assert_eq!(session.get::<u64>("since").await.unwrap(), Some(5));
        })
        .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Internally {
    Guest,
    Member { id: u64, name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
}

#[tokio::test]
async fn untyped_values_and_tagged_and_untagged_enums_round_trip() {
    let harness = Harness::new(|l| l);
    let response = harness
        .call(None, |session: Session| async move {
            let member = Internally::Member {
                id: 7,
                name: "ann".into(),
            };
            session.insert("tagged", member).await.unwrap();
            session.insert("guest", Internally::Guest).await.unwrap();
            session
                .insert("untagged", Untagged::Text("x".into()))
                .await
                .unwrap();
            session.insert("number", Untagged::Number(3)).await.unwrap();
            let value = json!({"a": [1, 2, {"b": null}], "c": 1.5});
            assert_eq!(session.insert_value("json", value).await.unwrap(), None);
        })
        .await;
    let cookie = cookie_pair(&response).unwrap();
    harness
        .call(Some(&cookie), |session: Session| async move {
            assert_eq!(
                session.get::<Internally>("tagged").await.unwrap(),
                Some(Internally::Member {
                    id: 7,
                    name: "ann".into()
                })
            );
            assert_eq!(
                session.get::<Internally>("guest").await.unwrap(),
                Some(Internally::Guest)
            );
            assert_eq!(
                session.get::<Untagged>("untagged").await.unwrap(),
                Some(Untagged::Text("x".into()))
            );
            assert_eq!(
                session.get::<Untagged>("number").await.unwrap(),
                Some(Untagged::Number(3))
            );
            assert_eq!(
                session.get_value("json").await.unwrap(),
                Some(json!({"a": [1, 2, {"b": null}], "c": 1.5}))
            );
            // A typed value reads untyped too.
            assert_eq!(
                session.get_value("tagged").await.unwrap(),
                Some(json!({"kind": "Member", "id": 7, "name": "ann"}))
            );
            // insert_value answers the value it replaced, None for the same.
            let old = session.insert_value("json", json!(2)).await.unwrap();
            assert_eq!(old, Some(json!({"a": [1, 2, {"b": null}], "c": 1.5})));
            assert_eq!(session.insert_value("json", json!(2)).await.unwrap(), None);
            assert_eq!(session.remove_value("json").await.unwrap(), Some(json!(2)));
            assert_eq!(session.remove_value("json").await.unwrap(), None);
        })
        .await;
}

/// What release 1 stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CartV1 {
    items: Vec<String>,
}

/// Release 2 added a field with a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CartV2 {
    items: Vec<String>,
    #[serde(default)]
    coupon: Option<String>,
    #[serde(default)]
    gift_wrap: bool,
}

#[tokio::test]
async fn a_struct_that_gained_default_fields_reads_old_sessions() {
    let harness = Harness::new(|l| l);
    let cookie = stored(
        &harness,
        "cart",
        CartV1 {
            items: vec!["book".into()],
        },
    )
    .await;
    harness
        .call(Some(&cookie), |session: Session| async move {
            assert_eq!(
                session.get::<CartV2>("cart").await.unwrap(),
                Some(CartV2 {
                    items: vec!["book".into()],
                    coupon: None,
                    gift_wrap: false,
                })
            );
            // And a value the new type cannot read names its key.
            session
                .insert_value("cart", Value::from("not a cart"))
                .await
                .unwrap();
            assert!(matches!(
                session.get::<CartV2>("cart").await,
                Err(SessionError::Decode { key, .. }) if key == "cart"
            ));
        })
        .await;
}
