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

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

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
    fn read(&self, what: &str) -> Result<Vec<u8>, String> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display())),
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
    pub(crate) fn load(&self) -> Result<TlsSetup, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let chain_pem = self.cert_chain.read("certificate chain")?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", self.cert_chain.origin("certificate chain")))?;
        if chain.is_empty() {
            return Err(format!(
                "{} holds no CERTIFICATE section",
                self.cert_chain.origin("certificate chain")
            ));
        }
        let key_pem = self.key.read("private key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            format!(
                "{}: no usable private key ({e})",
                self.key.origin("private key")
            )
        })?;
        let ca_pem = self.ca.read("CA bundle")?;
        let mut roots = RootCertStore::empty();
        for (i, cert) in CertificateDer::pem_slice_iter(&ca_pem).enumerate() {
            let cert = cert.map_err(|e| format!("{}: {e}", self.ca.origin("CA bundle")))?;
            roots.add(cert).map_err(|e| {
                format!(
                    "{}: certificate {} is not a usable CA: {e}",
                    self.ca.origin("CA bundle"),
                    i + 1
                )
            })?;
        }
        if roots.is_empty() {
            return Err(format!(
                "{} holds no CERTIFICATE section",
                self.ca.origin("CA bundle")
            ));
        }
        let roots = Arc::new(roots);
        let server_name = self
            .server_name
            .as_ref()
            .map(|name| {
                ServerName::try_from(name.clone())
                    .map_err(|e| format!("TLS server name {name:?} is not a DNS name or IP: {e}"))
            })
            .transpose()?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| format!("CA bundle: {e}"))?;
        // Peers will check this member's certificate as a client certificate
        // against the same bundle: check it here, so that a certificate from
        // another CA or without the clientAuth usage fails at start-up with a
        // clear message instead of making every peer refuse this member.
        client_verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map_err(|e| {
                format!(
                    "this member's certificate ({}) is not accepted by the CA bundle ({}) as a \
                     cluster certificate (it must chain to the bundle, be valid now and allow \
                     clientAuth as well as serverAuth): {e}",
                    self.cert_chain.origin("certificate chain"),
                    self.ca.origin("CA bundle"),
                )
            })?;

        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| {
                format!(
                    "{} does not fit {}: {e}",
                    self.key.origin("private key"),
                    self.cert_chain.origin("certificate chain")
                )
            })?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                format!(
                    "{} does not fit {}: {e}",
                    self.key.origin("private key"),
                    self.cert_chain.origin("certificate chain")
                )
            })?;
        Ok(TlsSetup {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }
}

/// The loaded TLS configuration of one member.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    /// Server side of the cluster port.
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// Client side, for connections to peers.
    connector: tokio_rustls::TlsConnector,
    /// Fixed name peers are checked against, if any.
    server_name: Option<ServerName<'static>>,
}

impl TlsSetup {
    /// A hyper connector opening TLS connections through `tcp`.
    pub(crate) fn connector(
        &self,
        tcp: HttpConnector,
        handshake_timeout: Duration,
    ) -> TlsConnector {
        TlsConnector {
            tcp,
            tls: self.connector.clone(),
            server_name: self.server_name.clone(),
            handshake_timeout,
        }
    }
}

/// The name a peer at `uri` must have in its certificate: its host, an IP
/// address when the host parses as one (IPv6 without the URI's brackets).
fn server_name_of(uri: &Uri) -> io::Result<ServerName<'static>> {
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "peer address has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("peer host {host:?} is not a valid TLS server name: {e}"),
        )
    })
}

/// hyper connector that opens a TCP connection (with the pool's settings:
/// source address, no-delay, connect timeout) and runs a TLS handshake on it.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    /// TCP part.
    tcp: HttpConnector,
    /// TLS part.
    tls: tokio_rustls::TlsConnector,
    /// Fixed peer name, if configured.
    server_name: Option<ServerName<'static>>,
    /// Bound on the handshake, so that a peer that accepts TCP but never
    /// answers the handshake counts as unreachable as fast as a dead one.
    handshake_timeout: Duration,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TlsConnection;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConnection, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let name = match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => server_name_of(&uri),
        };
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        let handshake_timeout = self.handshake_timeout;
        Box::pin(async move {
            let name = name?;
            let tcp = connecting.await?.into_inner();
            let stream = tokio::time::timeout(handshake_timeout, tls.connect(name, tcp))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("TLS handshake not done within {handshake_timeout:?}"),
                    )
                })??;
            Ok(TlsConnection(TokioIo::new(stream)))
        })
    }
}

/// A client TLS connection, as hyper's pool wants it.
pub(crate) struct TlsConnection(TokioIo<tokio_rustls::client::TlsStream<TcpStream>>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// The TLS failure behind an error from a call, if any: a handshake that
/// failed, or the peer's alert that it refused this member's certificate.
///
/// Walks the whole source chain, looking inside `io::Error`s too, because
/// that is where tokio-rustls puts the rustls error (and `io::Error::source`
/// skips it).
pub(crate) fn tls_failure<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = error
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = error.source();
    }
    None
}

/// Whether `error` says the peer refused this member's certificate. With TLS
/// 1.3 the client finishes its side of the handshake before the server has
/// checked the client certificate, so that refusal arrives as an alert on
/// the first read, after the request was written; the server never read the
/// request, so it was not delivered.
pub(crate) fn is_certificate_refusal(error: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        error,
        rustls::Error::AlertReceived(
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
        )
    )
}

#[cfg(test)]
mod tests {
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
        assert!(error.contains("no CERTIFICATE"), "{error}");
        let error = ClusterTls::from_pem_files("/nonexistent/c", "/nonexistent/k", "/x")
            .load()
            .err()
            .unwrap();
        assert!(error.contains("/nonexistent/c"), "{error}");
    }

    #[test]
    fn debug_hides_inline_key() {
        let tls = ClusterTls::from_pem(&b"cert"[..], &b"SECRET-KEY"[..], &b"ca"[..]);
        assert!(!format!("{tls:?}").contains("SECRET-KEY"));
    }
}
