//! [`SessionData`]: a session's keys and values, packed in one buffer.
//!
//! A store holds every session in memory, most of them tiny (the demo's is
//! `count = 1`). A `BTreeMap<String, Vec<u8>>` spends a whole B-tree leaf
//! (eleven keys and eleven values, about 540 bytes) plus two allocations on
//! such a session; this type spends one allocation of a few bytes.
//!
//! Layout: the entries in key order, each `varint(key length), key bytes,
//! varint(value length), value bytes` (LEB128 varints, always minimal). Keys
//! are unique. The buffer is only ever written by this module, from `&str`
//! keys, so it is canonical: two equal maps have equal bytes, which is what
//! the derived `PartialEq` compares.
//!
//! Lookups scan the entries; sessions are small (the layer's size limit),
//! and a scan of a few dozen bytes beats a tree of pointers. Every change
//! writes a new buffer in one pass, so [`SessionData::merged`], which applies
//! a whole change set at once, costs the same as one insert.
//!
//! Serde sees a map from strings to byte sequences, exactly what the
//! `BTreeMap` it replaced produced, so the Raft log and snapshots encode as
//! before. Decoding normalises as the `BTreeMap` did: entries are sorted and
//! of a key given twice the last value wins.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes counted per key on top of key and value lengths, so that a session of
/// many tiny keys cannot dodge the size limit.
pub const PER_KEY_OVERHEAD: usize = 8;

/// Encoded size of session data as counted against the size limit: key and
/// value lengths plus [`PER_KEY_OVERHEAD`] per key. Takes [`SessionData`] or
/// a change set's `BTreeMap` of keys set alike.
///
/// ```
/// use session_core::{data_size, SessionData, PER_KEY_OVERHEAD};
/// let data: SessionData = [("count", b"1")].into_iter().collect();
/// assert_eq!(data_size(&data), 5 + 1 + PER_KEY_OVERHEAD);
/// ```
pub fn data_size<K: AsRef<str>, V: AsRef<[u8]>>(data: impl IntoIterator<Item = (K, V)>) -> usize {
    data.into_iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + PER_KEY_OVERHEAD)
        .sum()
}

/// A session's key/value data: unique string keys in order, each with an
/// opaque byte value (the layer stores JSON, see `Session::get`).
///
/// A map in behaviour and in serde, one small allocation in memory.
///
/// ```
/// use session_core::SessionData;
/// let mut data = SessionData::new();
/// assert_eq!(data.insert("user", b"\"alice\""), None);
/// data.insert("count", b"1");
/// assert_eq!(data.insert("count", b"2"), Some(b"1".to_vec()));
/// assert_eq!(data.get("count"), Some(&b"2"[..]));
/// assert_eq!(data.keys().collect::<Vec<_>>(), ["count", "user"]);
/// assert_eq!(data.remove("user"), Some(b"\"alice\"".to_vec()));
/// assert_eq!(data.len(), 1);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionData {
    /// The packed entries (see the module documentation); empty for no keys,
    /// which allocates nothing.
    packed: Box<[u8]>,
}

/// Appends `n` as a minimal LEB128 varint.
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Bytes `put_len` writes for `n`.
fn len_of_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Reads a varint from the front of `bytes`; `None` if cut short or too
/// large for a `usize` (neither happens in a buffer this module wrote).
fn take_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut n: usize = 0;
    for (i, byte) in bytes.iter().enumerate() {
        let shift = 7 * i as u32;
        let low = usize::from(byte & 0x7f);
        if shift >= usize::BITS || (low << shift) >> shift != low {
            return None;
        }
        n |= low << shift;
        if byte & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

/// Bytes one entry takes in the buffer.
fn entry_len(key: &str, value: &[u8]) -> usize {
    len_of_len(key.len()) + key.len() + len_of_len(value.len()) + value.len()
}

/// Appends one entry.
fn put_entry(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    put_len(out, key.len());
    out.extend_from_slice(key.as_bytes());
    put_len(out, value.len());
    out.extend_from_slice(value);
}

/// Sorts `pairs` by key and drops every pair whose key comes again later,
/// so that the last value given for a key wins (as `BTreeMap` collects).
fn sorted_unique<K: AsRef<str>, V>(mut pairs: Vec<(K, V)>) -> Vec<(K, V)> {
    // Stable: pairs of one key stay in the order given.
    pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    let mut unique: Vec<(K, V)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match unique.last_mut() {
            Some(last) if last.0.as_ref() == pair.0.as_ref() => *last = pair,
            _ => unique.push(pair),
        }
    }
    unique
}

