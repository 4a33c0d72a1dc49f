//! A TCP fault proxy in front of every node's cluster (Raft RPC) port, so a
//! test can cut one node off from its peers and heal it again, with real
//! sockets on 127.0.0.1.
//!
//! Each node advertises its proxy's address, so every Raft message, forwarded
//! write and vote reaches it through the proxy. Cutting node X off must stop
//! traffic in both directions: into X (anything arriving at X's proxy) and out
//! of X (X connecting to the proxies of the others). All processes share
//! 127.0.0.1, so the source address cannot tell who connected; the proxy asks
//! the kernel instead: `/proc/net/tcp` maps the connecting socket to an inode,
//! and the inode is found among the open descriptors of a registered node
//! process.
//!
//! That lookup is slow on a loaded machine (hundreds of milliseconds seen),
//! far beyond openraft's 75 ms append time-out, so it must stay off the
//! common path: with nobody cut off, a connection is forwarded at once and
//! identified in the background (one `/proc` scan answers every connection
//! that arrived meanwhile). While a node is cut off, nothing passes before
//! its source is known; connections to or from the isolated node are closed
//! on arrival, live ones are severed, and a live one not yet identified is
//! severed too (it might be the isolated node's; a healthy peer reconnects).

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// What the proxies share: who is cut off, and which process is which node.
struct NetState {
    /// Nodes currently cut off from everyone.
    isolated: Mutex<HashSet<u64>>,
    /// Node id of each running node process, by pid.
    pids: Mutex<HashMap<u32, u64>>,
    /// Bumped on every change of `isolated`, so live connections re-check.
    changes: watch::Sender<u64>,
    /// Connections closed on arrival because an end was cut off.
    refused: AtomicU64,
    /// Live connections severed by a cut.
    severed: AtomicU64,
    /// Connections whose source process could not be identified (a cut of
    /// that source would not apply to them; reported so a test can insist
    /// on none).
    unidentified: AtomicU64,
    /// `/proc` scans made to identify sources.
    scans: AtomicU64,
    /// The slowest scan, in microseconds.
    slowest_scan_us: AtomicU64,
}

impl NetState {
    fn blocked(&self, src: Option<u64>, dst: u64) -> bool {
        let isolated = self.isolated.lock().unwrap();
        isolated.contains(&dst) || src.is_some_and(|s| isolated.contains(&s))
    }

    fn any_isolated(&self) -> bool {
        !self.isolated.lock().unwrap().is_empty()
    }

