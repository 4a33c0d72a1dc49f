//! Starting a member: validate the configuration, bind the cluster port,
//! open storage, start Raft, the RPC server and the background tasks, then
//! form the cluster:
//!
//! - static peers: the member with the lowest id initializes the cluster
//!   (only when its log is empty, so a restart never re-initializes); the
//!   others wait to hear from a leader;
//! - join: ask a running member to add this node as a learner, then to
//!   promote it (both admin calls follow redirects to the leader);
//! - neither: a single-node cluster of this member.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use openraft::errors::{InitializeError, RaftError};
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin;
use crate::config::NodeConfig;
use crate::error::StartError;
use crate::lease::ReadLease;
use crate::replica::Replica;
use crate::rpc::append_split::ENVELOPE_BYTES;
use crate::rpc::client::ClusterClient;
use crate::rpc::group::OwnGroup;
use crate::rpc::log_limit::LogLimiter;
use crate::rpc::raft_network::NetworkFactory;
use crate::rpc::server::{self, ServerConfig};
use crate::rpc::Request;
use crate::secret::SecretCheck;
use crate::storage::log::LogStore;
use crate::storage::state_machine::StateMachineStore;
use crate::storage::Raft;
use crate::store::forward::Forwarder;
use crate::store::metrics::StoreMetrics;
use crate::store::propose::Proposer;
use crate::types::NodeId;

use super::tasks::{expiry_timer, export_metrics, name_the_cluster};
use super::RaftNode;

impl RaftNode {
    /// Binds the cluster port, opens storage, starts Raft, and bootstraps or
    /// joins the cluster (see the module docs). Returns once the node runs; a
    /// leader may not be elected yet (see [`RaftNode::wait_for_leader`]).
    pub async fn start(config: NodeConfig) -> Result<RaftNode, StartError> {
        config.validate().map_err(StartError::Config)?;
        let raft_config = Arc::new(config.raft_config().map_err(StartError::Config)?);
        // Before binding: bad TLS files are a configuration error, and a
        // port must not be taken by a node that cannot serve it.
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.load())
            .transpose()
            .map_err(StartError::Tls)?;

        let listener = TcpListener::bind(config.cluster_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.cluster_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.cluster_addr,
            source,
        })?;
        let advertise_addr = config
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local_addr.to_string());

        let (log_store, state_machine) = match &config.data_dir {
            Some(dir) => {
                let storage_error = |source| StartError::Storage {
                    dir: dir.clone(),
                    source,
                };
                std::fs::create_dir_all(dir).map_err(storage_error)?;
                let log = LogStore::open(&dir.join("log")).map_err(storage_error)?;
                let sm = StateMachineStore::open(&dir.join("state")).map_err(storage_error)?;
                (log, sm)
            }
            None => (LogStore::in_memory(), StateMachineStore::in_memory()),
        };
        let reader = state_machine.reader();

        let own_group = OwnGroup {
            mesh: config.mesh,
            reader: reader.clone(),
        };
        let client = Arc::new(
            ClusterClient::new(
                config.secret.as_deref(),
                config.outbound_ip,
                config.election_timeout_min,
                config.max_snapshot_bytes.max(config.max_rpc_bytes),
                tls.as_ref(),
            )
            .with_own_group(own_group.clone()),
        );
        let lease = Arc::new(ReadLease::new(config.effective_read_lease()));
        let network = NetworkFactory::new(
            config.node_id,
            client.clone(),
            config.max_rpc_bytes,
            lease.clone(),
        );
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(Box::new(e)))?;
        lease.attach(raft.clone());

        let replica = Arc::new(Replica {
            node_id: config.node_id,
            raft: raft.clone(),
            reader,
            client: client.clone(),
            forwarder: Forwarder::spawn(client),
            proposer: Proposer::spawn(raft.clone()),
            read_mode: config.read_mode,
            read_wait: config.read_wait,
            write_timeout: config.write_timeout,
            mesh: config.mesh,
            meshes: config.mesh_directory.clone().map(Arc::new),
            next_mesh_member: AtomicUsize::new(0),
            max_sessions: config.max_sessions,
            lease,
            clock: config.clock.clone(),
            max_write_bytes: config.max_rpc_bytes.saturating_sub(2 * ENVELOPE_BYTES),
            metrics: StoreMetrics::register(),
        });

        let server = server::spawn(
            listener,
            replica.clone(),
            ServerConfig {
                node_id: config.node_id,
                group: own_group,
                log_limit: LogLimiter::default(),
                secret: SecretCheck::new(config.secret.as_deref()),
                max_rpc_bytes: config.max_rpc_bytes,
                max_snapshot_bytes: config.max_snapshot_bytes,
                spool_dir: config
                    .data_dir
                    .as_ref()
                    .map_or_else(std::env::temp_dir, |dir| dir.join("state")),
                tls: tls.map(|tls| tls.acceptor),
            },
        );

        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(expiry_timer(
                replica.clone(),
                config.expiry_interval,
                config.expiry_clock_bound,
                config.clock.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(name_the_cluster(replica.clone(), stop_rx.clone())),
            tokio::spawn(export_metrics(replica.clone(), stop_rx)),
        ];
        let node = RaftNode {
            replica,
            server: Some(server),
            stop,
            tasks,
            local_addr,
            advertise_addr,
            election_timeout_max: config.election_timeout_max,
        };
        tracing::info!(
            node = config.node_id,
            addr = %node.local_addr,
            advertise = %node.advertise_addr,
            "raft node started"
        );

        if let Err(e) = node.form_cluster(&config).await {
            let _ = node.shutdown_abruptly().await;
            return Err(e);
        }
        Ok(node)
    }

    /// Bootstraps or joins, per the configuration.
    async fn form_cluster(&self, config: &NodeConfig) -> Result<(), StartError> {
        let raft = &self.replica.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(Box::new(e)))?;
        if initialized {
            // A restart: the log already knows the membership.
            return Ok(());
        }
        if let Some(via) = &config.join {
            return self.join(via).await;
        }
        let members: BTreeMap<NodeId, BasicNode> = if config.peers.is_empty() {
            BTreeMap::from([(
                config.node_id,
                BasicNode {
                    addr: self.advertise_addr.clone(),
                },
            )])
        } else {
            config
                .peers
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect()
        };
        let lowest = members.keys().next().copied();
        if lowest != Some(config.node_id) {
            // Another member bootstraps; this one waits to be contacted.
            return Ok(());
        }
        tracing::info!(node = config.node_id, members = ?members.keys().collect::<Vec<_>>(), "initializing cluster");
        match raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Already initialized (a race with a leader's first message): fine.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(StartError::Raft(Box::new(e))),
        }
    }

    /// Asks a running member (redirected to the leader) to add this node as a
    /// learner, then to promote it.
    async fn join(&self, via: &str) -> Result<(), StartError> {
        let id = self.replica.node_id;
        tracing::info!(node = id, %via, "joining cluster");
        let add = Request::AddLearner {
            id,
            addr: self.advertise_addr.clone(),
        };
        let fail = |source| StartError::Join {
            via: via.to_owned(),
            source,
        };
        admin::through_leader(&self.replica, add, Some(via.to_owned()))
            .await
            .map_err(fail)?;
        // Now a learner: this node knows the leader from its first append.
        let promote = Request::Promote { id };
        let first = self
            .replica
            .leader()
            .and_then(|(_, addr)| addr)
            .or_else(|| Some(via.to_owned()));
        admin::through_leader(&self.replica, promote, first)
            .await
            .map_err(fail)?;
        Ok(())
    }
}
