//! openraft's network traits on top of [`ClusterClient`]: a factory of
//! per-peer clients, and the Raft messages (append entries, split to fit
//! the body limit, votes, snapshots, leadership transfer) they send.
//! Replication streams its appends ([`crate::rpc::append_pipeline`]);
//! heartbeats stay one call at a time on their own pool, so that they never
//! wait behind a stream or a snapshot.

use std::future::Future;
use std::sync::Arc;

use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{stream_append_sequential, RPCOption, RPCTypes};
use openraft::raft::StreamAppendResult;
use openraft::{RaftNetworkFactory, RaftNetworkV2};

use crate::rpc::append_pipeline::{self, Pipeline};
use crate::rpc::append_split;

use crate::lease::ReadLease;
use crate::rpc::{
    Request, Response, SnapshotOffer, SnapshotReply, TransferLeaderRequest, TransferLeaderResponse,
};
use crate::storage::snapshot::{Snapshot, SnapshotData};
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, Node, NodeId, SnapshotResponse, TypeConfig, Vote,
    VoteRequest, VoteResponse,
};

use super::call_error::CallError;
use super::client::{ClusterClient, Pool};

/// Makes openraft's per-peer network clients.
pub(crate) struct NetworkFactory {
    /// This member's id (for timeout reports).
    node_id: NodeId,
    /// Shared HTTP clients.
    client: Arc<ClusterClient>,
    /// This member's read lease: appends carry its quorum age.
    lease: Arc<ReadLease>,
    /// Peers' RPC body limit (every member has the same `max_rpc_bytes`):
    /// larger AppendEntries are split (see [`crate::rpc::append_split`]).
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

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: futures::Stream<Item = AppendEntriesRequest> + openraft::OptionalSend + Unpin + 'static,
    {
        match self.pool {
            Pool::Replication => {
                let pipeline = Pipeline {
                    node_id: self.node_id,
                    target: self.target,
                    addr: self.addr.clone(),
                    client: self.client.clone(),
                    lease: self.lease.clone(),
                    max_rpc_bytes: self.max_rpc_bytes,
                };
                append_pipeline::stream_append(pipeline, input, option)
            }
            // openraft's heartbeats: one append each, on the heartbeat pool.
            Pool::Heartbeat | Pool::Snapshot => stream_append_sequential(self, input, option),
        }
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
