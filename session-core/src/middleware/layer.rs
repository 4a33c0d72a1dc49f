//! [`SessionLayer`]: configuration, and the factory of [`SessionManager`]s.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use cookie::{Key, SameSite};
use http::HeaderName;
use tower_layer::Layer;

use super::service::SessionManager;
use crate::clock::{Clock, UnixMillis};
use crate::expiry::{std_duration, unix_millis, Expiry, ExpiryPolicy};
use crate::session::Context;
use crate::store::SessionStore;
use crate::transport::Transport;

/// Default cookie name.
const DEFAULT_COOKIE_NAME: &str = "sid";
/// Default largest session: 64 KiB.
const DEFAULT_SIZE_LIMIT: u32 = 64 * 1024;

/// Adds sessions to a service. Configure with the consuming `with_*`
/// setters; every default is the safe choice (signed, `Secure`, `HttpOnly`,
/// `SameSite=Lax`, 24 h idle timeout, 64 KiB size limit).
///
/// ```
/// use std::time::Duration;
/// use session_core::{Key, MemoryStore, SameSite, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::default(), Key::generate())
///     .with_cookie_name("app_session")
///     .with_path("/")
///     .with_domain("example.com")
///     .with_secure(true)
///     .with_http_only(true)
///     .with_same_site(SameSite::Strict)
///     .with_private(true)
///     .with_header(http::HeaderName::from_static("x-session-id"))
///     .with_idle_timeout(Duration::from_secs(30 * 60))
///     .with_absolute_lifetime(Duration::from_secs(12 * 60 * 60))
///     .with_renewal_share(0.25)
///     .with_size_limit(16 * 1024);
/// # let _ = layer;
/// ```
pub struct SessionLayer<S> {
    /// The store, type-erased so that [`Session`](crate::Session) is not generic.
    store: Arc<dyn SessionStore>,
    /// Cookie and header settings, shared with every service the layer
    /// makes: axum may call [`Layer::layer`] per request (a router's layer is
    /// applied to its routes lazily), so that call must not copy them.
    transport: Arc<Transport>,
    /// Time source for expiry.
    clock: Clock,
    /// Idle timeout.
    idle_timeout: Duration,
    /// Absolute lifetime, if any.
    absolute_lifetime: Option<Duration>,
    /// Share of the idle timeout after which a renewal is written.
    renewal_share: f64,
    /// Largest session in bytes (0: none).
    size_limit: u32,
    /// Cookies without Max-Age ([`Expiry::OnSessionEnd`]).
    browser_session: bool,
    /// Every session ends at this instant at the latest ([`Expiry::AtDateTime`]).
    deadline: Option<UnixMillis>,
    /// Renew every session a request carries (tower-sessions' always-save).
    always_save: bool,
    /// Keeps the store type in the layer's type, as users name it.
    _store: PhantomData<fn() -> S>,
}