impl SessionData {
    /// No keys; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys (a scan of the entries).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: &self.packed }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter().map(|(key, _)| key)
    }

    /// The values in key order.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().map(|(_, value)| value)
    }

    /// Where `key`'s entry is, or would go: its byte offset, and the length
    /// of the entry if present.
    fn find(&self, key: &str) -> (usize, Option<usize>) {
        let mut iter = self.iter();
        loop {
            let at = self.packed.len() - iter.rest.len();
            let Some((found, value)) = iter.next() else {
                return (at, None);
            };
            match found.cmp(key) {
                Ordering::Less => continue,
                Ordering::Equal => return (at, Some(entry_len(found, value))),
                Ordering::Greater => return (at, None),
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.iter()
            .take_while(|(found, _)| *found <= key)
            .find(|(found, _)| *found == key)
            .map(|(_, value)| value)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Replaces the bytes `at..at + old_len` of the buffer by `entry`'s.
    fn splice(&mut self, at: usize, old_len: usize, entry: Option<(&str, &[u8])>) {
        let new_len = entry.map_or(0, |(k, v)| entry_len(k, v));
        let mut out = Vec::with_capacity(self.packed.len() - old_len + new_len);
        out.extend_from_slice(&self.packed[..at]);
        if let Some((key, value)) = entry {
            put_entry(&mut out, key, value);
        }
        out.extend_from_slice(&self.packed[at + old_len..]);
        self.packed = out.into_boxed_slice();
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let (at, old_len) = self.find(key);
        let old = old_len.map(|_| self.get(key).unwrap_or_default().to_vec());
        self.splice(at, old_len.unwrap_or(0), Some((key, value)));
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Vec<u8>> {
        let (at, old_len) = self.find(key);
        let old_len = old_len?;
        let old = self.get(key).map(<[u8]>::to_vec);
        self.splice(at, old_len, None);
        old
    }

    /// Removes every key (and frees the buffer).
    pub fn clear(&mut self) {
        self.packed = Box::default();
    }

    /// This data with a change set applied, built in one pass: everything
    /// removed first if `clear`, then the keys in `remove`, then the keys in
    /// `set` set (the order `SessionRecord::apply` defines). Deterministic,
    /// allocation only for the result.
    pub fn merged(
        &self,
        clear: bool,
        remove: &BTreeSet<String>,
        set: &BTreeMap<String, Vec<u8>>,
    ) -> SessionData {
        let kept = |key: &str| !clear && !remove.contains(key);
        self.merge(kept, set.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// The entries of `self` that `kept` keeps, with `new` (sorted, unique
    /// keys) merged in, a key in `new` replacing the same key of `self`.
    fn merge<'a>(
        &self,
        kept: impl Fn(&str) -> bool,
        new: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> SessionData {
        let upper = self.packed.len() + new.clone().map(|(k, v)| entry_len(k, v)).sum::<usize>();
        let mut out = Vec::with_capacity(upper);
        let mut old = self.iter().filter(|(key, _)| kept(key)).peekable();
        let mut new = new.peekable();
        loop {
            let order = match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((o, _)), Some((n, _))) => o.cmp(n),
            };
            if order == Ordering::Equal {
                // Replaced: the new entry goes in, the old one is skipped.
                old.next();
            }
            let take_new = order != Ordering::Less;
            let (key, value) = if take_new { new.next() } else { old.next() }.unwrap_or_default();
            put_entry(&mut out, key, value);
        }
        SessionData {
            packed: out.into_boxed_slice(),
        }
    }

    /// Packs pairs already sorted by key, with unique keys.
    fn from_sorted<K: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Self {
        let size = pairs
            .iter()
            .map(|(k, v)| entry_len(k.as_ref(), v.as_ref()))
            .sum();
        let mut out = Vec::with_capacity(size);
        for (key, value) in pairs {
            put_entry(&mut out, key.as_ref(), value.as_ref());
        }
        SessionData {
            packed: out.into_boxed_slice(),
        }
    }
}

/// The entries of a [`SessionData`], in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    /// The entries not yet returned.
    rest: &'a [u8],
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = (|| {
            let (key_len, rest) = take_len(self.rest)?;
            let key = rest.get(..key_len)?;
            let (value_len, rest) = take_len(rest.get(key_len..)?)?;
            let value = rest.get(..value_len)?;
            // Keys were written from `&str`: this only ever succeeds.
            let key = std::str::from_utf8(key).ok()?;
            Some(((key, value), rest.get(value_len..)?))
        })();
        match entry {
            Some((item, rest)) => {
                self.rest = rest;
                Some(item)
            }
            None => {
                // Unreachable for a buffer this module wrote; end rather than
                // loop or panic.
                self.rest = &[];
                None
            }
        }
    }
}

impl<'a> IntoIterator for &'a SessionData {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Collects like a `BTreeMap`: in key order, the last value of a key given
/// twice wins.
impl<K: AsRef<str>, V: AsRef<[u8]>> FromIterator<(K, V)> for SessionData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let pairs = sorted_unique(pairs.into_iter().collect());
        Self::from_sorted(&pairs)
    }
}

/// Sets every pair, as repeated [`SessionData::insert`]s would (the last
/// value of a key given twice wins), in one pass.
impl<K: AsRef<str>, V: AsRef<[u8]>> Extend<(K, V)> for SessionData {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        let pairs = sorted_unique(pairs.into_iter().collect());
        let new = pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        *self = self.merge(|_| true, new);
    }
}

/// As `BTreeMap::from([...])`: the last value of a key given twice wins.
impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> From<[(K, V); N]> for SessionData {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, Vec<u8>>> for SessionData {
    fn from(map: BTreeMap<String, Vec<u8>>) -> Self {
        // Sorted and unique already.
        Self::from_sorted(&map.into_iter().collect::<Vec<_>>())
    }
}

impl From<&SessionData> for BTreeMap<String, Vec<u8>> {
    fn from(data: &SessionData) -> Self {
        data.iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect()
    }
}

/// As a map, the way `BTreeMap` prints; values as their bytes.
impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A map of strings to byte sequences: the same calls, so the same bytes,
/// as the `BTreeMap<String, Vec<u8>>` this type replaced.
impl Serialize for SessionData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // With its length up front: bincode needs it, and writes it first.
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SessionData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DataVisitor)
    }
}

/// Reads the map [`SessionData`] serializes to.
struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = SessionData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of string keys to byte values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SessionData, A::Error> {
        // Grown as entries arrive, never sized from the untrusted hint.
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        // Encoders write sorted unique keys; anything else is normalised
        // as `BTreeMap` did, never refused and never a panic.
        Ok(SessionData::from_sorted(&sorted_unique(pairs)))
    }
}

#[cfg(test)]
mod tests;
