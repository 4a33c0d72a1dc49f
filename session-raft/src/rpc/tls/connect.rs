//! The client and server halves of a loaded TLS configuration: the hyper
//! connector that opens TLS connections to peers (checking each peer's name),
//! and how a failed handshake is told apart from other connection failures.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

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
    /// Both halves, built by [`super::ClusterTls::load`].
    pub(super) fn new(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
        server_name: Option<ServerName<'static>>,
    ) -> Self {
        Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server_name,
        }
    }

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
pub(super) fn server_name_of(uri: &Uri) -> io::Result<ServerName<'static>> {
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
