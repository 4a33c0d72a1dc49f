//! The cluster-port HTTP server: accepts peers' connections, checks the
//! cluster secret, decodes [`crate::rpc`] messages and hands them to the node.
//!
//! Refusals are HTTP statuses with a short text body, so that they are
//! readable with `curl` and never mistaken for Raft answers: `401` for a
//! missing or wrong secret (logged with the peer address, never the secret),
//! `400` for a malformed body, `413` for an oversized one, `404`/`405` for
//! anything but `POST` to a known path.
//!
//! Replication streams ([`crate::rpc::append_stream`]) pass the same checks
//! and are then served by [`crate::rpc::append_serve`].
//!
//! Shutdown is graceful: the accept loop stops, every open connection finishes
//! its in-flight request and closes (a replication stream ends at once, as it
//! would never finish), and [`ServerHandle::stop`] returns once all
//! connection tasks are gone.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::replica::Replica;
use crate::rpc::append_stream::{FrameBody, FrameError, APPEND_STREAM_PATH};
use crate::rpc::group::{GroupName, OwnGroup, GROUP_HEADER};
use crate::rpc::log_limit::LogLimiter;
use crate::rpc::snapshot_transfer::{self, ReceiveError};
use crate::rpc::{
    self, Request, SnapshotReply, REFUSED_UNREAD_HEADER, RPC_PATH, SNAPSHOT_PATH, TARGET_HEADER,
};
use crate::secret::SecretCheck;
use crate::stop::stopped;

use super::{append_serve, dispatch};

/// What the server needs besides the node.
pub(crate) struct ServerConfig {
    /// This member's id: calls naming another member are refused.
    pub(crate) node_id: crate::types::NodeId,
    /// This member's group: calls naming another group are refused.
    pub(crate) group: OwnGroup,
    /// Keeps refusal warnings to one per reason per interval.
    pub(crate) log_limit: LogLimiter,
    /// The cluster secret every call must present (none: insecure).
    pub(crate) secret: SecretCheck,
    /// Body limit of [`RPC_PATH`].
    pub(crate) max_rpc_bytes: usize,
    /// Body limit of [`SNAPSHOT_PATH`] (besides the offer in front, bound
    /// by `max_rpc_bytes`).
    pub(crate) max_snapshot_bytes: usize,
    /// Where arriving snapshots are spooled: the state directory (so that
    /// installing copies within one file system), or the system's temporary
    /// directory for an in-memory node.
    pub(crate) spool_dir: std::path::PathBuf,
    /// TLS (see [`crate::rpc::tls`]): when set, connections are accepted only
    /// after a handshake with a client certificate from the cluster's CA.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Bound on a peer's TLS handshake, so that a connection that never
/// completes one does not hold a task for long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops the server.
pub(crate) struct ServerHandle {
    /// Tells the accept loop and every connection to finish.
    shutdown: watch::Sender<bool>,
    /// The accept loop, which owns the connection tasks.
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish (bounded), and waits.
    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Starts serving `listener` in the background.
pub(crate) fn spawn(
    listener: TcpListener,
    node: Arc<Replica>,
    config: ServerConfig,
) -> ServerHandle {
    let (shutdown, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, node, Arc::new(config), stop_rx));
    ServerHandle { shutdown, task }
}

async fn accept_loop(
    listener: TcpListener,
    node: Arc<Replica>,
    config: Arc<ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "cluster listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let config = config.clone();
        let mut stop = stop.clone();
        connections.spawn(async move {
            let Some(acceptor) = config.tls.clone() else {
                return serve(TokioIo::new(stream), peer, node, config, stop).await;
            };
            // In the connection's task, so that a slow handshake never holds
            // up the accept loop.
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                _ = stopped(&mut stop) => return,
                handshake = handshake => match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        // Names the peer and the reason (plain HTTP, unknown
                        // CA, no client certificate, ...), never key material.
                        if let Some(held_back) = config.log_limit.allow("tls-handshake") {
                            tracing::warn!(%peer, error = %e, held_back, "refused cluster connection: TLS handshake failed");
                        }
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "cluster connection dropped: TLS handshake timed out");
                        return;
                    }
                },
            };
            serve(TokioIo::new(stream), peer, node, config, stop).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves HTTP/1 on one accepted connection (plain or TLS) until it closes
