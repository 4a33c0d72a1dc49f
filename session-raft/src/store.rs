//! [`RaftStore`]: the [`SessionStore`] the session layer talks to, and the
//! leader-side halves of forwarded writes and reads.
//!
//! Writes become Raft [`Command`]s. On the leader they are proposed directly
//! (openraft batches concurrent proposals into one append); on a follower they
//! go to a per-node forwarder that packs whatever is queued into one
//! `Write` RPC to the leader, with several RPCs in flight on separate pooled
//! connections. A write reports success only after the leader has committed and
//! applied it; the token and version are the entry's log index.
//!
//! A write is retried on another leader only when the previous attempt
//! certainly did nothing (not the leader, or no connection could be made).
//! When the outcome is unknown (time-out, connection lost mid-request, leader
//! changed after proposing) the caller gets [`StoreError::Unavailable`].
//!
//! Reads are served from the local state machine; [`ReadMode`] decides what a
//! node must know first. A node never answers a read from a state older than
//! the client's token.
//!
//! With meshes, an id tagged with another mesh of the directory is served by
//! that mesh (see [`crate::cross_mesh`]); one tagged with a mesh the
//! directory does not list is treated as missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::ReadPolicy;
use session_core::{
    data_size, ChangeSet, Committed, ConsistencyToken, MeshTag, NewSession, SessionId,
    SessionRecord, SessionStore, StoreError, UnixMillis, PER_KEY_OVERHEAD,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::command::Command;
use crate::config::ReadMode;
use crate::cross_mesh::Route;
use crate::network::{CallError, ClusterClient, Pool};
use crate::node::Shared;
use crate::rpc::{Request, Response, WriteOutcome};
use crate::types::NodeId;

/// Retry hint when there is no leader or quorum (about one election).
const RETRY_SOON: Duration = Duration::from_secs(1);
/// Most commands one forwarded `Write` RPC carries.
const MAX_FORWARD_BATCH: usize = 256;
/// Most forwarded `Write` RPCs in flight at once.
const MAX_FORWARDS_IN_FLIGHT: usize = 8;

/// A replicated [`SessionStore`] backed by a [`crate::RaftNode`]. Cheap to
/// clone; every clone talks to the same node.
#[derive(Clone)]
pub struct RaftStore {
    /// The node's state.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("node_id", &self.shared.node_id)
            .field("mesh", &self.shared.mesh)
            .finish()
    }
}

impl RaftStore {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Id of the node this store reads from and writes through.
    pub fn node_id(&self) -> NodeId {
        self.shared.node_id
    }

    /// Highest log index this node has applied: a read with a token at or
    /// below it is served without waiting.
    pub fn applied_index(&self) -> u64 {
        self.shared.reader.applied_index()
    }
}

#[async_trait]
impl SessionStore for RaftStore {
    async fn load(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        metrics::counter!("session_raft_reads_total").increment(1);
        match self.shared.route(id) {
            Route::Local => self.shared.load(id, token, now).await,
            Route::Mesh(mesh) => self.shared.cross_mesh_load(mesh, id, token, now).await,
            // No mesh serves it: as good as expired, so the layer starts a
            // fresh session.
            Route::Unknown(_) => Ok(None),
        }
    }

    async fn create(&self, id: &SessionId, session: NewSession) -> Result<Committed, StoreError> {
        self.shared.check_write_size(data_size(&session.data))?;
        // The limit goes into the entry so that apply decides alike on every
        // replica (the receiving mesh re-stamps its own, see cross_mesh).
        let command = Command::Create {
            id: *id,
            session,
            max_sessions: self.shared.max_sessions,
        };
        match self.shared.route(id) {
            Route::Local => self.shared.write(command).await,
            Route::Mesh(mesh) => self.shared.cross_mesh_write(mesh, command).await,
            // Ids are minted with this node's own tag; another one nobody
            // serves is a bug or a directory missing a mesh.
            Route::Unknown(mesh) => Err(StoreError::Backend(format!(
                "cannot create a session of mesh {mesh}: not in the mesh directory"
            ))),
        }
    }

