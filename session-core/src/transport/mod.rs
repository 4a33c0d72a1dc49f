//! How the session id travels: a signed (or encrypted) cookie, or a request
//! header for API clients.
//!
//! The value is `<id>~<token>`: the session id and the newest
//! [`ConsistencyToken`] the client has seen, so a replica serving its next
//! request can wait until it has caught up (read-your-writes). The whole value
//! is signed with HMAC (or encrypted), so a client can neither forge an id nor
//! move its token. Anything that does not verify and parse is treated as no
//! session at all: never an error, never the client's id adopted.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;

use self::signed::{set_cookie_line, Attributes, Signer};
use crate::clock::UnixMillis;
use crate::id::SessionId;
use crate::store::ConsistencyToken;

/// What the response must do with the client's cookie (or header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ClientUpdate {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Send the current id and token.
    Set {
        /// The id to send.
        id: SessionId,
        /// Latest token.
        token: ConsistencyToken,
        /// The record's deadline (cookie Max-Age).
        expires_at: UnixMillis,
        /// A browser-session cookie: no Max-Age ([`Expiry::OnSessionEnd`]).
        ///
        /// [`Expiry::OnSessionEnd`]: crate::Expiry::OnSessionEnd
        browser_session: bool,
    },
    /// Tell the client to forget its session.
    Remove,
}

/// Which way the client sent its session, so the answer goes the same way
/// and only that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Neither the session header nor a cookie of our name came in.
    Nothing,
    /// A cookie of our name that verified.
    Cookie,
    /// Cookies of our name came in, but none verified (malformed, forged,
    /// signed with another key): the answer removes it unless it sets a new one.
    BadCookie,
    /// The request carried the session header (valid or not, even empty):
    /// an API client, answered by header only. Its cookie, if any, is
    /// ignored, so a script that adds the header cannot have the cookie's
    /// value echoed where `HttpOnly` does not protect it.
    Header,
}

/// Cookie and header settings of a layer.
#[derive(Clone)]
pub(crate) struct Transport {
    /// Signs (or encrypts) values.
    pub(crate) key: SealingKey,
    /// Encrypt instead of only signing.
    pub(crate) private: bool,
    /// Cookie name.
    pub(crate) name: String,
    /// Cookie `Path`.
    pub(crate) path: String,
    /// Cookie `Domain` (none: host-only).
    pub(crate) domain: Option<String>,
    /// Cookie `Secure`.
    pub(crate) secure: bool,
    /// Cookie `HttpOnly`.
    pub(crate) http_only: bool,
    /// Cookie `SameSite`.
    pub(crate) same_site: SameSite,
    /// Request/response header that may carry the value instead of the cookie.
    pub(crate) header: Option<HeaderName>,
    /// Values that verified recently. Checking the HMAC is most of what a
    /// session read costs the layer, and a client sends the same value until
    /// its next write; a fresh cache comes with every change of key, name or
    /// mode (see the layer's setters), so it never vouches across settings.
    pub(crate) verified: Arc<VerifiedCache>,
}

/// The layer's [`Key`], with its signing half keyed once for HMAC.
#[derive(Clone)]
pub(crate) struct SealingKey {
    /// The whole key: its encryption half seals private cookies.
    key: Key,
    /// Its signing half, ready to sign.
    signer: Signer,
}

impl SealingKey {
    pub(crate) fn new(key: Key) -> Self {
        let signer = Signer::new(&key);
        Self { key, signer }
    }
}

/// Shards of the verified-value cache.
const CACHE_SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (cheap, and bounds memory to a
/// few MiB however many clients there are).
const CACHE_SHARD_CAPACITY: usize = 1024;

/// One shard: sealed value to the id and token it verified as.
type CacheShard = Mutex<HashMap<Box<str>, (SessionId, ConsistencyToken)>>;

/// How a cached value was sent: as is (a header, or a decoded cookie value)
/// or still percent-encoded as it came in the `Cookie` header. Kept apart so
/// that a form is only ever accepted where it was seen to verify.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// The sealed value itself.
    Plain,
    /// A cookie value as sent, before percent-decoding.
    Encoded,
}

