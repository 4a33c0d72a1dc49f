//! [`ClusterSecret`], the bytes every member presents on every cluster RPC,
//! and both ends of that check: the `Authorization` header a client sends
//! ([`authorization_value`]) and the server's constant-time comparison
//! ([`SecretCheck`]).

use subtle::ConstantTimeEq;

/// The cluster secret: bytes every member presents on every cluster RPC.
///
/// A newtype so that nothing holding it (a [`NodeConfig`] printed with `{:?}`,
/// an error, a log field) can show it: `Debug` prints `ClusterSecret(<redacted>)`.
/// Dereferences to the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// Wraps secret bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }
}

impl From<Vec<u8>> for ClusterSecret {
    fn from(secret: Vec<u8>) -> Self {
        Self(secret)
    }
}

impl std::ops::Deref for ClusterSecret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not even the length: nothing about the secret belongs in logs.
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Builds the `authorization` header value a secret is presented as.
pub(crate) fn authorization_value(secret: &[u8]) -> String {
    let mut text = String::with_capacity(7 + secret.len() * 2);
    text.push_str("Bearer ");
    for byte in secret {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The server's side of the secret check: the header value it expects, if
/// the cluster has a secret.
#[derive(Debug, Clone)]
pub(crate) struct SecretCheck {
    expected: Option<Vec<u8>>,
}

impl SecretCheck {
    /// Expects `secret`, or accepts everything when there is none (an
    /// insecure cluster, set on purpose).
    pub(crate) fn new(secret: Option<&[u8]>) -> Self {
        Self {
            expected: secret.map(|s| authorization_value(s).into_bytes()),
        }
    }

    /// Whether a request carrying this `Authorization` header may pass.
    /// Compared in constant time (the length is not secret).
    pub(crate) fn allows(&self, provided: Option<&http::HeaderValue>) -> bool {
        let Some(expected) = &self.expected else {
            return true;
        };
        match provided {
            Some(provided) => bool::from(provided.as_bytes().ct_eq(expected)),
            None => false,
        }
    }
}
