//! Command-line interface: every flag can also come from an environment
//! variable (`RS_*`), so the same binary runs under systemd, Docker or a shell.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// raft-sessions demo: an axum app whose sessions are replicated by Raft.
#[derive(Debug, Parser)]
#[command(name = "demo-app", version, about)]
pub(crate) struct Cli {
    /// What to run; `cluster` when omitted.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The demo's modes.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a local cluster: one OS process per node, on loopback.
    Cluster(ClusterArgs),
    /// Run one cluster member.
    // Boxed: its many flags would make every `Command` that large.
    Node(Box<NodeArgs>),
    /// Run one node on the in-memory store (no replication).
    Standalone(StandaloneArgs),
    /// Run the same handlers with no session layer at all (benchmark ceiling).
    Ceiling(StandaloneArgs),
    /// Show the status of a running cluster or change its membership,
    /// through any member's cluster port.
    Admin(AdminArgs),
}

/// Options for `demo-app cluster`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClusterArgs {
    /// Number of nodes in all (default 3). Without `--meshes` they form one
    /// Raft group with untagged session ids; with `--meshes M` it must equal
    /// M × `--nodes-per-mesh` (or, alone, be divisible by M).
    #[arg(long, env = "RS_NODES")]
    pub(crate) nodes: Option<u16>,
    /// Split the nodes into this many meshes (Raft groups) named m1..mM;
    /// session ids then carry their mesh's tag. Without it: one untagged group.
    #[arg(long, env = "RS_MESHES")]
    pub(crate) meshes: Option<u16>,
    /// Nodes in each mesh (default 3). Without `--meshes`, a synonym of `--nodes`.
    #[arg(long, env = "RS_NODES_PER_MESH")]
    pub(crate) nodes_per_mesh: Option<u16>,
    /// Application port of node 1; node N listens on this + N - 1.
    #[arg(long, env = "RS_BASE_PORT", default_value_t = 3001)]
    pub(crate) base_port: u16,
    /// Cluster (Raft RPC) port of node 1; node N listens on this + N - 1.
    #[arg(long, env = "RS_BASE_CLUSTER_PORT", default_value_t = 7001)]
    pub(crate) base_cluster_port: u16,
    /// Host to bind all nodes to.
    #[arg(long, env = "RS_HOST", default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Data directory; node N keeps its state in `<dir>/node-N`.
    #[arg(long, env = "RS_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// File holding the cluster secret; generated there when missing.
    #[arg(long, env = "RS_SECRET_FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Keep every node's state in memory only (a throw-away demo: a
    /// restarted in-memory member forgets its vote and log, so writes can be
    /// lost; the nodes run with --ephemeral --ephemeral-cluster).
    #[arg(long, env = "RS_EPHEMERAL")]
    pub(crate) ephemeral: bool,
    /// Shared options passed to every node.
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// Options for `demo-app node`.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeArgs {
    /// This node's id (unique in the cluster, > 0).
    #[arg(long, env = "RS_NODE_ID")]
    pub(crate) id: u64,
    /// Application (HTTP) listen address.
    #[arg(long, env = "RS_LISTEN", default_value = "127.0.0.1:3001")]
    pub(crate) listen: SocketAddr,
    /// Cluster (Raft RPC) listen address.
    #[arg(long, env = "RS_CLUSTER_LISTEN", default_value = "127.0.0.1:7001")]
    pub(crate) cluster_listen: SocketAddr,
    /// Address peers use to reach this node's cluster port (default: --cluster-listen).
    #[arg(long, env = "RS_ADVERTISE")]
    pub(crate) advertise: Option<String>,
    /// Initial members as `id=host:port,...` (cluster addresses, this node included).
    #[arg(long, env = "RS_PEERS", value_delimiter = ',')]
    pub(crate) peers: Vec<String>,
    /// The mesh (Raft group) this node serves: 1-15 characters of `[a-z0-9-]`.
    /// New session ids carry it; `--peers` then lists this mesh's members only.
    #[arg(long, env = "RS_MESH")]
    pub(crate) mesh: Option<String>,
    /// Every mesh's members' cluster addresses, as text
    /// (`a=h:p,h:p;b=h:p,...`) or `@file` (one mesh per line: `a h:p h:p`).
    /// Lets this node serve sessions of other meshes by forwarding to them.
    /// Needs `--mesh`. All meshes share one cluster secret.
    #[arg(long, env = "RS_MESH_DIRECTORY")]
    pub(crate) mesh_directory: Option<String>,
    /// Join a running cluster through this member's cluster address instead.
    #[arg(long, env = "RS_JOIN")]
    pub(crate) join: Option<String>,
    /// Data directory (vote, log, snapshots). Omit with --ephemeral.
    #[arg(long, env = "RS_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Serve `/cluster/status` (members' cluster addresses, roles and lag) on
    /// the application port too. Off by default: that port faces the load
    /// balancer and the internet, and the member list is a map of the
    /// cluster network. Operators get the same JSON through
    /// `demo-app admin status --json` on the cluster port. `demo-app
    /// cluster` (the local demo) turns it on for its page.
    #[arg(long, env = "RS_PUBLIC_STATUS")]
    pub(crate) public_status: bool,
    /// Keep all state in memory (tests, demos); a restart starts empty.
    /// Refused for a member of a multi-node cluster unless
    /// --ephemeral-cluster is given too.
    #[arg(long, env = "RS_EPHEMERAL")]
    pub(crate) ephemeral: bool,
    /// Allow --ephemeral in a multi-node cluster, on purpose (tests): a
    /// restarted in-memory member has forgotten its vote and log, so it can
    /// vote twice in one term and acknowledged writes can be lost.
    #[arg(long, env = "RS_EPHEMERAL_CLUSTER", requires = "ephemeral")]
    pub(crate) ephemeral_cluster: bool,
    /// File holding the cluster secret shared by all members.
    #[arg(long, env = "RS_SECRET_FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Run a multi-node cluster without a secret. Anyone who can reach the
    /// cluster port can then read and write every session.
    #[arg(long, env = "RS_INSECURE")]
    pub(crate) insecure: bool,
    /// Cluster-port TLS.
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// Shared options.
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// TLS of the cluster port, for `demo-app node` and `demo-app admin` (an
/// admin client presents the certificate as members do to each other).
#[derive(Debug, Clone, Args)]
pub(crate) struct TlsArgs {
    /// PEM certificate chain of this node's cluster port (this node's
    /// certificate first). With --tls-key and --tls-ca the cluster port
    /// speaks TLS only, peers must present certificates of the same CA, and
    /// every member must be configured so. Default: plain HTTP.
    #[arg(long, env = "RS_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RS_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub(crate) tls_key: Option<PathBuf>,
    /// PEM CA bundle that peers' certificates must chain to.
    #[arg(long, env = "RS_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Name every peer's certificate must carry, instead of the host part of
    /// its cluster address (for certificates issued to one service name).
    #[arg(long, env = "RS_TLS_SERVER_NAME", requires = "tls_cert")]
    pub(crate) tls_server_name: Option<String>,
}