    async fn apply(
        &self,
        id: &SessionId,
        changes: ChangeSet,
        now: UnixMillis,
    ) -> Result<Committed, StoreError> {
        self.shared.check_rotation(id, &changes)?;
        let set_bytes: usize = changes
            .set
            .iter()
            .map(|(key, value)| key.len() + value.len() + PER_KEY_OVERHEAD)
            .sum();
        self.shared.check_write_size(set_bytes)?;
        let command = Command::Apply {
            id: *id,
            changes,
            now,
        };
        match self.shared.route(id) {
            Route::Local => self.shared.write(command).await,
            Route::Mesh(mesh) => self.shared.cross_mesh_write(mesh, command).await,
            Route::Unknown(_) => Err(StoreError::NotFound),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<Committed, StoreError> {
        // Stamped so that the state machine remembers the id for a moment:
        // a request racing this logout is then told so (see Tombstones).
        let command = Command::DeleteAt {
            id: *id,
            now: self.shared.clock.now(),
        };
        match self.shared.route(id) {
            Route::Local => self.shared.write(command).await,
            Route::Mesh(mesh) => self.shared.cross_mesh_write(mesh, command).await,
            // Deleting a missing session succeeds; nothing was written, so
            // the token asks for nothing.
            Route::Unknown(_) => Ok(Committed {
                version: 0,
                token: ConsistencyToken::NONE,
            }),
        }
    }

    /// This node's mesh: the layer mints new ids with it.
    fn mesh_tag(&self) -> Option<MeshTag> {
        self.shared.mesh
    }
}

/// Maps one write result of openraft to ours, or `None` if the receiver was
/// not the leader and nothing was proposed. `history` is the group's
/// cluster id, which the token names.
fn write_outcome(
    history: u64,
    result: Result<
        openraft::raft::WriteResponse<crate::types::TypeConfig>,
        ClientWriteError<crate::types::TypeConfig>,
    >,
) -> WriteOutcome {
    match result {
        Ok(written) => WriteOutcome::Done(written.response.result.map(|_version| {
            // The entry's index is both the record's version and the token
            // (the state machine reports the same index as the version).
            Committed {
                version: written.log_id.index,
                token: ConsistencyToken::new(history, written.log_id.index),
            }
        })),
        Err(ClientWriteError::ForwardToLeader(forward)) => WriteOutcome::NotLeader {
            leader: forward.leader_id,
        },
        Err(ClientWriteError::LogEntryDiscarded(_)) => {
            WriteOutcome::Done(Err(StoreError::unavailable(
                RETRY_SOON,
                "leader changed while the write was being committed; its outcome is unknown",
            )))
        }
        Err(other) => WriteOutcome::Done(Err(StoreError::Backend(other.to_string()))),
    }
}

/// One write waiting to be forwarded.
struct ForwardJob {
    /// The command.
    command: Command,
    /// Leader's cluster address.
    addr: String,
    /// When the caller stops waiting: a job still queued then is not sent,
    /// and the RPC carrying it ends by then.
    deadline: Instant,
    /// Where the outcome goes.
    reply: oneshot::Sender<Result<WriteOutcome, CallError>>,
}

/// Queue of writes to forward to the leader, drained in batches by a
/// background task (see [`run_forwarder`]).
#[derive(Clone)]
pub(crate) struct Forwarder {
    /// Jobs for the background task.
    jobs: mpsc::Sender<ForwardJob>,
}

impl Forwarder {
    /// Starts the background task; it ends when every `Forwarder` is dropped.
    pub(crate) fn spawn(client: Arc<ClusterClient>) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_FORWARD_BATCH);
        tokio::spawn(run_forwarder(rx, client));
        Self { jobs }
    }

