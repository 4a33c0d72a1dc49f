//! [`ClusterClient`]: the pooled HTTP/1 clients (plain or TLS) of one
//! member, the credentials and target headers every call carries, and the
//! mapping of transport failures to [`CallError`].

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;

use session_core::MeshTag;

use crate::rpc::append_stream::{FrameBody, APPEND_STREAM_PATH};
use crate::rpc::group::{GroupName, OwnGroup, GROUP_HEADER};
use crate::rpc::snapshot_transfer::{self, SnapshotBody};
use crate::rpc::tls::{TlsConnector, TlsSetup};
use crate::rpc::{
    self, Request, Response, SnapshotOffer, SnapshotReply, CONTENT_TYPE as BINCODE,
    REFUSED_UNREAD_HEADER, RPC_PATH, SNAPSHOT_PATH, TARGET_HEADER,
};
use crate::secret::authorization_value;
use crate::storage::snapshot::SnapshotData;
use crate::types::NodeId;

use super::call_error::{request_error, status_error, CallError};

/// A pooled HTTP/1 client sending `B` bodies (`Full<Bytes>` for messages, a
/// streamed [`SnapshotBody`] for snapshots), plain or over TLS.
///
/// An enum rather than one client over an enum of streams: the plain variant
/// then runs exactly the code it ran before TLS existed, and the only cost of
/// TLS being possible is this match once per request (not per read or write).
enum HttpClient<B = Full<Bytes>> {
    /// Plain HTTP (the default).
    Plain(Client<HttpConnector, B>),
    /// HTTPS with this member's certificate (see [`crate::rpc::tls`]).
    Tls(Client<TlsConnector, B>),
}

// By hand: a derive would ask for `B: Clone`, which a streamed body is not.
impl<B> Clone for HttpClient<B> {
    fn clone(&self) -> Self {
        match self {
            HttpClient::Plain(client) => HttpClient::Plain(client.clone()),
            HttpClient::Tls(client) => HttpClient::Tls(client.clone()),
        }
    }
}

impl<B> HttpClient<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn request(&self, request: http::Request<B>) -> ResponseFuture {
        match self {
            HttpClient::Plain(client) => client.request(request),
            HttpClient::Tls(client) => client.request(request),
        }
    }
}

/// The HTTP clients of one member and the credentials they present.
#[derive(Clone)]
pub(crate) struct ClusterClient {
    /// Replication, votes, forwarded writes and reads, admin calls.
    /// Also carries replication streams (see [`crate::rpc::append_stream`]):
    /// a stream then starts on a connection votes or writes already opened
    /// (a new one may be slow to get through), and hands it back when it ends.
    replication: HttpClient<Either<Full<Bytes>, FrameBody>>,
    /// Heartbeats only (see the module docs).
    heartbeat: HttpClient,
    /// Snapshot transfers only, streamed.
    snapshot: HttpClient<SnapshotBody>,
    /// `Bearer <hex secret>`, or `None` in insecure mode.
    authorization: Option<HeaderValue>,
    /// Bound on making a connection.
    connect_timeout: Duration,
    /// Largest answer accepted.
    max_answer_bytes: usize,
    /// `http` or `https`.
    scheme: &'static str,
    /// The group this member belongs to, named on its calls to its own
    /// group (see [`crate::rpc::group`]); `None` for operator tools.
    own_group: Option<OwnGroup>,
}

/// Whom a call is meant for: a member (by id) and a group (see
/// [`crate::rpc::group`]), each named only when the caller knows it.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// The member.
    node: Option<NodeId>,
    /// The group.
    group: Option<GroupName>,
}

/// Which pool a call goes through.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pool {
    /// The general pool.
    Replication,
    /// The heartbeat pool.
    Heartbeat,
    /// The snapshot pool.
    Snapshot,
}

