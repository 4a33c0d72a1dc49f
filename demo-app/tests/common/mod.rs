//! Helpers for tests that run the real `demo-app` binary as separate OS
//! processes on 127.0.0.1: free ports, a three-node cluster, readiness polling,
//! and an HTTP client that keeps cookies across nodes.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_demo-app");

/// Generous bound for anything cluster-wide on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// First and one-past-last port [`free_ports`] hands out: just below the
/// kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`,
/// 32768-60999 by default), so neither a `bind(:0)` (the fault proxies,
/// nginx, in-process servers) nor the local end of an outgoing connection
/// (readiness polls, load clients) can take a node's port in the gap between
/// choosing it here and the node process binding it. With ports from
/// `bind(:0)` that gap once let a fault proxy take a node's port, and the
/// node failed to start ("binding 127.0.0.1:N"). If the ephemeral range
/// leaves no room below it, 20000-32000 is used and the old risk returns.
fn port_range() -> (u32, u32) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok());
    match ephemeral_start {
        Some(start) if start >= 4_096 => (start.saturating_sub(12_000).max(1_024), start),
        _ => (20_000, 32_000),
    }
}

/// Next candidate port; starts at a per-process offset so that test binaries
/// run one after another do not all start from the same ports.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `n` distinct ports that are free now, outside the ephemeral range (see
/// [`port_range`]); each is checked by binding it and released for the
/// process that will listen on it.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::Ordering;
    let (first, end) = port_range();
    let span = end - first;
    let _ = NEXT_PORT.compare_exchange(
        0,
        1 + (std::process::id().wrapping_mul(7919) % span),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let port = (first + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free ports in {first}..{end}");
    ports
}

/// One `demo-app node` process.
pub struct NodeProcess {
    /// Node id.
    pub id: u64,
    /// Application port.
    pub port: u16,
    /// Cluster port.
    pub cluster_port: u16,
    /// The process, while it runs.
    pub child: Option<Child>,
    /// Arguments it was started with (to restart it the same way).
    args: Vec<String>,
    /// Where its stderr goes.
    log: PathBuf,
}

impl NodeProcess {
    /// Base URL of the application port.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A node to be started with `args`, logging to `dir/node-<id>.log`;
    /// not running yet (see [`NodeProcess::spawn`]).
    pub fn new(id: u64, port: u16, cluster_port: u16, args: Vec<String>, dir: &Path) -> Self {
        NodeProcess {
            id,
            port,
            cluster_port,
            child: None,
            args,
            log: dir.join(format!("node-{id}.log")),
        }
    }

    /// A node started with `args`, logging to `dir/node-<id>.log`.
    pub fn spawned(id: u64, port: u16, cluster_port: u16, args: Vec<String>, dir: &Path) -> Self {
        let mut node = Self::new(id, port, cluster_port, args, dir);
        node.spawn();
        node
    }

    /// Starts (or restarts) the process.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let child = Command::new(BIN)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn demo-app node");
        self.child = Some(child);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("node runs");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Up to 12 lines of the whole log that name a panic or an error (a
    /// panic's message is the line after "panicked at"), first ones first.
    pub fn first_failures(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut picked = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if picked.len() >= 12 {
                break;
            }
            if line.contains("panicked at") {
                picked.push(line.to_string());
                if let Some(next) = lines.get(i + 1) {
                    picked.push(next.to_string());
                }
            } else if line.contains("ERROR") || line.starts_with("Error:") {
                picked.push(line.to_string());
            }
        }
        picked.join("\n")
    }

    /// The node's log so far (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of `demo-app node` processes sharing a secret and cookie key.
pub struct ProcessCluster {
    /// Members, index i = node id i + 1.
    pub nodes: Vec<NodeProcess>,
    /// Keeps the data directories alive.
    pub dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// Starts `n` nodes with durable data directories and waits until every
    /// node is ready.
    pub async fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        write_hex(&dir.path().join("cluster.secret"), 32);
        write_hex(&dir.path().join("cookie.key"), 64);
        let peers: Vec<String> = (0..n)
            .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[n + i]))
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let id = (i + 1) as u64;
                let args = node_args(dir.path(), id, ports[i], ports[n + i], &peers);
                NodeProcess::spawned(id, ports[i], ports[n + i], args, dir.path())
            })
            .collect();
        let cluster = Self { nodes, dir };
        for node in &cluster.nodes {
            cluster.wait_ready(node).await;
        }
        cluster
    }

    /// Starts one more node, id `nodes.len() + 1`, with an empty data
    /// directory and the cluster's secret and cookie key, whose `--peers`
    /// lists the running members and itself. Its id is not the lowest there,
    /// so it neither bootstraps nor joins: it waits to be added (by
    /// `demo-app admin add-learner`, say). Returns its id once its
    /// application port answers `/healthz` (`/readyz` needs a leader).
    pub async fn spawn_waiting_node(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let ports = free_ports(2);
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|n| (n.id, n.cluster_port))
            .chain([(id, ports[1])])
            .map(|(id, port)| format!("{id}=127.0.0.1:{port}"))
            .collect();
        let args = node_args(self.dir.path(), id, ports[0], ports[1], &peers);
        let node = NodeProcess::spawned(id, ports[0], ports[1], args, self.dir.path());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", node.url())).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not serving within {PATIENCE:?}; log:\n{}",
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.nodes.push(node);
        id
    }

    /// Waits until `node` answers `/readyz` with 200.
    pub async fn wait_ready(&self, node: &NodeProcess) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", node.url())).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} not ready within {PATIENCE:?}; log:\n{}",
                node.id,
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader id as reported by any running node.
    pub async fn leader(&self) -> u64 {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Ok(r) = client
                    .get(format!("{}/cluster/status", node.url()))
                    .send()
                    .await
                {
                    if let Ok(v) = r.json::<Value>().await {
                        if let Some(id) = v["leader_id"].as_u64() {
                            if self.nodes[(id - 1) as usize].child.is_some() {
                                return id;
                            }
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no live leader within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node by id.
    pub fn node(&mut self, id: u64) -> &mut NodeProcess {
        &mut self.nodes[(id - 1) as usize]
    }
}

/// `demo-app node` arguments of member `id` of a cluster whose files are in
/// `dir` (secret, cookie key, data directories, logs).
fn node_args(dir: &Path, id: u64, port: u16, cluster_port: u16, peers: &[String]) -> Vec<String> {
    vec![
        "node".into(),
        "--id".into(),
        id.to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--cluster-listen".into(),
        format!("127.0.0.1:{cluster_port}"),
        "--peers".into(),
        peers.join(","),
        "--data-dir".into(),
        dir.join(format!("node-{id}")).display().to_string(),
        "--secret-file".into(),
        dir.join("cluster.secret").display().to_string(),
        "--cookie-key-file".into(),
        dir.join("cookie.key").display().to_string(),
        "--insecure-cookies".into(),
        "--public-status".into(),
        "--log".into(),
        "info".into(),
    ]
}

/// A browser-like HTTP client: one cookie jar for all nodes (cookies are per
/// host, not per port, so a cookie set by node 1 goes to node 3 as well).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Calls `f` until it returns `Some`, or panics after [`PATIENCE`]. For
/// operations that may fail while a cluster elects a leader.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `len` random bytes as hex.
pub fn write_hex(path: &Path, len: usize) {
    use std::io::Read;
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, text).expect("write key file");
}

/// Several meshes of `demo-app node` processes (`--mesh m1..mM`), all with
/// one cluster secret, cookie key and mesh directory. Node ids run 1..M×K in
/// mesh order (mesh m1 = nodes 1..K), as `demo-app cluster --meshes` lays
/// them out, so [`ProcessCluster::node`] works by id.
pub struct MeshCluster {
    /// Every node of every mesh; `cluster.nodes[i]` is node id i + 1.
    pub cluster: ProcessCluster,
    /// Nodes per mesh.
    pub per_mesh: usize,
    /// Number of meshes.
    pub meshes: usize,
}

impl MeshCluster {
    /// Starts `meshes` meshes of `per_mesh` nodes (durable data directories)
    /// and waits until every node is ready (knows its mesh's leader).
    pub async fn start(meshes: usize, per_mesh: usize) -> Self {
        let n = meshes * per_mesh;
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        write_hex(&dir.path().join("cluster.secret"), 32);
        write_hex(&dir.path().join("cookie.key"), 64);
        let mesh_of = |i: usize| format!("m{}", i / per_mesh + 1);
        let directory: Vec<String> = (0..meshes)
            .map(|m| {
                let addrs: Vec<String> = (m * per_mesh..(m + 1) * per_mesh)
                    .map(|i| format!("127.0.0.1:{}", ports[n + i]))
                    .collect();
                format!("m{}={}", m + 1, addrs.join(","))
            })
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let id = (i + 1) as u64;
                let first = i / per_mesh * per_mesh;
                // --peers: this node's own mesh only.
                let peers: Vec<String> = (first..first + per_mesh)
                    .map(|j| format!("{}=127.0.0.1:{}", j + 1, ports[n + j]))
                    .collect();
                let mut args = node_args(dir.path(), id, ports[i], ports[n + i], &peers);
                args.extend([
                    "--mesh".into(),
                    mesh_of(i),
                    "--mesh-directory".into(),
                    directory.join(";"),
                ]);
                NodeProcess::spawned(id, ports[i], ports[n + i], args, dir.path())
            })
            .collect();
        let cluster = ProcessCluster { nodes, dir };
        for node in &cluster.nodes {
            cluster.wait_ready(node).await;
        }
        Self {
            cluster,
            per_mesh,
            meshes,
        }
    }

    /// The mesh tag of node `id`.
    pub fn mesh_of(&self, id: u64) -> String {
        format!("m{}", (id as usize - 1) / self.per_mesh + 1)
    }

    /// The nodes of mesh `tag`.
    pub fn nodes_of<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a NodeProcess> + 'a {
        self.cluster
            .nodes
            .iter()
            .filter(move |n| self.mesh_of(n.id) == tag)
    }
}

/// Debian's nginx binary, if installed.
pub fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// An nginx run by a test: one process (`master_process off`), so that
/// killing it leaves no worker behind; with a master, a SIGKILLed master
/// orphans its workers, which keep the port and the test's output pipe open
/// (and so keep `cargo test`'s caller waiting). Killed on drop, also when an
/// assertion fails first. Its errors go to the `error_log` of the config.
pub struct Nginx(Child);

impl Nginx {
    /// Starts `binary` with prefix `prefix` and configuration `conf`.
    pub fn start(binary: &str, prefix: &Path, conf: &Path) -> Self {
        let child = Command::new(binary)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Self(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
