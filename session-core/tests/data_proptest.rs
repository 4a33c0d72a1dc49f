//! `SessionData` against the `BTreeMap<String, Vec<u8>>` it replaced, as a
//! model: random sequences of inserts, removals, clears and extends leave
//! both with the same contents in the same order, and both encode to the
//! same bytes through bincode 2's serde API (so the Raft log and snapshots
//! read what older nodes wrote). Arbitrary bytes decode to a value or an
//! error, never a panic, and a decoded value is always canonical.

mod common;

use std::collections::BTreeMap;

use common::wire::{decode, encode, wire};
use proptest::prelude::*;
use session_core::SessionData;

type Model = BTreeMap<String, Vec<u8>>;

/// Few short keys, so that operations often meet the same key; now and
/// then a key or value long enough for a two-byte length.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[a-d]{0,2}", 1 => "[a-d]{128,130}", 1 => "\\PC{0,3}"]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => proptest::collection::vec(any::<u8>(), 120..200),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, Vec<u8>),
    Remove(String),
    Clear,
    Extend(Vec<(String, Vec<u8>)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key().prop_map(Op::Remove),
        1 => Just(Op::Clear),
        1 => proptest::collection::vec((key(), value()), 0..4).prop_map(Op::Extend),
    ]
}

/// Same contents, same order, same answers to lookups.
fn same(data: &SessionData, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(data.len(), model.len());
    prop_assert_eq!(data.is_empty(), model.is_empty());
    let pairs: Vec<(&str, &[u8])> = data.iter().collect();
    let expected: Vec<(&str, &[u8])> = model
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    prop_assert_eq!(pairs, expected);
    for (k, v) in model {
        prop_assert_eq!(data.get(k), Some(v.as_slice()));
        prop_assert!(data.contains_key(k));
    }
    prop_assert_eq!(&BTreeMap::from(data), model);
    prop_assert_eq!(
        &SessionData::from(model.clone()),
        data,
        "equal contents, equal values"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 0..40)) {
        let mut data = SessionData::new();
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    prop_assert_eq!(data.insert(&k, &v), model.insert(k, v));
                }
                Op::Remove(k) => {
                    prop_assert_eq!(data.remove(&k), model.remove(&k));
                    prop_assert!(!data.contains_key(&k));
                }
                Op::Clear => {
                    data.clear();
                    model.clear();
                }
                Op::Extend(pairs) => {
                    data.extend(pairs.iter().map(|(k, v)| (k, v)));
                    model.extend(pairs);
                }
            }
            same(&data, &model)?;
        }
        let bytes = encode(&data);
        prop_assert_eq!(&bytes, &encode(&model), "the BTreeMap's bincode");
        prop_assert_eq!(decode::<SessionData>(&bytes), Ok(data.clone()));
        prop_assert_eq!(decode::<Model>(&bytes), Ok(model.clone()));
        let json = serde_json::to_string(&data).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&model).unwrap());
        prop_assert_eq!(serde_json::from_str::<SessionData>(&json).unwrap(), data);
    }

    #[test]
    fn decodes_what_a_btreemap_wrote(model in proptest::collection::btree_map(key(), value(), 0..8)) {
        let data: SessionData = decode(&encode(&model)).unwrap();
        same(&data, &model)?;
    }

    #[test]
    fn decoding_never_panics_and_normalises_as_a_btreemap(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        pairs in proptest::collection::vec((key(), value()), 0..6),
    ) {
        // Arbitrary bytes: whatever one decoder makes of them, so does the other.
        let data = decode::<SessionData>(&bytes);
        let model = decode::<Model>(&bytes);
        prop_assert_eq!(data.is_ok(), model.is_ok());
        if let (Ok(data), Ok(model)) = (data, model) {
            same(&data, &model)?;
        }
        // A map written unsorted and with repeated keys, as no encoder of
        // this workspace writes it: sorted, the last value of a key kept.
        let mut raw = Vec::new();
        bincode::encode_into_std_write(pairs.len() as u64, &mut raw, wire()).unwrap();
        for (k, v) in &pairs {
            raw.extend(encode(k));
            raw.extend(encode(v));
        }
        let data: SessionData = decode(&raw).unwrap();
        let model: Model = decode(&raw).unwrap();
        same(&data, &model)?;
        prop_assert_eq!(encode(&data), encode(&model));
    }
}