fn http_client<B>(
    connect_timeout: Duration,
    outbound_ip: Option<IpAddr>,
    tls: Option<&TlsSetup>,
) -> HttpClient<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    connector.set_local_address(outbound_ip);
    // Raft messages are small and latency-bound: no Nagle delay.
    connector.set_nodelay(true);
    // A peer that is down must fail fast so openraft can back off and elect.
    connector.set_connect_timeout(Some(connect_timeout));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        // Shorter than the server's idle limit, so that the client never reuses
        // a connection the server is closing (a write sent on it would have
        // an unknown outcome).
        .pool_idle_timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(16);
    match tls {
        None => HttpClient::Plain(builder.build(connector)),
        Some(tls) => {
            // The URIs say `https`; the TCP part must not refuse them.
            connector.enforce_http(false);
            // A peer that accepted the TCP connection is alive: a slow
            // handshake is more likely load than death, so it gets longer
            // than the connect; the call's own timeout still bounds both.
            let handshake_timeout = connect_timeout.max(Duration::from_secs(2));
            HttpClient::Tls(builder.build(tls.connector(connector, handshake_timeout)))
        }
    }
}

impl ClusterClient {
    /// Clients presenting `secret` (if any), over TLS if `tls` is set.
    pub(crate) fn new(
        secret: Option<&[u8]>,
        outbound_ip: Option<IpAddr>,
        connect_timeout: Duration,
        max_answer_bytes: usize,
        tls: Option<&TlsSetup>,
    ) -> Self {
        let authorization = secret.map(|s| {
            let mut value = HeaderValue::from_str(&authorization_value(s))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
            value.set_sensitive(true);
            value
        });
        Self {
            replication: http_client(connect_timeout, outbound_ip, tls),
            heartbeat: http_client(connect_timeout, outbound_ip, tls),
            snapshot: http_client(connect_timeout, outbound_ip, tls),
            authorization,
            connect_timeout,
            max_answer_bytes,
            scheme: if tls.is_some() { "https" } else { "http" },
            own_group: None,
        }
    }

    /// Names `group` on every call to this member's own group.
    pub(crate) fn with_own_group(mut self, group: OwnGroup) -> Self {
        self.own_group = Some(group);
        self
    }

    /// POSTs `body` to `path` at `addr` and returns the `200` answer's body.
    async fn post(
        &self,
        pool: Pool,
        target: Target,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let body = Full::new(Bytes::from(body));
        match pool {
            Pool::Heartbeat => {
                self.post_body(&self.heartbeat, target, addr, path, body, timeout)
                    .await
            }
            // Snapshots go through `send_snapshot`; a message sent with this
            // pool takes the general one.
            Pool::Replication | Pool::Snapshot => {
                let body = Either::Left(body);
                self.post_body(&self.replication, target, addr, path, body, timeout)
                    .await
            }
        }
    }