/// or the server stops.
async fn serve<I>(
    io: I,
    peer: SocketAddr,
    node: Arc<Replica>,
    config: Arc<ServerConfig>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let server_stop = stop.clone();
    let service = service_fn(move |request| {
        let node = node.clone();
        let config = config.clone();
        let stop = server_stop.clone();
        async move { Ok::<_, Infallible>(route(request, peer, node, config, stop).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A peer that opens a connection and sends nothing is dropped.
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "cluster connection ended with an error");
            }
        }
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A plain-text refusal of a call this member did not act on, marked as such
/// (see [`REFUSED_UNREAD_HEADER`]) so that the caller may safely retry it.
fn refuse(status: StatusCode, message: impl Into<String>) -> http::Response<Full<Bytes>> {
    let mut response = failure(status, message);
    response.headers_mut().insert(
        REFUSED_UNREAD_HEADER,
        http::HeaderValue::from_static("not-acted-on"),
    );
    response
}

/// A plain-text failure answer, without any promise about what was done.
fn failure(status: StatusCode, message: impl Into<String>) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(message.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A bincode answer.
fn answer<T: serde::Serialize>(message: &T) -> http::Response<Full<Bytes>> {
    match rpc::encode(message) {
        Ok(body) => {
            let mut response = http::Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static(rpc::CONTENT_TYPE),
            );
            response
        }
        Err(e) => {
            // The call was acted on: its outcome is unknown to the caller.
            tracing::error!(error = %e, "could not encode an answer");
            failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// A cluster call's answer: a whole message, or a replication stream.
type Answer = http::Response<Either<Full<Bytes>, FrameBody>>;

/// Sends replication streams to [`append_serve`] (after the same checks as
/// any call) and every other call to [`handle`].
async fn route(
    request: http::Request<Incoming>,
    peer: SocketAddr,
    node: Arc<Replica>,
    config: Arc<ServerConfig>,
    stop: watch::Receiver<bool>,
) -> Answer {
    if request.uri().path() != APPEND_STREAM_PATH {
        return handle(request, peer, &node, &config)
            .await
            .map(Either::Left);
    }
    if request.method() != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "cluster endpoints take POST",
        )
        .map(Either::Left);
    }
    if let Err(refusal) = admit(&request, peer, &config) {
        return refusal.map(Either::Left);
    }
    let limit = config.max_rpc_bytes;
    let on_refused = Box::new(move |e: &FrameError| {
        if let Some(held_back) = config.log_limit.allow("malformed") {
            tracing::warn!(%peer, error = %e, held_back, "refused a replication stream frame");
        }
    });
    let body = append_serve::serve(node, request.into_body(), limit, stop, on_refused);
    let mut response = http::Response::new(Either::Right(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static(rpc::CONTENT_TYPE),
    );
    response
}

/// The checks every cluster call passes before anything is read of its
/// body: the cluster secret, the member and the group it names.
// The refusal is the whole answer, built once per refused call: its size is
// no cost worth a box.
#[allow(clippy::result_large_err)]
fn admit(
    request: &http::Request<Incoming>,
    peer: SocketAddr,
    config: &ServerConfig,
) -> Result<(), http::Response<Full<Bytes>>> {
    if !config.secret.allows(request.headers().get(AUTHORIZATION)) {
        let (reason, kind) = if request.headers().contains_key(AUTHORIZATION) {
            ("wrong", "secret-wrong")
        } else {
            ("missing", "secret-missing")
        };
        if let Some(held_back) = config.log_limit.allow(kind) {
            tracing::warn!(%peer, path = request.uri().path(), held_back, "refused cluster request: {reason} cluster secret");
        }
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "cluster secret missing or wrong",
        ));
    }
    if let Some(value) = request.headers().get(TARGET_HEADER) {
        let meant = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        match meant {
            Some(meant) if meant == config.node_id => {}
            Some(meant) => {
                if let Some(held_back) = config.log_limit.allow("other-member") {
                    tracing::warn!(
                        %peer,
                        meant,
                        this = config.node_id,
                        held_back,
                        "refused a cluster call meant for another member: its peer address leads here"
                    );
                }
                return Err(refuse(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this is node {}, not node {meant}: check the peer address",
                        config.node_id
                    ),
                ));
            }
            None => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("{TARGET_HEADER} is not a node id"),
                ))
            }
        }
    }
    if let Some(value) = request.headers().get(GROUP_HEADER) {
        let Some(meant) = value.to_str().ok().and_then(GroupName::parse) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("{GROUP_HEADER} is not `<mesh or ->/<cluster id hex>`"),
            ));
        };
        let this = config.group.name();
        if let Some(why) = meant.mismatch(&this) {
            if let Some(held_back) = config.log_limit.allow("other-group") {
                tracing::warn!(
                    %peer,
                    meant = %value.to_str().unwrap_or_default(),
                    this = %this.header_value().to_str().unwrap_or_default(),
                    held_back,
                    "refused a cluster call meant for another group: {why}"
                );
            }
            return Err(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                format!("this is node {} of another group: {why}", config.node_id),
            ));
        }
    }
    Ok(())
}

