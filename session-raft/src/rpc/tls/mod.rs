//! Optional TLS of the cluster port, with rustls (the `ring` provider, so that
//! building needs no C/cmake toolchain beyond what `ring` itself uses).
//!
//! Off by default: without a [`ClusterTls`] the server and the clients speak
//! plain HTTP/1 exactly as before, and nothing in this module is on their
//! path. With one, every member:
//!
//! - serves its cluster port over TLS only, with its certificate chain, and
//!   requires every client to present a certificate that chains to the CA
//!   bundle (mutual TLS): members are both servers and clients of each other,
//!   so each already has a certificate, and a connection from anything else
//!   is refused during the handshake, before a byte of a request is read;
//! - connects to peers over TLS, presents the same certificate, and verifies
//!   the peer's certificate against the same CA bundle and against the peer's
//!   name: the host part of the peer's cluster address (an IP address then has
//!   to be an IP SAN of the certificate), or one fixed name for every peer set
//!   with [`ClusterTls::with_server_name`], for deployments whose certificates
//!   name a service rather than each member's address.
//!
//! The cluster secret is still checked on every request: TLS authenticates
//! and encrypts the connection, the secret authorizes the request, and a leak
//! of one does not open the cluster alone.
//!
//! Certificates therefore need both the `serverAuth` and `clientAuth` extended
//! key usages (or no extended key usage extension at all); start-up checks
//! that this member's own certificate chains to its CA bundle as a client
//! certificate, so a mismatch is a clear [`crate::StartError::Tls`] rather
//! than a cluster whose members silently refuse each other.

mod connect;
mod error;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub(crate) use connect::{is_certificate_refusal, tls_failure, TlsConnector, TlsSetup};
pub use error::TlsError;

/// TLS settings of the cluster port: this member's certificate chain and
/// private key, and the CA bundle that peers' certificates must chain to.
///
/// Every member of a cluster (and of every mesh of a deployment) uses the
/// same CA bundle; each has its own certificate, valid for the host part of
/// its advertised cluster address (DNS name or IP address SAN) or for the
/// common name set with [`ClusterTls::with_server_name`].
///
/// Files are read when the node starts ([`crate::RaftNode::start`]); bad ones
/// make it fail with [`crate::StartError::Tls`]. `Debug` never shows key bytes.
#[derive(Clone)]
pub struct ClusterTls {
    /// PEM certificate chain, this member's certificate first.
    cert_chain: Pem,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    key: Pem,
    /// PEM CA certificates that peers' certificates must chain to.
    ca: Pem,
    /// Name every peer's certificate is checked against, instead of the host
    /// part of its address.
    server_name: Option<String>,
}

/// Where PEM text comes from.
#[derive(Clone)]
enum Pem {
    /// A file, read at start-up.
    File(PathBuf),
    /// Bytes given directly.
    Inline(Arc<[u8]>),
}