    /// Forwards one command to the leader at `addr`, giving up at
    /// `deadline` whatever stage it is at (queued, waiting for a free
    /// connection, or sent).
    async fn forward(
        &self,
        command: Command,
        addr: String,
        deadline: Instant,
    ) -> Result<WriteOutcome, CallError> {
        let started = Instant::now();
        let (reply, outcome) = oneshot::channel();
        let job = ForwardJob {
            command,
            addr: addr.clone(),
            deadline,
            reply,
        };
        let not_sent = |reason: &str| CallError::Connect {
            addr: addr.clone(),
            reason: reason.into(),
        };
        match tokio::time::timeout_at(deadline.into(), self.jobs.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(not_sent("the node is shutting down")),
            Err(_) => {
                return Err(not_sent(
                    "the forwarding queue stayed full until the deadline",
                ))
            }
        }
        match tokio::time::timeout_at(deadline.into(), outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(not_sent("the node is shutting down")),
            // Queued or sent: from here the outcome is unknown.
            Err(_) => Err(CallError::Timeout {
                addr,
                after: deadline.saturating_duration_since(started),
            }),
        }
    }
}

/// Packs queued jobs into `Write` RPCs: whatever queued up while earlier RPCs
/// were in flight goes out together, so batches grow with load and a lone
/// write is not delayed.
async fn run_forwarder(mut rx: mpsc::Receiver<ForwardJob>, client: Arc<ClusterClient>) {
    let in_flight = Arc::new(Semaphore::new(MAX_FORWARDS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_FORWARD_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Jobs whose caller gave up while they waited for a connection are
        // not sent at all: nobody would learn their outcome.
        let now = Instant::now();
        let (batch, expired): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| j.deadline > now);
        for job in expired {
            let _ = job.reply.send(Err(CallError::Connect {
                addr: job.addr,
                reason: "not sent: the deadline passed while it was queued".into(),
            }));
        }
        if batch.is_empty() {
            continue;
        }
        // Around a leader change the queue may name two leaders.
        let addr = batch[0].addr.clone();
        let (same, other): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| j.addr == addr);
        for job in other {
            // Rare: send those alone rather than delay the batch.
            let client = client.clone();
            tokio::spawn(send_batch(client, job.addr.clone(), vec![job], None));
        }
        tokio::spawn(send_batch(client.clone(), addr, same, Some(permit)));
    }
}