async fn handle(
    request: http::Request<Incoming>,
    peer: SocketAddr,
    node: &Replica,
    config: &ServerConfig,
) -> http::Response<Full<Bytes>> {
    let limit = match request.uri().path() {
        RPC_PATH => config.max_rpc_bytes,
        SNAPSHOT_PATH => config.max_snapshot_bytes,
        _ => return refuse(StatusCode::NOT_FOUND, "no such cluster endpoint"),
    };
    if request.method() != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "cluster endpoints take POST",
        );
    }
    if let Err(refusal) = admit(&request, peer, config) {
        return refusal;
    }
    if request.uri().path() == SNAPSHOT_PATH {
        return receive_snapshot(request.into_body(), peer, node, config).await;
    }
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                if let Some(held_back) = config.log_limit.allow("oversized") {
                    tracing::warn!(%peer, limit, held_back, "refused oversized cluster request");
                }
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body larger than {limit} bytes"),
                );
            }
            return refuse(StatusCode::BAD_REQUEST, format!("could not read body: {e}"));
        }
    };
    match rpc::decode::<Request>(&body, limit) {
        Ok(request) => {
            let kind = request.kind();
            tracing::trace!(%peer, kind, "cluster request");
            answer(&dispatch::handle(node, request).await)
        }
        Err(e) => {
            if let Some(held_back) = config.log_limit.allow("malformed") {
                tracing::warn!(%peer, error = %e, held_back, "refused malformed cluster request");
            }
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

/// Spools, verifies and installs a snapshot streamed by the leader (see
/// [`crate::rpc::snapshot_transfer`]). A corrupt one is refused and the node
/// keeps running; a body over the limit is a `413`.
async fn receive_snapshot(
    body: Incoming,
    peer: SocketAddr,
    node: &Replica,
    config: &ServerConfig,
) -> http::Response<Full<Bytes>> {
    let received = snapshot_transfer::receive(
        body,
        config.max_rpc_bytes,
        config.max_snapshot_bytes,
        &config.spool_dir,
    )
    .await;
    match received {
        Ok((offer, data)) => {
            answer(&dispatch::install_snapshot(node, offer.vote, offer.meta, data).await)
        }
        Err(e @ ReceiveError::TooLarge { .. }) => {
            if let Some(held_back) = config.log_limit.allow("oversized") {
                tracing::warn!(%peer, error = %e, held_back, "refused oversized snapshot");
            }
            refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Err(e @ (ReceiveError::Malformed(_) | ReceiveError::Body(_))) => {
            if let Some(held_back) = config.log_limit.allow("malformed") {
                tracing::warn!(%peer, error = %e, held_back, "refused malformed snapshot");
            }
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => {
            // Corrupt (or this node cannot spool it): refused, and the
            // leader tries again later.
            tracing::warn!(%peer, error = %e, "refusing a snapshot");
            answer(&SnapshotReply::Unavailable(e.to_string()))
        }
    }
}