    fn note_identified(&self, src: Option<u64>) {
        if src.is_none() {
            self.unidentified.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn note_scan(&self, took: Duration) {
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.slowest_scan_us
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Counters of what the proxies did.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    /// Connections closed on arrival during a cut.
    pub refused: u64,
    /// Live connections severed by a cut.
    pub severed: u64,
    /// Connections from a process the proxy could not identify.
    pub unidentified: u64,
    /// `/proc` scans made to identify sources (one per burst of connections).
    pub scans: u64,
    /// The slowest scan.
    pub slowest_scan: Duration,
}

/// One proxy per node, sharing one view of the faults.
pub struct FaultNet {
    state: Arc<NetState>,
    /// Proxy port of each node, by node id.
    ports: HashMap<u64, u16>,
    /// The accept loops (aborted on drop).
    tasks: Vec<JoinHandle<()>>,
}

impl FaultNet {
    /// Binds one proxy per `(node id, real cluster port)` on 127.0.0.1 and
    /// starts forwarding. Must run inside a Tokio runtime.
    pub async fn start(targets: &[(u64, u16)]) -> Self {
        let (changes, _) = watch::channel(0);
        let state = Arc::new(NetState {
            isolated: Mutex::new(HashSet::new()),
            pids: Mutex::new(HashMap::new()),
            changes,
            refused: AtomicU64::new(0),
            severed: AtomicU64::new(0),
            unidentified: AtomicU64::new(0),
            scans: AtomicU64::new(0),
            slowest_scan_us: AtomicU64::new(0),
        });
        let (identifier, identifier_task) = Identifier::spawn(state.clone());
        let mut ports = HashMap::new();
        let mut tasks = vec![identifier_task];
        for &(node, real_port) in targets {
            // Bound here and kept: no window in which another process could
            // take the port.
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
            let port = listener.local_addr().unwrap().port();
            ports.insert(node, port);
            let target = SocketAddr::from(([127, 0, 0, 1], real_port));
            tasks.push(tokio::spawn(accept_loop(
                listener,
                port,
                node,
                target,
                state.clone(),
                identifier.clone(),
            )));
        }
        Self {
            state,
            ports,
            tasks,
        }
    }

    /// The proxy port standing for `node`'s cluster port.
    pub fn port(&self, node: u64) -> u16 {
        self.ports[&node]
    }

    /// Records which process is `node` now (after a (re)start), or that it
    /// has none.
    pub fn set_pid(&self, node: u64, pid: Option<u32>) {
        let mut pids = self.state.pids.lock().unwrap();
        pids.retain(|_, n| *n != node);
        if let Some(pid) = pid {
            pids.insert(pid, node);
        }
    }

    /// Cuts `node` off from all peers, both ways, and severs its live
    /// connections.
    pub fn isolate(&self, node: u64) {
        self.state.isolated.lock().unwrap().insert(node);
        self.state.changes.send_modify(|g| *g += 1);
    }

    /// Lets `node` talk to its peers again.
    pub fn heal(&self, node: u64) {
        self.state.isolated.lock().unwrap().remove(&node);
        self.state.changes.send_modify(|g| *g += 1);
    }

    /// What the proxies did so far.
    pub fn stats(&self) -> NetStats {
        NetStats {
            refused: self.state.refused.load(Ordering::Relaxed),
            severed: self.state.severed.load(Ordering::Relaxed),
            unidentified: self.state.unidentified.load(Ordering::Relaxed),
            scans: self.state.scans.load(Ordering::Relaxed),
            slowest_scan: Duration::from_micros(self.state.slowest_scan_us.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for FaultNet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    dst: u64,
    target: SocketAddr,
    state: Arc<NetState>,
    identifier: Identifier,
) {
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            // Out of descriptors or similar: the node simply sees a failed
            // connection; keep serving.
            tokio::task::yield_now().await;
            continue;
        };
        let ident = identifier.ask(peer.port(), port);
        tokio::spawn(serve(inbound, ident, dst, target, state.clone()));
    }
}

async fn serve(
    mut inbound: TcpStream,
    ident: oneshot::Receiver<Option<u64>>,
    dst: u64,
    target: SocketAddr,
    state: Arc<NetState>,
) {
    // Subscribe before checking, so a cut made in between is not missed.
    let mut changes = state.changes.subscribe();
    let mut src = None;
    let mut pending = Some(ident);
    if state.blocked(None, dst) {
        state.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if state.any_isolated() {
        // During a cut nothing passes before we know who is talking: the
        // isolated node must not get a single byte through.
        src = pending.take().unwrap().await.ok().flatten();
        state.note_identified(src);
        if state.blocked(src, dst) || (src.is_none() && state.any_isolated()) {
            state.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        // The node is down: the peer sees its connection closed, as it would
        // see a refusal without the proxy.
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let pump = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
    tokio::pin!(pump);
    loop {
        // Unidentified while someone is cut off: it might be the isolated
        // node, so sever it (a healthy peer just reconnects).
        let unsure = pending.is_some() && state.any_isolated();
        if state.blocked(src, dst) || unsure {
            state.severed.fetch_add(1, Ordering::Relaxed);
            // Returning drops (closes) both sockets.
            return;
        }
        tokio::select! {
            _ = &mut pump => return,
            changed = changes.changed() => if changed.is_err() { return },
            found = async { pending.as_mut().unwrap().await }, if pending.is_some() => {
                pending = None;
                src = found.ok().flatten();
                state.note_identified(src);
            }
        }
    }
}

/// Answers "which node opened this connection?" in batches: one scan of
/// `/proc` answers every question queued meanwhile, so a burst of new
/// connections (a leader change) costs one scan, not one each.
#[derive(Clone)]
struct Identifier {
    questions: mpsc::UnboundedSender<Question>,
}

/// `(peer port, proxy port, where the answer goes)`.
type Question = (u16, u16, oneshot::Sender<Option<u64>>);

impl Identifier {
    fn spawn(state: Arc<NetState>) -> (Self, JoinHandle<()>) {
        let (questions, mut rx) = mpsc::unbounded_channel::<Question>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let pids: Vec<(u32, u64)> = state
                    .pids
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(p, n)| (*p, *n))
                    .collect();
                let wanted: Vec<(u16, u16)> = batch.iter().map(|(a, b, _)| (*a, *b)).collect();
                let started = Instant::now();
                let found = tokio::task::spawn_blocking(move || identify_all(&pids, &wanted))
                    .await
                    .unwrap_or_default();
                state.note_scan(started.elapsed());
                for ((_, _, reply), node) in batch.into_iter().zip(found) {
                    let _ = reply.send(node);
                }
            }
        });
        (Self { questions }, task)
    }

    fn ask(&self, peer_port: u16, proxy_port: u16) -> oneshot::Receiver<Option<u64>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.questions.send((peer_port, proxy_port, reply));
        answer
    }
}

/// For each `(peer port, proxy port)`, the node whose process holds the
/// socket connected from `127.0.0.1:peer port` to the proxy.
fn identify_all(pids: &[(u32, u64)], wanted: &[(u16, u16)]) -> Vec<Option<u64>> {
    let inodes = socket_inodes(wanted);
    let mut owner: HashMap<u64, u64> = HashMap::new();
    let mut missing: HashSet<u64> = inodes.iter().flatten().copied().collect();
    'pids: for &(pid, node) in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if missing.is_empty() {
                break 'pids;
            }
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if let Some(inode) = inode {
                if missing.remove(&inode) {
                    owner.insert(inode, node);
                }
            }
        }
    }
    inodes
        .into_iter()
        .map(|i| i.and_then(|i| owner.get(&i).copied()))
        .collect()
}

/// For each `(local port, remote port)`, the inode of the local socket
/// `*:local` connected to `*:remote` (one read of the kernel's tables).
fn socket_inodes(wanted: &[(u16, u16)]) -> Vec<Option<u64>> {
    let port_of = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut found: HashMap<(u16, u16), u64> = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let (Some(local), Some(remote)) = (port_of(fields[1]), port_of(fields[2])) else {
                continue;
            };
            if let Ok(inode) = fields[9].parse::<u64>() {
                if inode != 0 && wanted.contains(&(local, remote)) {
                    found.insert((local, remote), inode);
                }
            }
        }
    }
    wanted.iter().map(|w| found.get(w).copied()).collect()
}
