//! How one cluster member is configured: its identity and addresses, how it
//! finds the cluster, where it keeps its data, the cluster secret, and the
//! timing knobs of Raft, reads and writes.
//!
//! [`NodeConfig::new`] gives safe defaults (session reads, ephemeral storage,
//! a single-node cluster); the consuming `with_*` setters change one thing
//! each. [`crate::RaftNode::start`] validates the whole before binding anything.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use session_core::{Clock, MeshTag};

pub use checks::ConfigError;

mod checks;

use crate::mesh::MeshDirectory;
use crate::rpc::tls::ClusterTls;
use crate::secret::ClusterSecret;
use crate::types::NodeId;

/// How [`crate::RaftStore::load`] makes a read consistent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadMode {
    /// Read-your-writes: serve locally once this node has applied the client's
    /// consistency token (waiting at most `read_wait`), otherwise ask the
    /// leader or answer `Unavailable`. No network round trip in the common case.
    /// Only while the member holds its read lease
    /// ([`NodeConfig::with_read_lease`]): a member cut off from the leader
    /// stops answering from its own state once the lease runs out.
    #[default]
    Session,
    /// Linearizable: confirm the read index with the leader (Raft read-index),
    /// then serve locally once applied. One round trip per read.
    Linearizable,
    /// Serve whatever this node has applied, at once. Fastest; may be stale and
    /// ignores consistency tokens.
    Local,
}

/// Default of [`NodeConfig::max_rpc_bytes`].
pub(crate) const DEFAULT_MAX_RPC_BYTES: usize = 64 << 20;

/// Smallest accepted [`NodeConfig::max_rpc_bytes`].
const MIN_RPC_BYTES: usize = 64 << 10;

/// Configuration of one cluster member. Build with [`NodeConfig::new`] and the
/// `with_*` setters; every field is public for callers that prefer struct
/// update syntax.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's id, unique in the cluster and stable across restarts.
    pub node_id: NodeId,
    /// Address the cluster (Raft RPC) listener binds; port 0 picks a free port.
    pub cluster_addr: SocketAddr,
    /// `host:port` that peers use to reach this member; `None` means the
    /// address the listener actually bound. Set it when peers reach this node
    /// through NAT, a proxy or a DNS name.
    pub advertise_addr: Option<String>,
    /// Static initial members (id → cluster address, this node included). The
    /// lowest id bootstraps the cluster. Empty with `join` set: join mode.
    /// Empty without `join`: a single-node cluster.
    pub peers: BTreeMap<NodeId, String>,
    /// Source address of connections to peers, on multi-homed hosts where the
    /// cluster network is not the default route; `None` lets the OS choose.
    pub outbound_ip: Option<IpAddr>,
    /// Cluster address of a running member to join through (join mode).
    pub join: Option<String>,
    /// Where the log and snapshots live; `None` keeps everything in memory
    /// (tests, `--ephemeral`): a restart then starts from nothing.
    pub data_dir: Option<PathBuf>,
    /// Allow an in-memory member (`data_dir` unset) in a multi-node cluster.
    /// Off by default: see [`NodeConfig::with_ephemeral_cluster`].
    pub ephemeral_cluster: bool,
    /// Shared secret every cluster RPC carries. Required for a multi-node
    /// cluster unless `insecure` is set. Its `Debug` form is redacted.
    pub secret: Option<ClusterSecret>,
    /// Allow a multi-node cluster without a secret (trusted networks, tests).
    pub insecure: bool,
    /// TLS of the cluster port (server and client side, mutual); `None`
    /// (the default) is plain HTTP. See [`NodeConfig::with_tls`].
    pub tls: Option<ClusterTls>,
    /// Read consistency of [`crate::RaftStore::load`].
    pub read_mode: ReadMode,
    /// The mesh this Raft group serves; new session ids carry it.
    pub mesh: Option<MeshTag>,
    /// Every mesh of the deployment and its members' cluster addresses, the
    /// same on every node. With it, operations on sessions of another mesh
    /// are forwarded to that mesh; without it they find nothing. Requires
    /// `mesh`, which must be listed. All meshes share one cluster secret.
    pub mesh_directory: Option<MeshDirectory>,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout (re-drawn every round).
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Take a snapshot (and later purge the log behind it) after this many log
    /// entries since the last one.
    pub snapshot_every: u64,
    /// How often the leader proposes "expire sessions before now".
    pub expiry_interval: Duration,
    /// How long a read waits for this node to apply the client's token before
    /// it asks the leader instead.
    pub read_wait: Duration,
    /// How long a member keeps serving local reads ([`ReadMode::Session`])
    /// after it last heard from a leader; `None`: twice
    /// `election_timeout_max`. See [`NodeConfig::with_read_lease`].
    pub read_lease: Option<Duration>,
    /// Most the leader's expiry stamp may run ahead of the newest time any
    /// committed write carried. See [`NodeConfig::with_expiry_clock_bound`].
    pub expiry_clock_bound: Duration,
    /// Bound on a write, including forwarding and retries across a leader change.
    pub write_timeout: Duration,
    /// Largest accepted RPC body (append entries, forwarded writes); larger
    /// bodies are refused with 413.
    pub max_rpc_bytes: usize,
    /// Largest accepted snapshot body.
    pub max_snapshot_bytes: usize,
    /// Refuse new sessions once the replicated map holds this many records
    /// (`None`: no limit), so that a flood of anonymous sessions cannot
    /// exhaust every member's memory. See [`NodeConfig::with_max_sessions`].
    pub max_sessions: Option<u64>,
    /// Time source of the expiry timer; tests may use a manual clock.
    pub clock: Clock,
}