/// Sends one batch; the RPC lasts no longer than the latest deadline in it
/// (each caller stops waiting at its own).
async fn send_batch(
    client: Arc<ClusterClient>,
    addr: String,
    jobs: Vec<ForwardJob>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let latest = jobs.iter().map(|j| j.deadline).max();
    let rpc_timeout = latest.map_or(Duration::ZERO, |d| {
        d.saturating_duration_since(Instant::now())
    });
    metrics::counter!("session_raft_forwarded_writes_total").increment(jobs.len() as u64);
    metrics::histogram!("session_raft_forward_batch_size").record(jobs.len() as f64);
    let (commands, replies): (Vec<_>, Vec<_>) =
        jobs.into_iter().map(|j| (j.command, j.reply)).unzip();
    let count = commands.len();
    let answer = client
        .call(
            Pool::Replication,
            &addr,
            &Request::Write(commands),
            rpc_timeout,
        )
        .await;
    match answer {
        Ok(Response::Write(outcomes)) if outcomes.len() == count => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(Response::NotLeader { leader, .. }) => {
            for reply in replies {
                let _ = reply.send(Ok(WriteOutcome::NotLeader { leader }));
            }
        }
        Ok(Response::Unavailable(reason)) => {
            // The receiver refused before proposing anything.
            for reply in replies {
                let _ = reply.send(Err(CallError::Connect {
                    addr: addr.clone(),
                    reason: reason.clone(),
                }));
            }
        }
        Ok(other) => {
            let error = CallError::BadAnswer {
                addr: addr.clone(),
                reason: format!("unexpected answer to a write: {other:?}"),
            };
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

impl Shared {
    /// Refuses a write whose session bytes cannot fit one replication
    /// message (see `max_write_bytes`): nothing is proposed.
    fn check_write_size(&self, bytes: usize) -> Result<(), StoreError> {
        if bytes > self.max_write_bytes {
            return Err(StoreError::TooLarge {
                size: bytes,
                limit: self.max_write_bytes,
            });
        }
        Ok(())
    }

    /// The leader this node knows of, and its cluster address.
    pub(crate) fn leader(&self) -> Option<(NodeId, Option<String>)> {
        let metrics = self.raft.server_metrics();
        let metrics = metrics.borrow_watched();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| node.addr.clone());
        Some((leader, addr))
    }

    /// Waits (at most `max`, never past `deadline`) for the known leader to
    /// differ from `seen`, so retries follow elections instead of spinning.
    pub(crate) async fn wait_leader_change(
        &self,
        seen: Option<NodeId>,
        deadline: Instant,
        max: Duration,
    ) {
        let mut metrics = self.raft.server_metrics();
        let until = deadline.min(Instant::now() + max);
        let _ = tokio::time::timeout_at(until.into(), async {
            loop {
                if metrics.borrow_watched().current_leader != seen {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Proposes `command` through the leader, bounded by `write_timeout`.
    pub(crate) async fn write(&self, command: Command) -> Result<Committed, StoreError> {
        self.write_within(command, self.write_timeout).await
    }

    /// Proposes `command` through the leader, bounded by `bound`.
    pub(crate) async fn write_within(
        &self,
        command: Command,
        bound: Duration,
    ) -> Result<Committed, StoreError> {
        metrics::counter!("session_raft_writes_total").increment(1);
        let started = Instant::now();
        let deadline = started + bound;
        let result = self.write_until(command, deadline).await;
        metrics::histogram!("session_raft_commit_seconds").record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("session_raft_write_failures_total").increment(1);
        }
        result
    }

    async fn write_until(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<Committed, StoreError> {
        let mut last_problem = String::from("no leader known");
        loop {
            if Instant::now() >= deadline {
                return Err(StoreError::unavailable(
                    RETRY_SOON,
                    format!("write not committed in time: {last_problem}"),
                ));
            }
            let leader = self.leader();
            let seen = leader.as_ref().map(|(id, _)| *id);
            match leader {
                Some((id, _)) if id == self.node_id => {
                    let proposal = self.raft.client_write(command.clone());
                    match tokio::time::timeout_at(deadline.into(), proposal).await {
                        Err(_) => {
                            return Err(StoreError::unavailable(
                                RETRY_SOON,
                                "write not committed in time (no quorum?); its outcome is unknown",
                            ))
                        }
                        Ok(Err(RaftError::Fatal(fatal))) => {
                            return Err(StoreError::unavailable(
                                RETRY_SOON,
                                format!("raft stopped: {fatal}"),
                            ))
                        }
                        Ok(Err(RaftError::APIError(e))) => match write_outcome(0, Err(e)) {
                            WriteOutcome::Done(result) => return result,
                            WriteOutcome::NotLeader { .. } => {
                                last_problem = "leadership moved".into();
                            }
                        },
                        Ok(Ok(response)) => {
                            let written = openraft::raft::WriteResponse::from(response);
                            let history = self.reader.cluster_id();
                            if let WriteOutcome::Done(result) = write_outcome(history, Ok(written))
                            {
                                return result;
                            }
                        }
                    }
                }
                Some((id, Some(addr))) => {
                    match self
                        .forwarder
                        .forward(command.clone(), addr, deadline)
                        .await
                    {
                        Ok(WriteOutcome::Done(result)) => return result,
                        Ok(WriteOutcome::NotLeader { leader }) => {
                            last_problem = format!("node {id} is no longer the leader");
                            // The old leader may already know the new one
                            // before we do; either way wait for our view to move.
                            let _ = leader;
                        }
                        Err(e) if e.not_delivered() => {
                            last_problem = e.to_string();
                        }
                        Err(e) => {
                            return Err(StoreError::unavailable(
                                RETRY_SOON,
                                format!("forwarding the write failed; its outcome is unknown: {e}"),
                            ))
                        }
                    }
                }
                Some((id, None)) => {
                    last_problem = format!("leader {id} has no known address");
                }
                None => {}
            }
            self.wait_leader_change(seen, deadline, Duration::from_millis(100))
                .await;
        }
    }

    /// Leader side of a forwarded batch: propose all, answer in order.
    pub(crate) async fn serve_forwarded_writes(&self, commands: Vec<Command>) -> Response {
        let count = commands.len();
        if !self.raft.is_leader() {
            return Response::NotLeader {
                leader: self.leader().map(|(id, _)| id),
                addr: None,
            };
        }
        let mut stream = match self.raft.client_write_many(commands).await {
            Ok(stream) => stream,
            Err(fatal) => return Response::Unavailable(format!("raft stopped: {fatal}")),
        };
        let collect = async {
            let mut outcomes = Vec::with_capacity(count);
            while let Some(item) = stream.next().await {
                outcomes.push(match item {
                    Ok(result) => write_outcome(self.reader.cluster_id(), result),
                    Err(fatal) => WriteOutcome::Done(Err(StoreError::unavailable(
                        RETRY_SOON,
                        format!("raft stopped: {fatal}"),
                    ))),
                });
            }
            outcomes
        };
        match tokio::time::timeout(self.write_timeout, collect).await {
            Ok(mut outcomes) => {
                // A stream cut short (core stopped) leaves unknown outcomes.
                while outcomes.len() < count {
                    outcomes.push(WriteOutcome::Done(Err(StoreError::unavailable(
                        RETRY_SOON,
                        "raft stopped; the write's outcome is unknown",
                    ))));
                }
                Response::Write(outcomes)
            }
            Err(_) => Response::Write(vec![
                WriteOutcome::Done(Err(StoreError::unavailable(
                    RETRY_SOON,
                    "write not committed in time (no quorum?); its outcome is unknown",
                )));
                count
            ]),
        }
    }

    /// Waits until this node has applied `index`, at most `wait`.
    pub(crate) async fn wait_applied(&self, index: u64, wait: Duration) -> bool {
        if self.reader.applied_index() >= index {
            return true;
        }
        let mut applied = self.reader.watch_applied();
        tokio::time::timeout(wait, applied.wait_for(|applied| *applied >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The client's token as this group honours it. A token of another
    /// history (a wiped and rebuilt cluster, another mesh, a cookie from
    /// before histories) names an index this group may not reach for days:
    /// it asks for nothing here. A member that has not yet applied the
    /// group's cluster id cannot tell, and keeps the token (it waits, then
    /// asks the leader, who can).
    pub(crate) fn honoured(&self, token: ConsistencyToken) -> ConsistencyToken {
        let own = self.reader.cluster_id();
        if own == 0 || token.history == own {
            return token;
        }
        if !token.is_none() {
            metrics::counter!("session_raft_foreign_tokens_total").increment(1);
        }
        ConsistencyToken::NONE
    }

    /// The session as this node's state machine has it, or
    /// [`StoreError::Superseded`] for an id a login or logout took away
    /// moments ago.
    fn local_get(
        &self,
        id: &SessionId,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        match self.reader.get(id, now) {
            None if self.reader.superseded(id, now) => Err(StoreError::Superseded),
            found => Ok(found),
        }
    }

    /// A read under the configured [`ReadMode`].
    pub(crate) async fn load(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let token = self.honoured(token);
        match self.read_mode {
            ReadMode::Local => self.local_get(id, now),
            ReadMode::Session => {
                if !self.lease.allows_local_reads() {
                    // Cut off (or a leader without its majority): what this
                    // member holds may miss a logout; only the leader knows.
                    metrics::counter!("session_raft_reads_without_lease_total").increment(1);
                    return self.load_from_leader(id, token, now).await;
                }
                if self.wait_applied(token.index, self.read_wait).await {
                    return self.local_get(id, now);
                }
                metrics::counter!("session_raft_reads_forwarded_total").increment(1);
                self.load_from_leader(id, token, now).await
            }
            ReadMode::Linearizable => {
                let index = self.read_index().await?;
                if self
                    .wait_applied(index.max(token.index), self.read_wait)
                    .await
                {
                    self.local_get(id, now)
                } else {
                    Err(StoreError::unavailable(
                        RETRY_SOON,
                        format!("this node has not applied the read index {index} in time"),
                    ))
                }
            }
        }
    }

    /// Asks the leader to serve a read this node is too far behind for.
    async fn load_from_leader(
        &self,
        id: &SessionId,
        token: ConsistencyToken,
        now: UnixMillis,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let behind = || {
            let reason = if self.lease.allows_local_reads() {
                format!(
                    "this node has applied {} but the client has seen {}",
                    self.reader.applied_index(),
                    token.index
                )
            } else {
                "this node has not heard from a leader backed by a majority within its read \
                 lease, and no leader answered"
                    .to_owned()
            };
            StoreError::unavailable(RETRY_SOON, reason)
        };
        let Some((leader, Some(addr))) = self.leader() else {
            return Err(behind());
        };
        if leader == self.node_id {
            return Err(behind());
        }
        let request = Request::Load {
            id: *id,
            token,
            now,
        };
        match self
            .client
            .call(Pool::Replication, &addr, &request, self.read_wait)
            .await
        {
            Ok(Response::Load(record)) => Ok(record.map(Arc::new)),
            _ => Err(behind()),
        }
    }

    /// Serves a follower's [`Request::Load`]: only from a state at least as
    /// new as the token.
    pub(crate) async fn serve_load(
        &self,
        id: SessionId,
        token: ConsistencyToken,
        now: UnixMillis,
    ) -> Response {
        if !self.lease.allows_local_reads() {
            return Response::Unavailable(format!(
                "node {} has not heard from a majority within its read lease",
                self.node_id
            ));
        }
        let token = self.honoured(token);
        // Short wait: the asking follower has already waited its share.
        if self.wait_applied(token.index, self.read_wait / 2).await {
            Response::Load(self.reader.get(&id, now).map(|r| (*r).clone()))
        } else {
            Response::Unavailable(format!(
                "node {} has applied {} < token {}",
                self.node_id,
                self.reader.applied_index(),
                token.index
            ))
        }
    }

    /// The leader's read index (Raft read-index: leadership confirmed by a
    /// quorum), from here or from the leader.
    async fn read_index(&self) -> Result<u64, StoreError> {
        let deadline = Instant::now() + self.read_wait;
        let mut last_problem = String::from("no leader known");
        while Instant::now() < deadline {
            let leader = self.leader();
            let seen = leader.as_ref().map(|(id, _)| *id);
            match leader {
                Some((id, _)) if id == self.node_id => match self.serve_read_index().await {
                    Response::ReadIndex(index) => return Ok(index),
                    Response::Unavailable(reason) | Response::Refused(reason) => {
                        last_problem = reason
                    }
                    _ => last_problem = "leadership moved".into(),
                },
                Some((id, Some(addr))) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match self
                        .client
                        .call(Pool::Replication, &addr, &Request::ReadIndex, remaining)
                        .await
                    {
                        Ok(Response::ReadIndex(index)) => return Ok(index),
                        Ok(Response::Unavailable(reason)) => last_problem = reason,
                        Ok(_) => last_problem = format!("node {id} is no longer the leader"),
                        Err(e) => last_problem = e.to_string(),
                    }
                }
                _ => {}
            }
            self.wait_leader_change(seen, deadline, Duration::from_millis(100))
                .await;
        }
        Err(StoreError::unavailable(
            RETRY_SOON,
            format!("no read index from a leader in time: {last_problem}"),
        ))
    }

    /// Confirms leadership with a quorum and returns the read index.
    pub(crate) async fn serve_read_index(&self) -> Response {
        let confirm = self.raft.ensure_linearizable(ReadPolicy::ReadIndex);
        match tokio::time::timeout(self.read_wait, confirm).await {
            Ok(Ok(read_log_id)) => Response::ReadIndex(read_log_id.index()),
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward)))) => {
                Response::NotLeader {
                    leader: forward.leader_id,
                    addr: forward.leader_node.map(|n| n.addr),
                }
            }
            Ok(Err(e)) => Response::Unavailable(e.to_string()),
            Err(_) => Response::Unavailable("leadership not confirmed in time".into()),
        }
    }
}
