//! [`TlsError`]: why the cluster TLS files could not be used.

use std::path::PathBuf;

/// Why the cluster TLS files could not be used: unreadable, no certificate
/// or key in them, a key not matching the certificate, a certificate the CA
/// bundle does not accept. Each names the file (or "the ... PEM" for PEM
/// given in memory).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Read {
        /// Which file: "certificate chain", "private key", "CA bundle".
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM section could not be decoded.
    #[error("{origin}: {source}")]
    Pem {
        /// The file or PEM.
        origin: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate chain or CA bundle without a certificate.
    #[error("{origin} holds no CERTIFICATE section")]
    NoCertificate {
        /// The file or PEM.
        origin: String,
    },
    /// No private key could be read.
    #[error("{origin}: no usable private key ({source})")]
    NoKey {
        /// The file or PEM.
        origin: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate of the CA bundle cannot serve as a trust anchor.
    #[error("{origin}: certificate {number} is not a usable CA: {source}")]
    NotACa {
        /// The CA bundle.
        origin: String,
        /// Its position in the bundle, from 1.
        number: usize,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The fixed server name is neither a DNS name nor an IP address.
    #[error("TLS server name {name:?} is not a DNS name or IP: {source}")]
    ServerName {
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// No client-certificate verifier could be built from the CA bundle.
    #[error("CA bundle: {0}")]
    CaBundle(#[source] rustls::server::VerifierBuilderError),
    /// This member's certificate would be refused by its peers.
    #[error(
        "this member's certificate ({certificate}) is not accepted by the CA bundle ({ca}) as a \
         cluster certificate (it must chain to the bundle, be valid now and allow clientAuth as \
         well as serverAuth): {source}"
    )]
    NotAccepted {
        /// The certificate chain.
        certificate: String,
        /// The CA bundle.
        ca: String,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The private key does not belong to the certificate.
    #[error("{key} does not fit {certificate}: {source}")]
    KeyMismatch {
        /// The key.
        key: String,
        /// The certificate chain.
        certificate: String,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused its own protocol settings (not expected).
    #[error("{0}")]
    Protocol(#[source] rustls::Error),
}