impl NodeConfig {
    /// A single-node, in-memory member listening on `cluster_addr`, with
    /// session reads and production-leaning timings.
    pub fn new(node_id: NodeId, cluster_addr: SocketAddr) -> Self {
        Self {
            node_id,
            cluster_addr,
            advertise_addr: None,
            peers: BTreeMap::new(),
            outbound_ip: None,
            join: None,
            data_dir: None,
            ephemeral_cluster: false,
            secret: None,
            insecure: false,
            tls: None,
            read_mode: ReadMode::Session,
            mesh: None,
            mesh_directory: None,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(800),
            snapshot_every: 10_000,
            expiry_interval: Duration::from_secs(30),
            read_wait: Duration::from_secs(2),
            read_lease: None,
            expiry_clock_bound: Duration::from_secs(300),
            write_timeout: Duration::from_secs(5),
            max_rpc_bytes: DEFAULT_MAX_RPC_BYTES,
            max_snapshot_bytes: 1 << 30,
            max_sessions: None,
            clock: Clock::system(),
        }
    }

    /// Sets the address peers use to reach this member.
    pub fn with_advertise_addr(mut self, addr: impl Into<String>) -> Self {
        self.advertise_addr = Some(addr.into());
        self
    }

    /// Sets the static initial member list (id → cluster address, self included).
    pub fn with_peers(mut self, peers: BTreeMap<NodeId, String>) -> Self {
        self.peers = peers;
        self
    }

    /// Sets the source address of connections to peers.
    pub fn with_outbound_ip(mut self, ip: IpAddr) -> Self {
        self.outbound_ip = Some(ip);
        self
    }

    /// Joins a running cluster through the member at `addr`.
    pub fn with_join(mut self, addr: impl Into<String>) -> Self {
        self.join = Some(addr.into());
        self
    }

    /// Keeps the log and snapshots under `dir` (created if missing).
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Allows this member to keep its log and vote in memory (no
    /// `data_dir`) although it is part of a multi-node cluster.
    ///
    /// **Warning:** a restarted in-memory member has forgotten its vote and
    /// its log. It can vote twice in one term and count towards a majority
    /// for entries it no longer has, so acknowledged writes can be lost.
    /// For tests and throw-away demos only; without this, such a
    /// configuration is refused at start.
    pub fn with_ephemeral_cluster(mut self, on_purpose: bool) -> Self {
        self.ephemeral_cluster = on_purpose;
        self
    }

    /// Sets the cluster secret.
    ///
    /// Every member must have the same one. Keep it out of logs and command
    /// lines; anyone holding it can change membership and write sessions.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(ClusterSecret::new(secret));
        self
    }

