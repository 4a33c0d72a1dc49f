//! [`CallError`]: why a call to another member failed, and whether it may
//! be sent again, and how transport failures and refusals become one.

use std::time::Duration;

use http::StatusCode;

use crate::rpc::tls;

/// Why a call to another member failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection could be made: the request was certainly not delivered,
    /// so retrying it (even a write) is safe.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// No answer in time; the request may or may not have been acted on.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The bound.
        after: Duration,
    },
    /// The connection failed after the request may have been sent.
    #[error("transport failure talking to {addr}: {reason}")]
    Transport {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// TLS failed: the handshake (peer not speaking TLS, its certificate not
    /// trusted or not for its name), the peer refused this member's
    /// certificate, or a plain request reached a TLS port (the answer is no
    /// HTTP). The peer did not read the request. A configuration problem,
    /// which retrying will not fix.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// A member refused the request before acting on it (wrong secret,
    /// wrong member, malformed, too large): its answer carried
    /// [`crate::rpc::REFUSED_UNREAD_HEADER`].
    #[error("{addr} refused the request with {status}: {reason}")]
    Refused {
        /// Peer address.
        addr: String,
        /// HTTP status.
        status: StatusCode,
        /// The peer's explanation.
        reason: String,
    },
    /// A non-`200` answer that is not a member's refusal (a proxy's `502`,
    /// a member's `500`): the request may have been acted on.
    #[error("{addr} answered {status}: {reason}")]
    BadStatus {
        /// Peer address.
        addr: String,
        /// HTTP status.
        status: StatusCode,
        /// The answer's text, shortened.
        reason: String,
    },
    /// The answer could not be decoded; the request may have been acted on.
    #[error("bad answer from {addr}: {reason}")]
    BadAnswer {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
}

impl CallError {
    /// Whether the peer certainly did not act on the request, so that even a
    /// write may be sent again. Everything else (time-out, a connection lost
    /// after sending, a proxy's error status, an answer that does not
    /// decode) leaves the outcome unknown.
    pub(crate) fn not_delivered(&self) -> bool {
        matches!(
            self,
            CallError::Connect { .. } | CallError::Refused { .. } | CallError::Tls { .. }
        )
    }
}

/// An error and its causes: hyper's own text for a failed connect is only
/// "client error (Connect)", while the cause says "connection refused" or
/// "timed out", which is what someone reading the message needs.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failed request as a [`CallError`], saying whether the peer read it.
pub(crate) fn request_error(addr: &str, e: &hyper_util::client::legacy::Error) -> CallError {
    // Only looked at once a call failed: no cost on success.
    if let Some(failure) = tls::tls_failure(e) {
        if e.is_connect() || tls::is_certificate_refusal(failure) {
            return CallError::Tls {
                addr: addr.to_owned(),
                reason: failure.to_string(),
            };
        }
    }
    // A TLS port answers a plain request with a TLS alert, which
    // is no HTTP: a configuration mismatch, not a passing fault,
    // and the peer did not read the request.
    let not_http = std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<hyper::Error>())
        .filter(|hyper| hyper.is_parse());
    if let Some(parse) = not_http {
        return CallError::Tls {
            addr: addr.to_owned(),
            reason: format!(
                "the answer is not HTTP ({parse}): is the peer's cluster port \
                 TLS and this member's not?"
            ),
        };
    }
    if e.is_connect() {
        CallError::Connect {
            addr: addr.to_owned(),
            reason: with_sources(e),
        }
    } else {
        CallError::Transport {
            addr: addr.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// A non-`200` answer as a [`CallError`]: a refusal only if the member
/// said it did not act on the call.
pub(crate) fn status_error(
    addr: &str,
    status: StatusCode,
    refused_unread: bool,
    body: &[u8],
) -> CallError {
    let reason = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    let addr = addr.to_owned();
    if refused_unread {
        CallError::Refused {
            addr,
            status,
            reason,
        }
    } else {
        CallError::BadStatus {
            addr,
            status,
            reason,
        }
    }
}