/// A bounded map from sealed cookie value to what it verified as. Only
/// values that passed the HMAC (or decryption) check are ever inserted, so a
/// hit is as good as a check; a forged value always misses and is checked.
#[derive(Debug)]
pub(crate) struct VerifiedCache {
    /// Picks the shard; randomly keyed so that clients cannot aim at one.
    hasher: std::collections::hash_map::RandomState,
    /// The shards of plain values.
    plain: [CacheShard; CACHE_SHARDS],
    /// The shards of cookie values as sent (see [`Form::Encoded`]).
    encoded: [CacheShard; CACHE_SHARDS],
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self {
            hasher: Default::default(),
            plain: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            encoded: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl VerifiedCache {
    fn shard(&self, form: Form, value: &str) -> &CacheShard {
        let shards = match form {
            Form::Plain => &self.plain,
            Form::Encoded => &self.encoded,
        };
        &shards[self.hasher.hash_one(value) as usize % CACHE_SHARDS]
    }

    fn get(&self, form: Form, value: &str) -> Option<(SessionId, ConsistencyToken)> {
        self.shard(form, value).lock().get(value).copied()
    }

    fn insert(&self, form: Form, value: &str, opened: (SessionId, ConsistencyToken)) {
        let mut shard = self.shard(form, value).lock();
        if shard.len() >= CACHE_SHARD_CAPACITY {
            shard.clear();
        }
        shard.insert(value.into(), opened);
    }
}

/// The values of the cookies named `name` in one `Cookie` header value, in
/// order and as sent (trimmed, still percent-encoded).
///
/// Hand-rolled rather than `Cookie::split_parse_encoded`, which decodes and
/// allocates every cookie of the site on every request (a quarter of what a
/// session read cost the layer); here only our own cookie's bytes are looked
/// at further. Works on bytes, so another cookie with non-UTF-8 bytes cannot
/// hide ours. Names are compared as sent: the layer sets its name unencoded.
fn cookie_values<'a>(header: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    header.split(|b| *b == b';').filter_map(move |pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
    })
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must never reach logs.
        f.debug_struct("Transport")
            .field("name", &self.name)
            .field("private", &self.private)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Parses `<id>~<index>.<history in hex>`; a missing token means none, and a
/// token without a history (older cookies) belongs to no known history.
fn parse_value(value: &str) -> Option<(SessionId, ConsistencyToken)> {
    let (id, token) = match value.split_once('~') {
        Some((id, token)) => (id, parse_token(token)?),
        None => (value, ConsistencyToken::NONE),
    };
    Some((SessionId::parse(id).ok()?, token))
}

fn parse_token(text: &str) -> Option<ConsistencyToken> {
    let (index, history) = match text.split_once('.') {
        Some((index, history)) => (index, u64::from_str_radix(history, 16).ok()?),
        None => (text, 0),
    };
    Some(ConsistencyToken::new(history, index.parse().ok()?))
}

fn format_value(id: &SessionId, token: ConsistencyToken) -> String {
    format!("{id}~{}.{:x}", token.index, token.history)
}