impl<S> Clone for SessionLayer<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            transport: self.transport.clone(),
            clock: self.clock.clone(),
            idle_timeout: self.idle_timeout,
            absolute_lifetime: self.absolute_lifetime,
            renewal_share: self.renewal_share,
            size_limit: self.size_limit,
            browser_session: self.browser_session,
            deadline: self.deadline,
            always_save: self.always_save,
            _store: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for SessionLayer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("transport", &self.transport)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("size_limit", &self.size_limit)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> SessionLayer<S> {
    /// A layer keeping sessions in `store`, signing cookies with `key`.
    ///
    /// The key must be secret and the same on every instance that serves the
    /// same users (load it from configuration; [`Key::generate`] is only for
    /// tests and single-process apps, as all sessions die on restart).
    pub fn new(store: S, key: Key) -> Self {
        Self {
            store: Arc::new(store),
            transport: Arc::new(Transport {
                key: crate::transport::SealingKey::new(key),
                private: false,
                name: DEFAULT_COOKIE_NAME.to_owned(),
                path: "/".to_owned(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
                header: None,
                verified: Default::default(),
            }),
            clock: Clock::system(),
            idle_timeout: Duration::from_secs(24 * 60 * 60),
            absolute_lifetime: None,
            renewal_share: 0.25,
            size_limit: DEFAULT_SIZE_LIMIT,
            browser_session: false,
            deadline: None,
            always_save: false,
            _store: PhantomData,
        }
    }
}

impl<S> SessionLayer<S> {
    /// Cookie name (default `sid`). A name that does not reveal the framework
    /// gives attackers less to go on.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.transport).name = name.into();
        Arc::make_mut(&mut self.transport).verified = Default::default();
        self
    }

    /// Cookie `Path` (default `/`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.transport).path = path.into();
        self
    }

    /// Cookie `Domain` (default none: host-only).
    ///
    /// **Security:** setting a domain sends the cookie to every subdomain too;
    /// leave it unset unless subdomains must share the session and all of
    /// them are trusted.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.transport).domain = Some(domain.into());
        self
    }

    /// Cookie `Secure` (default `true`): sent over HTTPS only.
    ///
    /// **Security:** turn off only for plain-HTTP development on localhost;
    /// without it the session id crosses the network in clear text.
    pub fn with_secure(mut self, secure: bool) -> Self {
        Arc::make_mut(&mut self.transport).secure = secure;
        self
    }

    /// Cookie `HttpOnly` (default `true`): scripts cannot read the cookie.
    ///
    /// **Security:** turning it off lets any injected script steal sessions.
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        Arc::make_mut(&mut self.transport).http_only = http_only;
        self
    }

    /// Cookie `SameSite` (default `Lax`).
    ///
    /// **Security:** `None` sends the cookie on cross-site requests (CSRF
    /// exposure) and browsers require `Secure` with it; `Strict` is safest
    /// but drops the session on links from other sites.
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        Arc::make_mut(&mut self.transport).same_site = same_site;
        self
    }

    /// Encrypt the cookie value (id and token) instead of only signing it
    /// (default: signed). Signing already stops forgery; encryption also
    /// hides the id's mesh tag and the token from the client.
    pub fn with_private(mut self, private: bool) -> Self {
        Arc::make_mut(&mut self.transport).private = private;
        Arc::make_mut(&mut self.transport).verified = Default::default();
        self
    }

    /// Also accept the session from this request header (for API clients
    /// without cookies), and send the new value back in the same response
    /// header. The value is the same signed `<id>~<token>` as the cookie's.
    ///
    /// A request that carries the header (valid or not; send it empty to
    /// start a session) is a header client: its cookie is ignored and its
    /// answer comes by header only, never `Set-Cookie`. A request without
    /// the header is a cookie client and never gets the header back, so a
    /// browser's session value stays where `HttpOnly` keeps scripts out.
    ///
    /// **Security:** a header is not protected by `HttpOnly` or `SameSite`;
    /// clients must keep the value as secret as a password.
    pub fn with_header(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.transport).header = Some(name);
        self
    }

    /// Idle timeout (default 24 h): a session not used for this long expires.
    /// Renewal is sliding but written only now and then, see
    /// [`with_renewal_share`](Self::with_renewal_share).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Absolute lifetime (default none): a session expires this long after
    /// it was created, however active. Limits how long a stolen id is useful.
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = Some(lifetime);
        self
    }

    /// Share of the idle timeout that must pass before a request that
    /// otherwise only reads writes a renewal (default 0.25; 0 renews on
    /// every request, 1 never renews early). Clamped to `0.0..=1.0`.
    pub fn with_renewal_share(mut self, share: f64) -> Self {
        self.renewal_share = share;
        self
    }

    /// Largest session in bytes, keys and encoded values (default 64 KiB;
    /// 0: no limit). [`Session::insert`](crate::Session::insert) refuses
    /// values that would go over it.
    ///
    /// **Security:** without a limit one client can make the store (and, for
    /// the Raft store, every replica and the log) hold arbitrary amounts.
    pub fn with_size_limit(mut self, bytes: u32) -> Self {
        self.size_limit = bytes;
        self
    }

    /// When sessions end, in tower-sessions' terms, beside the setters
    /// above:
    ///
    /// - [`Expiry::OnSessionEnd`]: browser-session cookies (no `Max-Age`;
    ///   the browser drops them when it closes). The store still ends a
    ///   session after the idle timeout, so an idle one does not live as
    ///   long as the browser.
    /// - [`Expiry::OnInactivity(d)`](Expiry::OnInactivity): the same as
    ///   [`with_idle_timeout(d)`](Self::with_idle_timeout), cookies with
    ///   `Max-Age`.
    /// - [`Expiry::AtDateTime(t)`](Expiry::AtDateTime): every session ends
    ///   at `t` at the latest (the idle timeout still applies before).
    ///
    /// ```
    /// use session_core::{Expiry, Key, MemoryStore, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::default(), Key::generate())
    ///     .with_expiry(Expiry::OnSessionEnd);
    /// # let _ = layer;
    /// ```
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        match expiry {
            Expiry::OnSessionEnd => self.browser_session = true,
            Expiry::OnInactivity(idle) => {
                self.browser_session = false;
                self.idle_timeout = std_duration(idle);
            }
            Expiry::AtDateTime(at) => {
                self.browser_session = false;
                self.deadline = Some(unix_millis(at));
            }
        }
        self
    }

    /// Write every session a request carries, renewing its deadline, even
    /// when the handler changed nothing (default `false`: renewals are
    /// written only once a share of the idle timeout has passed, see
    /// [`with_renewal_share`](Self::with_renewal_share)). As tower-sessions'
    /// `with_always_save`.
    ///
    /// **Cost:** a write per request; with the Raft store, a replicated
    /// write per request. `with_renewal_share(0.0)` renews as exactly but
    /// only on requests that use the session.
    pub fn with_always_save(mut self, always: bool) -> Self {
        self.always_save = always;
        self
    }

    /// The clock used for expiry (default: the system clock). Tests pass
    /// [`Clock::manual`] and move time with [`Clock::advance`].
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl<S, Svc> Layer<Svc> for SessionLayer<S> {
    type Service = SessionManager<Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        let context = Context {
            store: self.store.clone(),
            clock: self.clock.clone(),
            expiry: ExpiryPolicy::new(
                self.idle_timeout,
                self.absolute_lifetime,
                self.renewal_share,
            )
            .with_deadline(self.deadline),
            size_limit: self.size_limit,
            browser_session: self.browser_session,
            always_save: self.always_save,
            metrics: Default::default(),
        };
        SessionManager::new(inner, Arc::new(context), Arc::clone(&self.transport))
    }
}
