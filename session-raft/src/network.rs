//! The client side of the cluster RPC: pooled HTTP/1 clients that carry
//! [`crate::rpc`] messages to other members, and openraft's network traits on
//! top of them.
//!
//! Three independent connection pools keep traffic classes from blocking each
//! other (HTTP/1.1 runs one request per connection at a time):
//!
//! - `replication`: append entries, votes, forwarded writes/reads, admin calls;
//! - `heartbeat`: the leader's liveness probes, so that a big append batch
//!   never delays them past a follower's election timeout;
//! - `snapshot`: full snapshot transfers, which can take seconds.
//!
//! Each pool opens more connections when all are busy, so concurrent forwarded
//! writes do not queue behind one another either. A failure to connect, or a
//! peer that answers "unavailable", is reported to openraft as
//! [`Unreachable`], which makes it back off instead of hammering a dead peer.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::{RaftNetworkFactory, RaftNetworkV2};

use crate::append_split;
use session_core::MeshTag;

use crate::group::{GroupName, OwnGroup, GROUP_HEADER};
use crate::lease::ReadLease;
use crate::rpc::{
    self, Request, Response, SnapshotOffer, SnapshotReply, TransferLeaderRequest,
    TransferLeaderResponse, CONTENT_TYPE as BINCODE, REFUSED_UNREAD_HEADER, RPC_PATH,
    SNAPSHOT_PATH, TARGET_HEADER,
};
use crate::snapshot_transfer::{self, SnapshotBody};
use crate::tls::{self, TlsConnector, TlsSetup};
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, Node, NodeId, Snapshot, SnapshotData,
    SnapshotResponse, TypeConfig, Vote, VoteRequest, VoteResponse,
};

