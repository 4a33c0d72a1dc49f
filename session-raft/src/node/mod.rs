//! One cluster member: [`RaftNode`] owns the Raft instance, its storage, the
//! cluster-port server and the background tasks (the leader's expiry timer
//! and the metrics exporter), and runs their lifecycle: what an application
//! holds, the admin calls it makes, and shutdown.
//!
//! Start-up and forming the cluster are in [`bootstrap`]; the background
//! tasks in [`tasks`].
//!
//! Shutdown hands leadership to the most up-to-date voter first, so that the
//! cluster does not wait an election timeout for a member leaving on purpose.

mod bootstrap;
mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use session_core::MeshTag;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin;
use crate::error::AdminError;
use crate::error::{NoLeader, ShutdownError};
use crate::mesh::MeshDirectory;
use crate::replica::Replica;
use crate::rpc::server::ServerHandle;
use crate::rpc::Request;
use crate::status::ClusterStatus;
use crate::store::RaftStore;
use crate::types::NodeId;

/// A running cluster member. See the module docs for the lifecycle.
///
/// Starting member 1 of a three-node cluster (members 2 and 3 run the same
/// code with their own id and addresses):
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::BTreeMap;
/// use std::time::Duration;
/// use session_raft::{NodeConfig, RaftNode};
///
/// let peers = BTreeMap::from([
///     (1, "10.0.0.1:7000".to_string()),
///     (2, "10.0.0.2:7000".to_string()),
///     (3, "10.0.0.3:7000".to_string()),
/// ]);
/// let node = RaftNode::start(
///     NodeConfig::new(1, "0.0.0.0:7000".parse()?)
///         .with_advertise_addr("10.0.0.1:7000")
///         .with_peers(peers)
///         .with_secret(std::env::var("CLUSTER_SECRET")?)
///         .with_data_dir("/var/lib/raft-sessions"),
/// )
/// .await?;
/// node.wait_for_leader(Duration::from_secs(10)).await?;
/// let store = node.store(); // a session_core::SessionStore for the layer
/// # drop(store);
/// node.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct RaftNode {
    /// State shared with stores, server and tasks.
    replica: Arc<Replica>,
    /// The cluster-port server.
    server: Option<ServerHandle>,
    /// Tells background tasks to stop.
    stop: watch::Sender<bool>,
    /// Background tasks (expiry timer, metrics), awaited on shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// The address the cluster listener bound.
    local_addr: SocketAddr,
    /// The address peers use for this member.
    advertise_addr: String,
    /// Longest election timeout, to bound the leadership hand-over.
    election_timeout_max: Duration,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("node_id", &self.replica.node_id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl RaftNode {
    /// A [`session_core::SessionStore`] reading from and writing through this node.
    pub fn store(&self) -> RaftStore {
        RaftStore::new(self.replica.clone())
    }

    /// This member's view of the cluster.
    pub fn status(&self) -> ClusterStatus {
        self.replica.status()
    }

    /// The mesh this member serves, if the deployment uses meshes.
    pub fn mesh(&self) -> Option<MeshTag> {
        self.replica.mesh
    }

    /// The mesh directory this member forwards other meshes' sessions by.
    pub fn mesh_directory(&self) -> Option<&MeshDirectory> {
        self.replica.meshes.as_deref()
    }

    /// This member's id.
    pub fn node_id(&self) -> NodeId {
        self.replica.node_id
    }

    /// The group's cluster id (the history its consistency tokens name), once
    /// this member has applied it; see [`ClusterStatus::cluster_id`].
    pub fn cluster_id(&self) -> Option<u64> {
        Some(self.replica.reader.cluster_id()).filter(|id| *id != 0)
    }

    /// The leader this node currently knows of. Cheap (no allocation), for
    /// per-request use; [`RaftNode::status`] has the full picture.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.replica.raft.metrics().borrow_watched().current_leader
    }

    /// The address the cluster listener is bound to (useful with port 0).
    pub fn cluster_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address peers use to reach this member.
    pub fn advertise_addr(&self) -> &str {
        &self.advertise_addr
    }

    /// Adds a member as a learner (it receives the log but does not vote);
    /// returns once it has caught up. Forwarded to the leader.
    pub async fn add_learner(&self, id: NodeId, addr: String) -> Result<(), AdminError> {
        admin::through_leader(&self.replica, Request::AddLearner { id, addr }, None).await
    }

    /// Makes a learner a voter. Forwarded to the leader.
    pub async fn promote(&self, id: NodeId) -> Result<(), AdminError> {
        admin::through_leader(&self.replica, Request::Promote { id }, None).await
    }

    /// Removes a member (voter or learner) from the cluster. Forwarded to the leader.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), AdminError> {
        admin::through_leader(&self.replica, Request::Remove { id }, None).await
    }

    /// Waits until this member knows a leader; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, NoLeader> {
        let mut metrics = self.replica.raft.server_metrics();
        let wait = async {
            loop {
                if let Some(leader) = metrics.borrow_watched().current_leader {
                    return Some(leader);
                }
                metrics.changed().await.ok()?;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(leader)) => Ok(leader),
            _ => Err(NoLeader(timeout)),
        }
    }

    /// Leaves gracefully: a leader first hands leadership to the most
    /// up-to-date voter (bounded by two election timeouts), then Raft, the
    /// server and the background tasks stop.
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        self.hand_over_leadership().await;
        self.shutdown_abruptly().await
    }

    /// Stops without handing over leadership, as a crash would (the cluster
    /// elects a new leader after an election timeout). For fault drills and
    /// tests; prefer [`RaftNode::shutdown`].
    pub async fn shutdown_abruptly(mut self) -> Result<(), ShutdownError> {
        let _ = self.stop.send(true);
        let raft_result = self.replica.raft.shutdown().await;
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        tracing::info!(node = self.replica.node_id, "raft node stopped");
        raft_result.map_err(|e| ShutdownError(Box::new(e)))
    }

    async fn hand_over_leadership(&self) {
        let raft = &self.replica.raft;
        let me = self.replica.node_id;
        let target = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow_watched();
            if metrics.state != openraft::ServerState::Leader {
                return;
            }
            let replication = metrics.replication.clone().unwrap_or_default();
            metrics
                .membership_config
                .membership()
                .voter_ids()
                .filter(|id| *id != me)
                .max_by_key(|id| replication.get(id).cloned().flatten().map(|l| l.index))
        };
        let Some(target) = target else {
            return;
        };
        tracing::info!(
            node = me,
            to = target,
            "handing over leadership before shutdown"
        );
        if raft.trigger().transfer_leader(target).await.is_err() {
            return;
        }
        let mut metrics = raft.server_metrics();
        let _ = tokio::time::timeout(self.election_timeout_max * 2, async {
            loop {
                let leader = metrics.borrow_watched().current_leader;
                if leader.is_some() && leader != Some(me) {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

impl Drop for RaftNode {
    /// A node dropped without `shutdown` still stops its server and tasks, so
    /// that the Raft instance is released once no store refers to it.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            // Outside a runtime the server task is gone with the runtime anyway.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(server.stop());
            }
        }
    }
}
