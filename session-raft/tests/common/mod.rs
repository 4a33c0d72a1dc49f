//! Helpers for the cluster tests: a TCP proxy per node that can cut it off,
//! a three-node cluster on loopback, and polling with deadlines.
//!
//! Every node binds its own loopback address (127.0.0.1X) and also uses it
//! as the source of its outgoing connections, so a proxy knows which node a
//! connection comes from. Peers address each other through the proxies; cutting
//! node N makes its proxy refuse everything and every other proxy refuse
//! connections from N, and kills connections already open.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
pub mod http_fault;

use session_core::store::testing::live_session;
use session_core::{Clock, MeshTag, NewSession, SessionId};
use session_raft::{MeshDirectory, NodeConfig, RaftNode, Role};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const SECRET: &[u8] = b"cluster-test-secret";

/// Loopback address node `id` binds and connects from.
pub fn node_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + id as u8))
}

/// Which nodes are cut off; shared by all proxies.
#[derive(Default)]
pub struct Partition {
    cut: Mutex<BTreeSet<IpAddr>>,
}

impl Partition {
    fn is_cut(&self, ip: IpAddr) -> bool {
        self.cut.lock().contains(&ip)
    }
}

/// A TCP proxy in front of one node's cluster port.
pub struct Proxy {
    pub addr: SocketAddr,
    node_ip: IpAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(
        node_ip: IpAddr,
        partition: Arc<Partition>,
        changes: watch::Receiver<u64>,
    ) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let target_in_task = target.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, peer)) = listener.accept().await else {
                    continue;
                };
                let peer_ip = peer.ip();
                let blocked = move |p: &Partition| p.is_cut(node_ip) || p.is_cut(peer_ip);
                if blocked(&partition) {
                    drop(inbound);
                    continue;
                }
                let Some(to) = *target_in_task.lock() else {
                    drop(inbound);
                    continue;
                };
                let partition = partition.clone();
                let mut changes = changes.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            changed = changes.changed() => {
                                if changed.is_err() || blocked(&partition) {
                                    // Dropping both ends kills the connection.
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy {
            addr,
            node_ip,
            target,
            task,
        }
    }

    pub fn set_target(&self, to: SocketAddr) {
        *self.target.lock() = Some(to);
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn now() -> u64 {
    Clock::system().now()
}

/// A session holding `value` under key "v" (read back with [`value_of`]),
/// live for an hour.
pub fn new_session(value: u64) -> NewSession {
    live_session(&[("v", &value.to_le_bytes())])
}

pub fn new_id() -> SessionId {
    SessionId::generate(None).unwrap()
}

pub fn value_of(record: &session_core::SessionRecord) -> u64 {
    let bytes = record.data.get("v").expect("key v");
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

/// A cluster of `size` nodes on loopback, each behind a proxy.
pub struct TestCluster {
    pub nodes: BTreeMap<u64, Option<RaftNode>>,
    pub proxies: BTreeMap<u64, Proxy>,
    pub partition: Arc<Partition>,
    changes: watch::Sender<u64>,
    pub dirs: Option<tempfile::TempDir>,
    pub peers: BTreeMap<u64, String>,
    pub tune: fn(NodeConfig) -> NodeConfig,
    /// Fixed cluster ports (see [`TestCluster::fix_ports`]); others bind port 0.
    pub ports: BTreeMap<u64, u16>,
    /// This cluster's mesh and the deployment's directory, if set.
    pub mesh: Option<(MeshTag, MeshDirectory)>,
}

/// Test timings: quick elections, generous bounds for a loaded machine.
pub fn test_timing(config: NodeConfig) -> NodeConfig {
    config
        .with_timing(
            Duration::from_millis(100),
            Duration::from_millis(500),
            Duration::from_millis(900),
        )
        .with_write_timeout(Duration::from_secs(5))
        .with_read_wait(Duration::from_secs(2))
        // Most cluster tests run in memory; durable ones set a data dir.
        .with_ephemeral_cluster(true)
}

impl TestCluster {
    /// Starts `size` nodes (ids 1..=size); `durable` keeps data in temp dirs.
    pub async fn start(
        size: u64,
        durable: bool,
        tune: fn(NodeConfig) -> NodeConfig,
    ) -> TestCluster {
        let mut cluster = TestCluster::prepare(1..=size, durable, tune).await;
        cluster.start_all().await;
        cluster
    }

    /// Sets up the proxies of nodes `ids` without starting any node.
    pub async fn prepare(
        ids: RangeInclusive<u64>,
        durable: bool,
        tune: fn(NodeConfig) -> NodeConfig,
    ) -> TestCluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn,openraft=error".into()),
            )
            .with_test_writer()
            .try_init();
        let partition = Arc::new(Partition::default());
        let (changes, changes_rx) = watch::channel(0);
        let mut proxies = BTreeMap::new();
        for id in ids {
            let proxy = Proxy::start(node_ip(id), partition.clone(), changes_rx.clone()).await;
            proxies.insert(id, proxy);
        }
        let peers = proxies
            .iter()
            .map(|(id, p)| (*id, p.addr.to_string()))
            .collect();
        TestCluster {
            nodes: BTreeMap::new(),
            proxies,
            partition,
            changes,
            dirs: durable.then(|| tempfile::tempdir().unwrap()),
            peers,
            tune,
            ports: BTreeMap::new(),
            mesh: None,
        }
    }

    /// Starts every prepared node.
    pub async fn start_all(&mut self) {
        let ids: Vec<u64> = self.proxies.keys().copied().collect();
        for id in ids {
            self.start_node(id).await;
        }
    }

    /// Picks a free cluster port for every node now, so that its address is
    /// known before it starts (and stays the same across restarts). Returns
    /// the nodes' own cluster addresses, proxies bypassed.
    pub async fn fix_ports(&mut self) -> Vec<String> {
        let ids: Vec<u64> = self.proxies.keys().copied().collect();
        for id in ids {
            // Released again at once; the node binds it when it starts.
            // Nothing else here binds fixed ports on the node's own loopback
            // address, so another taker in between is very unlikely.
            let probe = TcpListener::bind((node_ip(id), 0)).await.unwrap();
            self.ports.insert(id, probe.local_addr().unwrap().port());
        }
        self.direct_addrs()
    }

    /// The nodes' own cluster addresses (after [`TestCluster::fix_ports`]).
    pub fn direct_addrs(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|(id, port)| SocketAddr::new(node_ip(*id), *port).to_string())
            .collect()
    }

    pub fn data_dir(&self, id: u64) -> Option<PathBuf> {
        self.dirs
            .as_ref()
            .map(|d| d.path().join(format!("node-{id}")))
    }

    pub fn config(&self, id: u64) -> NodeConfig {
        let port = self.ports.get(&id).copied().unwrap_or(0);
        let mut config = NodeConfig::new(id, SocketAddr::new(node_ip(id), port))
            .with_outbound_ip(node_ip(id))
            .with_advertise_addr(self.proxies[&id].addr.to_string())
            .with_peers(self.peers.clone())
            .with_secret(SECRET);
        if let Some(dir) = self.data_dir(id) {
            config = config.with_data_dir(dir);
        }
        if let Some((mesh, directory)) = &self.mesh {
            config = config
                .with_mesh(*mesh)
                .with_mesh_directory(directory.clone());
        }
        (self.tune)(test_timing(config))
    }

    pub async fn start_node(&mut self, id: u64) {
        let node = RaftNode::start(self.config(id)).await.expect("node starts");
        self.proxies[&id].set_target(node.cluster_addr());
        self.nodes.insert(id, Some(node));
    }

    /// Graceful stop (hands over leadership).
    pub async fn stop_node(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id).and_then(Option::take) {
            node.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stop without hand-over, like a crash.
    pub async fn crash_node(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id).and_then(Option::take) {
            let _ = node.shutdown_abruptly().await;
        }
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.crash_node(id).await;
        }
    }

    pub fn node(&self, id: u64) -> &RaftNode {
        self.nodes[&id].as_ref().expect("node is running")
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Waits until every running node agrees on one running leader.
    pub async fn leader(&self, timeout: Duration) -> u64 {
        eventually(timeout, "an agreed leader", || async {
            let running = self.running();
            let leaders: BTreeSet<Option<u64>> = running
                .iter()
                .map(|id| self.node(*id).status().leader_id)
                .collect();
            match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(leader)]
                    if running.contains(leader)
                        && self.node(*leader).status().role == Role::Leader =>
                {
                    Some(*leader)
                }
                _ => None,
            }
        })
        .await
    }

    pub async fn followers(&self, timeout: Duration) -> (u64, Vec<u64>) {
        let leader = self.leader(timeout).await;
        let followers = self
            .running()
            .into_iter()
            .filter(|id| *id != leader)
            .collect();
        (leader, followers)
    }

    /// Cuts node `id` off from every other node (both directions).
    pub fn cut(&self, id: u64) {
        self.partition.cut.lock().insert(node_ip(id));
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn heal(&self, id: u64) {
        self.partition.cut.lock().remove(&node_ip(id));
        self.changes.send_modify(|n| *n += 1);
    }
}