/// Options for `demo-app admin`. Secret and TLS flags (and their variables)
/// are the same as a member's, so an operator can reuse a member's
/// environment; those only an admin has are `RS_ADMIN_*`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AdminArgs {
    /// Cluster address of any running member; requests are redirected to
    /// the leader, whose cluster address must be reachable from here too.
    #[arg(long, env = "RS_ADMIN_VIA")]
    pub(crate) via: String,
    /// File holding the cluster secret (as for `demo-app node`). Without
    /// it no secret is sent, which only an --insecure cluster accepts.
    #[arg(long, env = "RS_SECRET_FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Give up after this many seconds (adding a learner to a long log
    /// waits for it to come close to the leader's).
    #[arg(
        long = "timeout",
        value_name = "SECONDS",
        env = "RS_ADMIN_TIMEOUT",
        default_value_t = 60
    )]
    pub(crate) timeout_secs: u64,
    /// Cluster-port TLS.
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) action: AdminAction,
}

/// `demo-app admin` actions.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum AdminAction {
    /// Print the members, their roles, the leader and each member's lag.
    Status {
        /// Print the leader's status as JSON (as `/cluster/status` does).
        #[arg(long, env = "RS_ADMIN_JSON")]
        json: bool,
    },
    /// Add a running node (started with an empty data dir, waiting to be
    /// contacted) as a learner; see its lag with `status` before promoting.
    AddLearner {
        /// The new member's id.
        #[arg(long, env = "RS_ADMIN_ID")]
        id: u64,
        /// Its cluster address, as the members will reach it.
        #[arg(long, env = "RS_ADMIN_ADDR")]
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's id.
        #[arg(long, env = "RS_ADMIN_ID")]
        id: u64,
    },
    /// Remove a member (voter or learner) from the cluster.
    Remove {
        /// The member's id.
        #[arg(long, env = "RS_ADMIN_ID")]
        id: u64,
    },
}

/// Options for `demo-app standalone` and `demo-app ceiling`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StandaloneArgs {
    /// Application (HTTP) listen address.
    #[arg(long, env = "RS_LISTEN", default_value = "127.0.0.1:3000")]
    pub(crate) listen: SocketAddr,
    /// Shared options.
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// Options every mode shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonArgs {
    /// File holding the cookie signing key material (at least 64 bytes);
    /// without it a random key is used and cookies die with the process.
    /// Every member of a cluster must use the same key.
    #[arg(long, env = "RS_COOKIE_KEY_FILE")]
    pub(crate) cookie_key_file: Option<PathBuf>,
    /// Send cookies over plain HTTP too (local demos without TLS).
    #[arg(long, env = "RS_INSECURE_COOKIES")]
    pub(crate) insecure_cookies: bool,
    /// Read consistency for sessions.
    #[arg(long, env = "RS_READ_MODE", value_enum, default_value_t = ReadModeArg::Session)]
    pub(crate) read_mode: ReadModeArg,
    /// Idle timeout of a session, in seconds.
    #[arg(long, env = "RS_IDLE_TIMEOUT", default_value_t = 1800)]
    pub(crate) idle_timeout_secs: u64,
    /// Most sessions the store holds (expired ones count until dropped); a
    /// request that would create one more gets 503 with Retry-After, while
    /// existing sessions keep working. Give every member the same value.
    #[arg(long, env = "RS_MAX_SESSIONS")]
    pub(crate) max_sessions: Option<u64>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "RS_LOG", default_value = "info,openraft=warn")]
    pub(crate) log: String,
}

/// Read consistency, as a CLI value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReadModeArg {
    /// Read-your-writes on any node (default).
    Session,
    /// Every read goes through the leader's read index.
    Linearizable,
    /// Fastest; may be stale.
    Local,
}

impl ClusterArgs {
    /// `cluster` options with every default (and environment variable) applied,
    /// for when the binary runs with no subcommand.
    pub(crate) fn parse_defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ClusterArgs,
        }
        Only::parse_from(["demo-app"]).args
    }
}
