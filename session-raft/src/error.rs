//! The errors of a member's lifecycle: why it could not start
//! ([`StartError`]), found no leader in time ([`NoLeader`]), did not stop
//! cleanly ([`ShutdownError`]), or could not get an admin request done
//! ([`AdminError`]). Each names its cause as a typed source, so
//! that callers can match on what went wrong. Each message also includes its
//! cause's, as the errors of this crate did before they had sources, so a
//! plain `{error}` still says everything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::rpc::call_error::CallError;
use crate::rpc::tls::TlsError;

/// A failure inside openraft, kept opaque: openraft's error types are those
/// of a pre-release and not part of this crate's API.
pub type RaftFailure = Box<dyn std::error::Error + Send + Sync>;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent or unsafe.
    #[error("invalid node configuration: {0}")]
    Config(#[source] ConfigError),
    /// The cluster port could not be bound.
    #[error("cannot listen on cluster address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The cluster TLS files could not be read or do not fit together
    /// (unreadable file, no certificate or key in it, key not matching the
    /// certificate, certificate not issued by the CA bundle, ...).
    #[error("cluster TLS: {0}")]
    Tls(#[source] TlsError),
    /// The log or state machine could not be opened.
    #[error("cannot open storage in {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// openraft refused to start, or to initialize the cluster.
    #[error("raft failed to start: {0}")]
    Raft(#[source] RaftFailure),
    /// Joining through the given member failed.
    #[error("could not join the cluster through {via}: {source}")]
    Join {
        /// The member asked.
        via: String,
        /// The last failure.
        #[source]
        source: AdminError,
    },
}

/// Why waiting for a leader failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no leader elected within {0:?}")]
pub struct NoLeader(pub Duration);

/// Raft did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[error("raft did not stop cleanly: {0}")]
pub struct ShutdownError(#[source] pub RaftFailure);

/// Why an admin request (a membership change, or a status asked through
/// [`crate::admin::call`]) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No leader could be reached in time; retrying later may work.
    #[error("not done in time: {last_problem}")]
    Unavailable {
        /// What went wrong last (a member's answer, or a failed call).
        last_problem: String,
    },
    /// The leader refused the change (a node that is not a member, a change
    /// in progress, ...); `reason` is its own words.
    #[error("refused: {reason}")]
    Refused {
        /// The leader's explanation.
        reason: String,
    },
    /// A member refused the request before reading it (malformed, too
    /// large, meant for another member or group), or answered with another
    /// client error.
    #[error("refused: {0}")]
    Rejected(#[source] CallError),
    /// The member at this address refused the cluster secret: it is missing
    /// or not the cluster's. Nothing about the secret itself is said.
    #[error("{addr} refused the cluster secret (missing or wrong)")]
    SecretRefused {
        /// The member's address.
        addr: String,
    },
    /// The address answered `404 Not Found`: a cluster port knows the admin
    /// path, so it is something else, most likely a member's application
    /// port.
    #[error("{addr} answered 404 Not Found: it is not a cluster port (an application port?)")]
    NotAClusterPort {
        /// The address asked.
        addr: String,
    },
    /// The first member asked could not be connected to ([`crate::admin::call`] only; a
    /// joining node keeps trying).
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        /// Its address.
        addr: String,
        /// The failed connection.
        #[source]
        source: CallError,
    },
    /// TLS failed: a TLS handshake refused either way, or a plain member
    /// talking to a TLS one.
    #[error("{0}")]
    Tls(#[source] CallError),
    /// The cluster TLS files given to [`crate::admin::call`] are unusable.
    #[error("cluster TLS: {0}")]
    TlsFiles(#[source] TlsError),
}