impl Transport {
    /// The verified id and token the request carries, and how it came.
    pub(crate) fn read(&self, headers: &HeaderMap) -> (Option<(SessionId, ConsistencyToken)>, Via) {
        if let Some(name) = &self.header {
            let mut values = headers.get_all(name).iter().peekable();
            if values.peek().is_some() {
                let found = values
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|v| self.open_cached(v));
                return (found, Via::Header);
            }
        }
        // Several cookies may share the name (one per path or domain): take
        // the first that verifies.
        let mut seen = false;
        let found = headers
            .get_all(COOKIE)
            .iter()
            .flat_map(|v| cookie_values(v.as_bytes(), &self.name))
            .inspect(|_| seen = true)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| self.open_cookie_cached(v));
        match found {
            Some(found) => (Some(found), Via::Cookie),
            None if seen => (None, Via::BadCookie),
            None => (None, Via::Nothing),
        }
    }

    /// [`Transport::open`] for a sealed value, remembering values that verify.
    fn open_cached(&self, value: &str) -> Option<(SessionId, ConsistencyToken)> {
        if let Some(hit) = self.verified.get(Form::Plain, value) {
            return Some(hit);
        }
        let opened = self.open(value)?;
        self.verified.insert(Form::Plain, value, opened);
        Some(opened)
    }

    /// [`Transport::open`] for a cookie value as sent: a hit skips the
    /// percent-decoding as well as the HMAC; a miss decodes it the way the
    /// `cookie` crate encoded it.
    fn open_cookie_cached(&self, sent: &str) -> Option<(SessionId, ConsistencyToken)> {
        if let Some(hit) = self.verified.get(Form::Encoded, sent) {
            return Some(hit);
        }
        let decoded = percent_encoding::percent_decode_str(sent)
            .decode_utf8()
            .ok()?;
        let opened = self.open(&decoded)?;
        self.verified.insert(Form::Encoded, sent, opened);
        Some(opened)
    }

    /// Verifies (or decrypts) and parses one sealed value.
    fn open(&self, sealed: &str) -> Option<(SessionId, ConsistencyToken)> {
        if !self.private {
            return parse_value(self.key.signer.verify(sealed)?);
        }
        let cookie = Cookie::new(self.name.clone(), sealed.to_owned());
        let opened = CookieJar::new().private(&self.key.key).decrypt(cookie)?;
        parse_value(opened.value())
    }

    /// Signs (or encrypts) a value.
    fn seal(&self, value: String) -> Option<String> {
        if !self.private {
            let mut sealed = String::with_capacity(value.len() + 48);
            self.key.signer.sign_into(&value, &mut sealed);
            return Some(sealed);
        }
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key.key)
            .add(Cookie::new(self.name.clone(), value));
        jar.get(&self.name).map(|sealed| sealed.value().to_owned())
    }

    fn base_cookie(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::build((self.name.clone(), value))
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site)
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    /// Adds the `Set-Cookie` (and session header) that `update` calls for.
    pub(crate) fn write(
        &self,
        headers: &mut HeaderMap,
        update: ClientUpdate,
        via: Via,
        now: UnixMillis,
    ) {
        // `None`: tell the client to forget its session.
        let set: Option<(String, Option<u64>)> = match update {
            // A cookie that did not verify is dead weight the browser would
            // send forever: tell it to drop it.
            ClientUpdate::Keep if via == Via::BadCookie => None,
            ClientUpdate::Keep => return,
            ClientUpdate::Set { expires_at, .. } if expires_at <= now => None,
            ClientUpdate::Set {
                id,
                token,
                expires_at,
                browser_session,
            } => {
                let Some(sealed) = self.seal(format_value(&id, token)) else {
                    return;
                };
                let max_age = (!browser_session).then(|| ((expires_at - now) / 1000).max(1));
                Some((sealed, max_age))
            }
            ClientUpdate::Remove => None,
        };
        if via == Via::Header {
            // Only a client that sent the header gets it back, and it gets
            // no cookie: the header is readable by scripts, so a browser
            // (cookie) client must never see its session value there.
            let value = set.as_ref().map_or("", |(sealed, _)| sealed.as_str());
            if let (Some(name), Ok(value)) = (&self.header, HeaderValue::from_str(value)) {
                headers.insert(name.clone(), value);
            }
            return;
        }
        let line = match set {
            Some((sealed, max_age)) => {
                let attributes = Attributes {
                    http_only: self.http_only,
                    same_site: self.same_site,
                    secure: self.secure,
                    path: &self.path,
                    domain: self.domain.as_deref(),
                    max_age,
                };
                set_cookie_line(&self.name, &sealed, &attributes)
            }
            None => self.removal(),
        };
        if let Ok(value) = HeaderValue::try_from(line) {
            headers.append(SET_COOKIE, value);
        }
    }

    /// The `Set-Cookie` line that makes the browser drop its cookie (rare:
    /// logouts and bad cookies, so the `cookie` crate writes it).
    fn removal(&self) -> String {
        let mut cookie = self.base_cookie(String::new());
        cookie.make_removal();
        cookie.encoded().to_string()
    }
}

mod signed;
#[cfg(test)]
mod tests;
