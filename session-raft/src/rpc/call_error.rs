//! [`CallError`]: why a call to another member failed, and whether it may
//! be sent again.

use std::time::Duration;

use http::StatusCode;

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