impl Pem {
    /// The PEM text, with a description of its origin for errors.
    fn read(&self, what: &'static str) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.clone(),
                source,
            }),
            Pem::Inline(bytes) => Ok(bytes.to_vec()),
        }
    }

    /// How errors name it.
    fn origin(&self, what: &str) -> String {
        match self {
            Pem::File(path) => format!("the {what} file {}", path.display()),
            Pem::Inline(_) => format!("the {what} PEM"),
        }
    }
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths are fine to log; inline PEM (the key above all) is not.
        fn show(pem: &Pem) -> String {
            match pem {
                Pem::File(path) => path.display().to_string(),
                Pem::Inline(_) => "<inline>".into(),
            }
        }
        f.debug_struct("ClusterTls")
            .field("cert_chain", &show(&self.cert_chain))
            .field("key", &show(&self.key))
            .field("ca", &show(&self.ca))
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClusterTls {
    /// TLS from PEM files: `cert_chain` (this member's certificate first, then
    /// any intermediates), its private `key`, and the `ca` bundle peers are
    /// verified against. Nothing is read until the node starts.
    pub fn from_pem_files(
        cert_chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        ca: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cert_chain: Pem::File(cert_chain.into()),
            key: Pem::File(key.into()),
            ca: Pem::File(ca.into()),
            server_name: None,
        }
    }

    /// TLS from PEM text held in memory (secrets managers, tests).
    pub fn from_pem(
        cert_chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
        ca: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            cert_chain: Pem::Inline(cert_chain.into().into()),
            key: Pem::Inline(key.into().into()),
            ca: Pem::Inline(ca.into().into()),
            server_name: None,
        }
    }

    /// Checks every peer's certificate against `name` (a DNS name or an IP
    /// address) instead of the host part of the peer's cluster address. For
    /// deployments where members are addressed by IP but all carry a
    /// certificate for one service name.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The fixed name peers are checked against, if set.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Reads and checks everything, and builds the server and client sides.
    pub(crate) fn load(&self) -> Result<TlsSetup, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let chain_pem = self.cert_chain.read("certificate chain")?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                origin: self.cert_chain.origin("certificate chain"),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                origin: self.cert_chain.origin("certificate chain"),
            });
        }
        let key_pem = self.key.read("private key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::NoKey {
            origin: self.key.origin("private key"),
            source,
        })?;
        let ca_pem = self.ca.read("CA bundle")?;
        let mut roots = RootCertStore::empty();
        for (i, cert) in CertificateDer::pem_slice_iter(&ca_pem).enumerate() {
            let cert = cert.map_err(|source| TlsError::Pem {
                origin: self.ca.origin("CA bundle"),
                source,
            })?;
            roots.add(cert).map_err(|source| TlsError::NotACa {
                origin: self.ca.origin("CA bundle"),
                number: i + 1,
                source,
            })?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCertificate {
                origin: self.ca.origin("CA bundle"),
            });
        }
        let roots = Arc::new(roots);
        let server_name = self
            .server_name
            .as_ref()
            .map(|name| {
                ServerName::try_from(name.clone()).map_err(|source| TlsError::ServerName {
                    name: name.clone(),
                    source,
                })
            })
            .transpose()?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(TlsError::CaBundle)?;
        // Peers will check this member's certificate as a client certificate
        // against the same bundle: check it here, so that a certificate from
        // another CA or without the clientAuth usage fails at start-up with a
        // clear message instead of making every peer refuse this member.
        client_verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map_err(|source| TlsError::NotAccepted {
                certificate: self.cert_chain.origin("certificate chain"),
                ca: self.ca.origin("CA bundle"),
                source,
            })?;

        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Protocol)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|source| TlsError::KeyMismatch {
                key: self.key.origin("private key"),
                certificate: self.cert_chain.origin("certificate chain"),
                source,
            })?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Protocol)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|source| TlsError::KeyMismatch {
                key: self.key.origin("private key"),
                certificate: self.cert_chain.origin("certificate chain"),
                source,
            })?;
        Ok(TlsSetup::new(server, client, server_name))
    }
}

#[cfg(test)]
mod tests {
    use super::connect::server_name_of;
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        let name = |uri: &str| server_name_of(&uri.parse().unwrap()).unwrap();
        assert!(matches!(
            name("https://127.0.0.1:7000/raft/rpc"),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            name("https://[::1]:7000/raft/rpc"),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            name("https://node-1.cluster.internal:7000/raft/rpc"),
            ServerName::DnsName(_)
        ));
    }

    #[test]
    fn bad_pem_is_an_error_not_a_panic() {
        let error = ClusterTls::from_pem(&b"junk"[..], &b"junk"[..], &b"junk"[..])
            .load()
            .err()
            .unwrap();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        let error = ClusterTls::from_pem_files("/nonexistent/c", "/nonexistent/k", "/x")
            .load()
            .err()
            .unwrap();
        assert!(error.to_string().contains("/nonexistent/c"), "{error}");
    }

    #[test]
    fn debug_hides_inline_key() {
        let tls = ClusterTls::from_pem(&b"cert"[..], &b"SECRET-KEY"[..], &b"ca"[..]);
        assert!(!format!("{tls:?}").contains("SECRET-KEY"));
    }
}
