//! Errors a handler can get from a [`Session`](crate::Session) call, and how
//! they become HTTP responses (feature `axum`) so that handlers can use `?`.

use std::time::Duration;

use crate::store::StoreError;

/// Result of [`Session`](crate::Session) calls (exported as
/// `session_core::SessionResult`, so that glob imports do not shadow `Result`).
pub type Result<T, E = SessionError> = std::result::Result<T, E>;

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The value for `key` could not be encoded as JSON (for example a map
    /// whose keys are not strings or numbers).
    #[error("could not encode session value {key:?}: {source}")]
    Encode {
        /// The key being inserted.
        key: String,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// The stored value under `key` does not decode as the requested type:
    /// it was stored as another type, or by a version of the app whose type
    /// no longer fits. Nothing else is affected; the app can heal the
    /// session with [`Session::remove_value`](crate::Session::remove_value)
    /// (which removes the key even when its value does not decode).
    #[error("could not decode session value {key:?}: {source}")]
    Decode {
        /// The key being read.
        key: String,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// The insert would take the session over the layer's size limit; nothing
    /// was recorded.
    #[error("session would be {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size the session would have had.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionError {
    /// The HTTP status this error stands for: 503 when the store is
    /// unavailable (retrying may work), 413 when the session is too large,
    /// 409 on a compare-and-set conflict or a session deleted while the
    /// request ran, 500 otherwise: a real store fault, or a value that does
    /// not decode or encode. A stored value that no longer fits the app's
    /// type is the server's data problem, not the client's (no 4xx), and
    /// retrying will not fix it (no 503); handle
    /// [`SessionError::Decode`] in the handler to answer otherwise.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::Store(StoreError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge { .. } | Self::Store(StoreError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Store(
                StoreError::VersionConflict { .. } | StoreError::NotFound | StoreError::Superseded,
            ) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds to put in `Retry-After`, if the error is temporary.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Store(StoreError::Unavailable { retry_after, .. }) => {
                Some(retry_after_secs(*retry_after))
            }
            _ => None,
        }
    }
}

/// `Retry-After` takes whole seconds: round up, and never say 0 (which would
/// invite an immediate retry storm).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(feature = "axum")]
/// Text for a status the layer or error produced. Deliberately generic: the
/// details (store messages, type names) go to logs, not to clients.
pub(crate) fn public_message(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        503 => "session store unavailable, retry later",
        413 => "session too large",
        409 => "session changed concurrently",
        _ => "session error",
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for SessionError {
    fn into_response(self) -> axum::response::Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "session error");
        }
        let mut response = (status, public_message(status)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn statuses() {
        let unavailable = SessionError::Store(StoreError::unavailable(
            Duration::from_millis(1_500),
            "no quorum",
        ));
        assert_eq!(unavailable.status(), 503);
        assert_eq!(unavailable.retry_after(), Some(2));
        assert_eq!(SessionError::TooLarge { size: 2, limit: 1 }.status(), 413);
        assert_eq!(
            SessionError::Store(StoreError::Backend("io".into())).status(),
            500
        );
        let decode = SessionError::Decode {
            key: "n".into(),
            source: serde_json::from_str::<String>("42").unwrap_err(),
        };
        assert_eq!(decode.status(), 500);
        assert!(decode.to_string().contains("\"n\""), "{decode}");
    }
}