    /// A `POST` of `body` to `path` at `addr` with this member's
    /// credentials and the target's headers.
    fn prepare<B>(
        &self,
        target: Target,
        addr: &str,
        path: &str,
        body: B,
    ) -> Result<http::Request<B>, CallError> {
        let mut request = http::Request::post(format!("{}://{addr}{path}", self.scheme))
            .header(CONTENT_TYPE, BINCODE)
            .body(body)
            .map_err(|e| CallError::Connect {
                addr: addr.to_owned(),
                reason: format!("bad peer address: {e}"),
            })?;
        if let Some(auth) = &self.authorization {
            request.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        if let Some(node) = target.node {
            request
                .headers_mut()
                .insert(TARGET_HEADER, http::HeaderValue::from(node));
        }
        if let Some(group) = target.group {
            request
                .headers_mut()
                .insert(GROUP_HEADER, group.header_value());
        }
        Ok(request)
    }

    /// POSTs `body` through `client`; see [`Self::post`].
    async fn post_body<B>(
        &self,
        client: &HttpClient<B>,
        target: Target,
        addr: &str,
        path: &str,
        body: B,
        timeout: Duration,
    ) -> Result<Bytes, CallError>
    where
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request = self.prepare(target, addr, path, body)?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| request_error(addr, &e))?;
            let status = response.status();
            let refused_unread = response.headers().contains_key(REFUSED_UNREAD_HEADER);
            let body = Limited::new(response.into_body(), self.max_answer_bytes)
                .collect()
                .await
                .map_err(|e| CallError::Transport {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(status_error(addr, status, refused_unread, &body));
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                addr: addr.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Sends one [`Request`] to whoever serves `addr` and decodes the
    /// [`Response`].
    pub(crate) async fn call(
        &self,
        pool: Pool,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.call_node(pool, None, addr, request, timeout).await
    }

    /// Like [`Self::call`], to a member of another mesh: the call names that
    /// mesh (see [`crate::rpc::group`]).
    pub(crate) async fn call_mesh(
        &self,
        mesh: MeshTag,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let target = Target {
            node: None,
            group: Some(GroupName {
                mesh: Some(mesh),
                cluster_id: 0,
            }),
        };
        self.call_target(Pool::Replication, target, addr, request, timeout)
            .await
    }

    /// The target of a call to member `node` (if named) of this member's
    /// own group.
    fn own_target(&self, node: Option<NodeId>) -> Target {
        Target {
            node,
            group: self.own_group.as_ref().map(OwnGroup::name),
        }
    }

    /// Like [`Self::call`], naming the member meant (`target`): a server
    /// that is another member refuses the call (see [`TARGET_HEADER`]).
    pub(crate) async fn call_node(
        &self,
        pool: Pool,
        target: Option<NodeId>,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let target = self.own_target(target);
        self.call_target(pool, target, addr, request, timeout).await
    }

    async fn call_target(
        &self,
        pool: Pool,
        target: Target,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let body = rpc::encode(request).map_err(|e| CallError::Connect {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        let answer = self
            .post(pool, target, addr, RPC_PATH, body, timeout)
            .await?;
        rpc::decode(&answer, self.max_answer_bytes).map_err(|e| CallError::BadAnswer {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Largest answer accepted (and the limit answer frames decode under).
    pub(crate) fn max_answer_bytes(&self) -> usize {
        self.max_answer_bytes
    }

    /// Opens a replication stream to member `target` at `addr`: `POST`s
    /// `body`, whose frames go out as they are fed, and returns the answer
    /// body once the follower has accepted the stream (a `200` head).
    ///
    /// Bounded by `timeout` or the connect bound, whichever is longer: this
    /// is making a connection, which may take longer than one append may
    /// (a new connection through a slow proxy), and a bound shorter than
    /// that would give up on every attempt, each on a new connection.
    pub(crate) async fn open_append_stream(
        &self,
        target: NodeId,
        addr: &str,
        body: FrameBody,
        timeout: Duration,
    ) -> Result<Incoming, CallError> {
        let request = self.prepare(
            self.own_target(Some(target)),
            addr,
            APPEND_STREAM_PATH,
            Either::Right(body),
        )?;
        let open = async {
            let response = self
                .replication
                .request(request)
                .await
                .map_err(|e| request_error(addr, &e))?;
            let status = response.status();
            if status == StatusCode::OK {
                return Ok(response.into_body());
            }
            let refused_unread = response.headers().contains_key(REFUSED_UNREAD_HEADER);
            let body = Limited::new(response.into_body(), self.max_answer_bytes)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            Err(status_error(addr, status, refused_unread, &body))
        };
        let timeout = timeout.max(self.connect_timeout);
        tokio::time::timeout(timeout, open)
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Timeout {
                    addr: addr.to_owned(),
                    after: timeout,
                })
            })
    }

    /// Streams a full snapshot and decodes the reply.
    pub(super) async fn send_snapshot(
        &self,
        target: NodeId,
        addr: &str,
        offer: &SnapshotOffer,
        data: SnapshotData,
        timeout: Duration,
    ) -> Result<SnapshotReply, CallError> {
        let body = snapshot_transfer::body(offer, data).map_err(|e| CallError::Connect {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        let answer = self
            .post_body(
                &self.snapshot,
                self.own_target(Some(target)),
                addr,
                SNAPSHOT_PATH,
                body,
                timeout,
            )
            .await?;
        rpc::decode(&answer, self.max_answer_bytes).map_err(|e| CallError::BadAnswer {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })
    }
}
