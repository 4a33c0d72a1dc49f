//! Tests of the packed session data: lookups, merges, iteration, sizes and
//! its serde forms.

use super::*;

fn data(pairs: &[(&str, &[u8])]) -> SessionData {
    pairs.iter().copied().collect()
}

fn bincode_of<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

#[test]
fn keys_come_in_order_whatever_the_insertion_order() {
    let mut d = SessionData::new();
    for key in ["m", "a", "z", "ab", "", "é"] {
        assert_eq!(d.insert(key, key.as_bytes()), None);
    }
    assert_eq!(d.keys().collect::<Vec<_>>(), ["", "a", "ab", "m", "z", "é"]);
    assert_eq!(d.len(), 6);
    assert_eq!(d.get(""), Some(&b""[..]));
    assert_eq!(d.get("é"), Some("é".as_bytes()));
    assert_eq!(d.get("b"), None);
    assert!(d.contains_key("ab") && !d.contains_key("abc"));
}

#[test]
fn insert_replaces_and_remove_and_clear_take_away() {
    let mut d = data(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
    assert_eq!(d.insert("b", b"22"), Some(b"2".to_vec()));
    assert_eq!(d, data(&[("a", b"1"), ("b", b"22"), ("c", b"3")]));
    assert_eq!(d.remove("a"), Some(b"1".to_vec()));
    assert_eq!(d.remove("a"), None);
    assert_eq!(d.remove("zz"), None);
    assert_eq!(d, data(&[("b", b"22"), ("c", b"3")]));
    d.clear();
    assert!(d.is_empty());
    assert_eq!(d, SessionData::new());
    assert_eq!(d.iter().count(), 0);
}

#[test]
fn equality_is_of_contents_not_of_history() {
    let mut built = SessionData::new();
    built.insert("x", b"0");
    built.insert("y", b"1");
    built.insert("x", b"2");
    built.remove("y");
    built.insert("y", b"1");
    assert_eq!(built, data(&[("y", b"1"), ("x", b"2")]));
    assert_ne!(built, data(&[("x", b"2")]));
    assert_ne!(data(&[("x", b"")]), SessionData::new());
}

#[test]
fn collect_and_extend_let_the_last_value_win() {
    let d = data(&[("k", b"1"), ("a", b"0"), ("k", b"2")]);
    assert_eq!(
        d.iter().collect::<Vec<_>>(),
        [("a", &b"0"[..]), ("k", &b"2"[..])]
    );
    let mut e = d.clone();
    e.extend([("b", b"9"), ("k", b"3"), ("b", b"8")]);
    assert_eq!(e, data(&[("a", b"0"), ("b", b"8"), ("k", b"3")]));
    let map: BTreeMap<String, Vec<u8>> = (&e).into();
    assert_eq!(SessionData::from(map), e);
    assert_eq!(
        SessionData::from([("b", b"1"), ("a", b"2")]),
        data(&[("a", b"2"), ("b", b"1")])
    );
}

#[test]
fn merged_applies_clear_then_removals_then_sets() {
    let d = data(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
    let remove: BTreeSet<String> = ["a".to_owned(), "q".to_owned()].into();
    let set: BTreeMap<String, Vec<u8>> =
        [("b".to_owned(), b"9".to_vec()), ("d".to_owned(), vec![])].into();
    assert_eq!(
        d.merged(false, &remove, &set),
        data(&[("b", b"9"), ("c", b"3"), ("d", b"")])
    );
    assert_eq!(
        d.merged(true, &remove, &set),
        data(&[("b", b"9"), ("d", b"")])
    );
    assert_eq!(
        d.merged(false, &BTreeSet::new(), &BTreeMap::new()),
        d,
        "no change, same data"
    );
}

#[test]
fn long_keys_and_values_use_longer_lengths() {
    let key = "k".repeat(300);
    let value = vec![7u8; 70_000];
    let mut d = data(&[("a", b"1")]);
    d.insert(&key, &value);
    d.insert("z", b"2");
    assert_eq!(d.get(&key), Some(&value[..]));
    assert_eq!(d.keys().collect::<Vec<_>>(), ["a", key.as_str(), "z"]);
    assert_eq!(d.packed.len(), 4 + (2 + 300 + 3 + 70_000) + 4);
    for n in [0, 1, 127, 128, 16_383, 16_384, usize::MAX] {
        let mut out = Vec::new();
        put_len(&mut out, n);
        assert_eq!(out.len(), len_of_len(n), "{n}");
        assert_eq!(take_len(&out), Some((n, &[][..])), "{n}");
    }
    assert_eq!(take_len(&[0x80]), None, "cut short");
    assert_eq!(take_len(&[0xff; 11]), None, "beyond a usize");
}

#[test]
fn one_small_key_is_one_small_allocation() {
    let d = data(&[("count", b"1")]);
    assert_eq!(d.packed.len(), 1 + 5 + 1 + 1);
    assert_eq!(std::mem::size_of::<SessionData>(), 16);
}

#[test]
fn serde_is_the_btreemap_encoding() {
    let pairs: &[(&str, &[u8])] = &[("count", b"1"), ("user", b"\"alice\""), ("", b"")];
    let d = data(pairs);
    let map: BTreeMap<String, Vec<u8>> = (&d).into();
    let bytes = bincode_of(&d);
    assert_eq!(bytes, bincode_of(&map));
    let (back, read): (SessionData, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!((back, read), (d.clone(), bytes.len()));
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, serde_json::to_string(&map).unwrap());
    assert_eq!(serde_json::from_str::<SessionData>(&json).unwrap(), d);
    assert_eq!(format!("{d:?}"), format!("{map:?}"));
}

#[test]
fn decoding_unsorted_or_repeated_keys_normalises_like_btreemap() {
    let json = r#"{"b":[2],"a":[1],"b":[3]}"#;
    let d: SessionData = serde_json::from_str(json).unwrap();
    let map: BTreeMap<String, Vec<u8>> = serde_json::from_str(json).unwrap();
    assert_eq!(BTreeMap::from(&d), map);
    assert_eq!(d, data(&[("a", &[1]), ("b", &[3])]));
    assert!(serde_json::from_str::<SessionData>(r#"{"a":"text"}"#).is_err());
    assert!(serde_json::from_str::<SessionData>("[1]").is_err());
}
