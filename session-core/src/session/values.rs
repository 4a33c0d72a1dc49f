//! Reading and writing a session's values, typed (`get`, `insert`,
//! `remove`) or untyped as `serde_json::Value` (`get_value`, ...).
//!
//! Values are JSON (serde_json): self-describing, so a value read with
//! another type is an error ([`SessionError::Decode`], naming the key), never
//! a wrong value, and structs that gain `#[serde(default)]` fields still read
//! old sessions. JSON rather than MessagePack: see `benches/encoding.rs` and
//! the crate docs for the measurement; it is also what tower-sessions
//! stores, so a value that works there works here.
//!
//! A value is decoded only when it is read, so a key whose stored value no
//! longer fits its type breaks nothing but the reads of that key.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::error::{Result, SessionError};
use super::Session;

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| SessionError::Encode {
        key: key.to_owned(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| SessionError::Decode {
        key: key.to_owned(),
        source,
    })
}

impl Session {
    /// The value under `key`, decoded as `T`; `None` if absent.
    /// [`SessionError::Decode`] if the stored value is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.ensure_loaded().await?;
        let state = self.inner.state.lock();
        state.value(key).map(|bytes| decode(key, bytes)).transpose()
    }

    /// The value under `key` as untyped JSON; `None` if absent.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>> {
        self.get(key).await
    }

    /// Sets `key` to `value` (saved at the end of the request, or by
    /// [`save`](Self::save)). Setting a value equal to the one the session
    /// holds is no change: no write, no new cookie. Fails with
    /// [`SessionError::TooLarge`] if the session would exceed the layer's
    /// size limit; nothing is recorded then.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        self.insert_encoded(key, encode(key, &value)?).await?;
        Ok(())
    }

    /// Sets `key` to an untyped JSON value; returns the value it replaces
    /// if that differed (`None` if the key was absent or held this value).
    /// The value is set even if the old one does not decode (the error is
    /// still returned).
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<Option<Value>> {
        let old = self.insert_encoded(key, encode(key, &value)?).await?;
        old.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Records `key = bytes` unless the session already holds exactly these
    /// bytes; returns the bytes replaced by a change.
    async fn insert_encoded(&self, key: &str, bytes: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.ensure_loaded().await?;
        let mut state = self.inner.state.lock();
        let old = state.value(key).map(<[u8]>::to_vec);
        // Comparing encodings: equal bytes are equal values. (A map type with
        // random iteration order may encode one value two ways; that costs a
        // redundant write, never a lost one.)
        if old.as_deref() == Some(bytes.as_slice()) {
            return Ok(None);
        }
        let limit = self.inner.context.size_limit as usize;
        let size = state.size_with(key, bytes.len());
        if limit > 0 && size > limit {
            return Err(SessionError::TooLarge { size, limit });
        }
        state.changes.set(key.to_owned(), bytes);
        state.modified = true;
        Ok(old)
    }

    /// Removes `key`, returning its value decoded as `T`. The key is removed
    /// even if decoding fails (the error is still returned).
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let old = self.remove_encoded(key).await?;
        old.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Removes `key`, returning its value as untyped JSON. The key is removed
    /// even if its value does not decode: this is how an app heals a session
    /// holding a value its current types cannot read.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>> {
        self.remove(key).await
    }

    /// Records the removal of `key` if the session holds it; returns the
    /// bytes removed.
    async fn remove_encoded(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.ensure_loaded().await?;
        let mut state = self.inner.state.lock();
        let Some(old) = state.value(key).map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        state.changes.remove(key);
        state.modified = true;
        Ok(Some(old))
    }

    /// Removes every key. A stored session left empty at the end of the
    /// request is deleted and its cookie removed (as tower-sessions does);
    /// insert something in the same request to keep it.
    pub async fn clear(&self) {
        // No load needed: a clear means the same whatever was stored. The
        // layer loads at the end if it has to (to know whether to write).
        let mut state = self.inner.state.lock();
        state.changes.clear();
        state.modified = true;
    }

    /// Whether `key` is set.
    pub async fn contains_key(&self, key: &str) -> Result<bool> {
        self.ensure_loaded().await?;
        Ok(self.inner.state.lock().value(key).is_some())
    }

    /// Whether the session holds no keys (a new session is empty).
    ///
    /// Loads the session if needed. If the store cannot be reached, it
    /// answers what it can tell without the store: empty if the request
    /// named no session; the load error then comes from the next call that
    /// needs the data.
    pub async fn is_empty(&self) -> bool {
        if self.ensure_loaded().await.is_err() {
            return self.inner.incoming.is_none() && self.inner.state.lock().changes.set.is_empty();
        }
        self.inner.state.lock().is_empty()
    }
}