    /// Allows running a multi-node cluster without a secret.
    ///
    /// **Warning:** anyone who can reach the cluster port can then rewrite
    /// every session. Only for trusted networks and tests.
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Serves the cluster port over TLS and talks to peers over TLS, with
    /// mutual certificate checks against `tls`'s CA bundle (see
    /// [`ClusterTls`]). Every member must have it; the cluster secret is
    /// still checked on every request.
    pub fn with_tls(mut self, tls: ClusterTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the read consistency mode.
    pub fn with_read_mode(mut self, mode: ReadMode) -> Self {
        self.read_mode = mode;
        self
    }

    /// Sets the mesh tag.
    pub fn with_mesh(mut self, mesh: MeshTag) -> Self {
        self.mesh = Some(mesh);
        self
    }

    /// Sets the mesh directory (see [`MeshDirectory`] for its text form).
    /// This node's `mesh` must be set and listed in it.
    pub fn with_mesh_directory(mut self, directory: MeshDirectory) -> Self {
        self.mesh_directory = Some(directory);
        self
    }

    /// Sets heartbeat interval and election timeout range together.
    pub fn with_timing(
        mut self,
        heartbeat: Duration,
        election_min: Duration,
        election_max: Duration,
    ) -> Self {
        self.heartbeat_interval = heartbeat;
        self.election_timeout_min = election_min;
        self.election_timeout_max = election_max;
        self
    }

    /// Sets the number of log entries between snapshots.
    pub fn with_snapshot_every(mut self, entries: u64) -> Self {
        self.snapshot_every = entries;
        self
    }

    /// Sets the leader's expiry period.
    pub fn with_expiry_interval(mut self, every: Duration) -> Self {
        self.expiry_interval = every;
        self
    }

    /// Sets the bound on waiting for a consistency token.
    pub fn with_read_wait(mut self, wait: Duration) -> Self {
        self.read_wait = wait;
        self
    }

    /// Sets the read lease: in [`ReadMode::Session`] a member serves reads
    /// from its own state only while it has heard from a leader (or, as
    /// leader, from a quorum) within `lease`. Past it (a member cut off from
    /// the cluster) a read goes to the leader, or fails with `Unavailable`,
    /// so a logout or any other committed change reaches every answered read
    /// within about `lease` plus one heartbeat. Default: twice
    /// `election_timeout_max`. Must exceed the heartbeat interval.
    pub fn with_read_lease(mut self, lease: Duration) -> Self {
        self.read_lease = Some(lease);
        self
    }

    /// The read lease in force (see [`NodeConfig::with_read_lease`]).
    pub fn effective_read_lease(&self) -> Duration {
        self.read_lease.unwrap_or(self.election_timeout_max * 2)
    }

    /// Bounds the leader's expiry stamp: "expire everything before `t`" is
    /// proposed with `t` at most `bound` past the newest time a committed
    /// write carried (writes carry their proposer's clock). A leader whose
    /// clock jumps ahead then expires at most `bound` more than its peers
    /// would, instead of every session at once; the difference is logged as
    /// a warning. Expiry of an idle cluster waits for its next write.
    /// Default: 5 minutes; keep it well below the sessions' idle timeout.
    pub fn with_expiry_clock_bound(mut self, bound: Duration) -> Self {
        self.expiry_clock_bound = bound;
        self
    }

    /// Sets the bound on a write.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets the largest accepted RPC body (append entries, forwarded writes).
    ///
    /// Give every member the same value: a leader splits its AppendEntries
    /// to fit its own limit, assuming the followers have it too. A single
    /// log entry (one session write) must fit in it.
    pub fn with_max_rpc_bytes(mut self, bytes: usize) -> Self {
        self.max_rpc_bytes = bytes;
        self
    }

    /// Sets the largest accepted snapshot transfer; a larger one is refused
    /// while it arrives. Snapshots stream through files, so this bounds
    /// disk use, not memory.
    pub fn with_max_snapshot_bytes(mut self, bytes: usize) -> Self {
        self.max_snapshot_bytes = bytes;
        self
    }

    /// Caps the number of sessions the replicated map holds.
    ///
    /// Policy, the same as `MemoryStore`'s `max_sessions`: a create that
    /// would take the map beyond `max` records is refused with
    /// `StoreError::Unavailable` (retry after one second), which the session
    /// layer answers with `503` and `Retry-After`; existing sessions keep
    /// working. Records count until they are deleted or dropped by the
    /// leader's expiry timer (expired but not yet dropped ones too), and a
    /// create that reuses an expired record's id adds nothing, so it is
    /// allowed.
    ///
    /// The limit is decided inside the state machine's apply step: the
    /// proposing node stamps its `max_sessions` into the create entry, so
    /// every replica refuses or accepts the same create. Give every member
    /// the same value; a member with another one only changes what its own
    /// creates carry.
    pub fn with_max_sessions(mut self, max: u64) -> Self {
        self.max_sessions = Some(max);
        self
    }

    /// Sets the expiry timer's clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        NodeConfig::new(1, "127.0.0.1:0".parse().unwrap())
    }

    #[test]
    fn mesh_directory_must_list_this_nodes_mesh() {
        let directory = MeshDirectory::parse("a=127.0.0.1:7001;b=127.0.0.1:7002").unwrap();
        let tag = |t: &str| MeshTag::new(t).unwrap();
        assert!(config()
            .with_mesh(tag("a"))
            .with_mesh_directory(directory.clone())
            .validate()
            .is_ok());
        let unlisted = config()
            .with_mesh(tag("c"))
            .with_mesh_directory(directory.clone())
            .validate()
            .unwrap_err();
        assert!(
            unlisted.to_string().contains("not in the mesh directory"),
            "{unlisted}"
        );
        assert!(config().with_mesh_directory(directory).validate().is_err());
        // A mesh without a directory: sessions of other meshes are not found.
        assert!(config().with_mesh(tag("c")).validate().is_ok());
    }

    #[test]
    fn an_in_memory_member_of_a_cluster_is_refused_unless_on_purpose() {
        let peers = BTreeMap::from([(1, "127.0.0.1:7001".into()), (2, "127.0.0.1:7002".into())]);
        let clustered = config().with_secret(*b"s").with_peers(peers);
        let refused = clustered.clone().validate().unwrap_err();
        assert!(
            refused.to_string().contains("forgets its vote"),
            "{refused}"
        );
        assert!(clustered.clone().with_data_dir("/tmp/x").validate().is_ok());
        assert!(clustered.with_ephemeral_cluster(true).validate().is_ok());
        let joining = config().with_secret(*b"s").with_join("127.0.0.1:7001");
        assert!(joining.clone().validate().is_err());
        assert!(joining.with_ephemeral_cluster(true).validate().is_ok());
        // A single in-memory node has nobody to disagree with.
        assert!(config().validate().is_ok());
    }
}