/// A pooled HTTP/1 client sending `B` bodies (`Full<Bytes>` for messages, a
/// streamed [`SnapshotBody`] for snapshots), plain or over TLS.
///
/// An enum rather than one client over an enum of streams: the plain variant
/// then runs exactly the code it ran before TLS existed, and the only cost of
/// TLS being possible is this match once per request (not per read or write).
enum HttpClient<B = Full<Bytes>> {
    /// Plain HTTP (the default).
    Plain(Client<HttpConnector, B>),
    /// HTTPS with this member's certificate (see [`crate::tls`]).
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

/// Why a call to another member failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
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
    /// [`REFUSED_UNREAD_HEADER`].
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

/// The HTTP clients of one member and the credentials they present.
#[derive(Clone)]
pub(crate) struct ClusterClient {
    /// Replication, votes, forwarded writes and reads, admin calls.
    replication: HttpClient,
    /// Heartbeats only (see the module docs).
    heartbeat: HttpClient,
    /// Snapshot transfers only, streamed.
    snapshot: HttpClient<SnapshotBody>,
    /// `Bearer <hex secret>`, or `None` in insecure mode.
    authorization: Option<HeaderValue>,
    /// Largest answer accepted.
    max_answer_bytes: usize,
    /// `http` or `https`.
    scheme: &'static str,
    /// The group this member belongs to, named on its calls to its own
    /// group (see [`crate::group`]); `None` for operator tools.
    own_group: Option<OwnGroup>,
}

/// Whom a call is meant for: a member (by id) and a group (see
/// [`crate::group`]), each named only when the caller knows it.
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

/// An error and its causes: hyper's own text for a failed connect is only
/// "client error (Connect)", while the cause says "connection refused" or
/// "timed out", which is what someone reading the message needs.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
        let client = match pool {
            Pool::Replication => &self.replication,
            Pool::Heartbeat => &self.heartbeat,
            // Snapshots go through `send_snapshot`; a message sent with this
            // pool takes the general one.
            Pool::Snapshot => &self.replication,
        };
        let body = Full::new(Bytes::from(body));
        self.post_body(client, target, addr, path, body, timeout)
            .await
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
        let exchange = async {
            let response = client.request(request).await.map_err(|e| {
                // Only looked at once a call failed: no cost on success.
                if let Some(failure) = tls::tls_failure(&e) {
                    if e.is_connect() || tls::is_certificate_refusal(failure) {
                        return CallError::Tls {
                            addr: addr.to_owned(),
                            reason: failure.to_string(),
                        };
                    }
                }
                // A TLS port answers a plain request with a TLS alert, which
                // is no HTTP: a configuration mismatch, not a passing fault,
                // and the peer did not read the request.
                let not_http = std::error::Error::source(&e)
                    .and_then(|source| source.downcast_ref::<hyper::Error>())
                    .filter(|hyper| hyper.is_parse());
                if let Some(parse) = not_http {
                    return CallError::Tls {
                        addr: addr.to_owned(),
                        reason: format!(
                            "the answer is not HTTP ({parse}): is the peer's cluster port \
                             TLS and this member's not?"
                        ),
                    };
                }
                if e.is_connect() {
                    CallError::Connect {
                        addr: addr.to_owned(),
                        reason: with_sources(&e),
                    }
                } else {
                    CallError::Transport {
                        addr: addr.to_owned(),
                        reason: e.to_string(),
                    }
                }
            })?;
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
                let reason = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                let addr = addr.to_owned();
                return Err(if refused_unread {
                    CallError::Refused {
                        addr,
                        status,
                        reason,
                    }
                } else {
                    CallError::BadStatus {
                        addr,
                        status,
                        reason,
                    }
                });
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
    /// mesh (see [`crate::group`]).
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

    /// Streams a full snapshot and decodes the reply.
    async fn send_snapshot(
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

/// Makes openraft's per-peer network clients.
pub(crate) struct NetworkFactory {
    /// This member's id (for timeout reports).
    node_id: NodeId,
    /// Shared HTTP clients.
    client: Arc<ClusterClient>,
    /// This member's read lease: appends carry its quorum age.
    lease: Arc<ReadLease>,
    /// Peers' RPC body limit (every member has the same `max_rpc_bytes`):
    /// larger AppendEntries are split (see [`crate::append_split`]).
    max_rpc_bytes: usize,
}

impl NetworkFactory {
    /// A factory whose clients all share `client`'s pools.
    pub(crate) fn new(
        node_id: NodeId,
        client: Arc<ClusterClient>,
        max_rpc_bytes: usize,
        lease: Arc<ReadLease>,
    ) -> Self {
        Self {
            node_id,
            client,
            max_rpc_bytes,
            lease,
        }
    }

    fn peer(&self, target: NodeId, node: &Node, pool: Pool) -> PeerNetwork {
        PeerNetwork {
            node_id: self.node_id,
            target,
            addr: node.addr.clone(),
            pool,
            client: self.client.clone(),
            lease: self.lease.clone(),
            max_rpc_bytes: self.max_rpc_bytes,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerNetwork {
        self.peer(target, node, Pool::Replication)
    }

    async fn new_heartbeat_client(&mut self, target: NodeId, node: &Node) -> PeerNetwork {
        self.peer(target, node, Pool::Heartbeat)
    }

    async fn new_snapshot_client(&mut self, target: NodeId, node: &Node) -> PeerNetwork {
        self.peer(target, node, Pool::Snapshot)
    }
}

/// openraft's view of one peer: sends Raft messages to it through one pool.
pub(crate) struct PeerNetwork {
    /// This member (for timeout reports).
    node_id: NodeId,
    /// The peer.
    target: NodeId,
    /// Its cluster address.
    addr: String,
    /// The pool this client uses.
    pool: Pool,
    /// Shared HTTP clients.
    client: Arc<ClusterClient>,
    /// This member's read lease (for the quorum age appends carry).
    lease: Arc<ReadLease>,
    /// The peer's RPC body limit.
    max_rpc_bytes: usize,
}

impl PeerNetwork {
    /// Sends one AppendEntries that fits the peer's body limit.
    async fn append_part(
        &self,
        rpc: AppendEntriesRequest,
        option: &RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError<TypeConfig>> {
        match self
            .raft_call(
                Request::LeasedAppendEntries {
                    rpc,
                    quorum_age_ms: self.lease.quorum_age_ms(),
                },
                RPCTypes::AppendEntries,
                option,
            )
            .await?
        {
            Response::AppendEntries(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a Raft message and maps failures to what openraft expects.
    async fn raft_call(
        &self,
        request: Request,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<Response, RPCError<TypeConfig>> {
        let timeout = option.soft_ttl();
        match self
            .client
            .call_node(self.pool, Some(self.target), &self.addr, &request, timeout)
            .await
        {
            Ok(Response::Unavailable(reason)) => Err(RPCError::Unreachable(
                Unreachable::from_string(format!("node {} unavailable: {reason}", self.target)),
            )),
            Ok(response) => Ok(response),
            Err(CallError::Timeout { .. }) => Err(RPCError::Timeout(Timeout {
                action,
                id: self.node_id,
                target: self.target,
                timeout,
            })),
            Err(e) => {
                tracing::debug!(target_node = self.target, error = %e, "raft rpc failed");
                Err(RPCError::Unreachable(Unreachable::from_string(e)))
            }
        }
    }
}

/// An answer of the wrong kind: the peer runs something else.
fn unexpected(response: Response) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "unexpected answer: {response:?}"
    )))
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError<TypeConfig>> {
        let mut parts = append_split::split(rpc, self.max_rpc_bytes);
        if parts.len() == 1 {
            if let Some(whole) = parts.pop() {
                return self.append_part(whole, &option).await;
            }
        }
        let this = &*self;
        append_split::send_parts(parts, |part| this.append_part(part, &option)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        match self
            .raft_call(Request::Vote(rpc), RPCTypes::Vote, &option)
            .await?
        {
            Response::Vote(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        match self
            .raft_call(Request::PreVote(rpc), RPCTypes::Vote, &option)
            .await?
        {
            Response::Vote(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse, StreamingError<TypeConfig>> {
        let offer = SnapshotOffer {
            vote,
            meta: snapshot.meta,
        };
        let timeout = option.soft_ttl();
        let send =
            self.client
                .send_snapshot(self.target, &self.addr, &offer, snapshot.snapshot, timeout);
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = send => reply,
        };
        match reply {
            Ok(SnapshotReply::Installed(response)) => Ok(response),
            Ok(SnapshotReply::Unavailable(reason)) => Err(StreamingError::Unreachable(
                Unreachable::from_string(format!("node {} unavailable: {reason}", self.target)),
            )),
            Err(CallError::Timeout { .. }) => Err(StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.node_id,
                target: self.target,
                timeout,
            })),
            Err(e) => {
                tracing::debug!(target_node = self.target, error = %e, "snapshot transfer failed");
                Err(StreamingError::Unreachable(Unreachable::from_string(e)))
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse, RPCError<TypeConfig>> {
        match self
            .raft_call(
                Request::TransferLeader(req),
                RPCTypes::TransferLeader,
                &option,
            )
            .await?
        {
            Response::TransferLeader(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }
}
