//! Support for the chaos tests: a three-node cluster of real `demo-app node`
//! processes (durable data directories) behind [`FaultNet`] proxies, with
//! SIGKILL, SIGSTOP/SIGCONT and network cuts; a load driver of many sessions,
//! each incrementing its own counter through randomly chosen nodes and
//! recording every acknowledged, lost and refused request; and the final
//! read-back that checks every acknowledged increment is still there.
//!
//! What a client may conclude from an answer:
//! - 2xx with a count: the increment is committed (acknowledged);
//! - connection refused: nothing was sent, nothing happened (refused);
//! - time-out, connection lost, 503: it may or may not have happened (unknown).
//!
//! Each session sends one request at a time and waits for its answer longer
//! than any server-side bound (read wait + write time-out, plus a SIGSTOP),
//! so a request the client gave up on can never land after the client's next
//! write: the demo's increment is a plain read-modify-write, and such a
//! straggler would overwrite a newer count by design of the handler, not by a
//! fault of the store.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::common::{free_ports, write_hex, NodeProcess, PATIENCE};
use crate::fault_proxy::FaultNet;

/// Name of the demo's session cookie.
const COOKIE_NAME: &str = "sid";

/// A number from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: the tests need cheap, seedable choices, not
/// cryptographic ones (and the crate has no `rand` dev-dependency).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    /// A seed from the OS, or `CHAOS_SEED` when set.
    pub fn seed_from_env() -> u64 {
        if let Ok(v) = std::env::var("CHAOS_SEED") {
            if let Ok(seed) = v.trim().parse() {
                return seed;
            }
        }
        use std::io::Read;
        let mut bytes = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("read /dev/urandom");
        u64::from_le_bytes(bytes)
    }

    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One `demo-app node` process of a [`ChaosCluster`]: a [`NodeProcess`]
/// (whose `cluster_port` is the real one; peers reach it through its proxy)
/// that may also be SIGSTOPped.
pub struct ChaosNode {
    /// The process.
    process: NodeProcess,
    /// SIGSTOPped and not yet continued.
    stopped: bool,
}

impl ChaosNode {
    /// Running and not stopped.
    pub fn is_up(&self) -> bool {
        self.process.child.is_some() && !self.stopped
    }
}

impl std::ops::Deref for ChaosNode {
    type Target = NodeProcess;
    fn deref(&self) -> &NodeProcess {
        &self.process
    }
}

impl std::ops::DerefMut for ChaosNode {
    fn deref_mut(&mut self) -> &mut NodeProcess {
        &mut self.process
    }
}

/// Three (or `n`) nodes with durable data directories, each cluster port
/// behind a [`FaultNet`] proxy that the peers use.
pub struct ChaosCluster {
    /// Members; index i is node id i + 1.
    pub nodes: Vec<ChaosNode>,
    /// The proxies.
    pub net: FaultNet,
    /// Keeps data directories and logs alive.
    pub dir: tempfile::TempDir,
    /// For status and readiness polls.
    http: reqwest::Client,
    /// When the cluster was started (fault log times are relative to it).
    pub started: Instant,
    /// What was done to the cluster, when.
    pub events: Vec<String>,
}

impl ChaosCluster {
    /// Starts `n` nodes and waits until all are ready and agree on a leader.
    pub async fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        let targets: Vec<(u64, u16)> = (0..n).map(|i| ((i + 1) as u64, ports[n + i])).collect();
        let net = FaultNet::start(&targets).await;
        write_hex(&dir.path().join("cluster.secret"), 32);
        write_hex(&dir.path().join("cookie.key"), 64);
        // Every member knows the others by their proxies' addresses.
        let peers: Vec<String> = (1..=n as u64)
            .map(|id| format!("{id}=127.0.0.1:{}", net.port(id)))
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let id = (i + 1) as u64;
                let mut args: Vec<String> = vec![
                    "node".into(),
                    "--id".into(),
                    id.to_string(),
                    "--listen".into(),
                    format!("127.0.0.1:{}", ports[i]),
                    "--cluster-listen".into(),
                    format!("127.0.0.1:{}", ports[n + i]),
                    "--advertise".into(),
                    format!("127.0.0.1:{}", net.port(id)),
                    "--peers".into(),
                    peers.join(","),
                    "--data-dir".into(),
                    dir.path().join(format!("node-{id}")).display().to_string(),
                    "--secret-file".into(),
                    dir.path().join("cluster.secret").display().to_string(),
                    "--cookie-key-file".into(),
                    dir.path().join("cookie.key").display().to_string(),
                    "--insecure-cookies".into(),
                    "--public-status".into(),
                    "--log".into(),
                    "info,openraft=warn".into(),
                ];
                // `session` (the default), `linearizable` or `local`: `local`
                // may serve stale reads, which the load must then catch.
                if let Ok(mode) = std::env::var("CHAOS_READ_MODE") {
                    args.extend(["--read-mode".into(), mode]);
                }
                ChaosNode {
                    process: NodeProcess::new(id, ports[i], ports[n + i], args, dir.path()),
                    stopped: false,
                }
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let mut cluster = Self {
            nodes,
            net,
            dir,
            http,
            started: Instant::now(),
            events: Vec::new(),
        };
        for id in 1..=n as u64 {
            cluster.spawn(id);
        }
        cluster.wait_healthy().await;
        cluster
    }

    /// Node by id.
    pub fn node(&self, id: u64) -> &ChaosNode {
        &self.nodes[(id - 1) as usize]
    }

    /// Application URLs of all members (up or not: clients do not know).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// Notes a fault (and prints it, so `--nocapture` shows the schedule).
    pub fn event(&mut self, what: impl Into<String>) {
        let line = format!(
            "[{:6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            what.into()
        );
        eprintln!("chaos: {line}");
        self.events.push(line);
    }

    /// Starts (or restarts) node `id` from its data directory.
    pub fn spawn(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} already runs");
        node.spawn();
        node.stopped = false;
        self.net.set_pid(id, node.pid());
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        node.process.kill();
        node.stopped = false;
        self.net.set_pid(id, None);
    }

    /// SIGKILL every node before reaping any, so none outlives the others by
    /// more than the few microseconds between `kill(2)` calls.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.kill();
            }
        }
        for id in 1..=self.nodes.len() as u64 {
            self.kill(id);
        }
    }

    /// SIGSTOP node `id`: it keeps its sockets but does nothing.
    pub fn stop(&mut self, id: u64) {
        self.node(id).signal("-STOP");
        self.nodes[(id - 1) as usize].stopped = true;
    }

    /// SIGCONT node `id`.
    pub fn cont(&mut self, id: u64) {
        self.node(id).signal("-CONT");
        self.nodes[(id - 1) as usize].stopped = false;
    }

    /// `/cluster/status` of node `id`, if it answers.
    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/cluster/status", self.node(id).url()))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.json().await.ok()
    }

    /// The node that says it leads (the highest term wins if an isolated
    /// old leader still thinks it does).
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut best: Option<(u64, u64)> = None;
            for node in self.nodes.iter().filter(|n| n.is_up()) {
                if let Some(s) = self.status(node.id).await {
                    let term = s["term"].as_u64().unwrap_or(0);
                    if s["role"] == "Leader" && best.is_none_or(|(t, _)| term > t) {
                        best = Some((term, node.id));
                    }
                }
            }
            if let Some((_, id)) = best {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {PATIENCE:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A member that is not `leader`, picked by `rng`.
    pub fn follower(&self, leader: u64, rng: &mut Rng) -> u64 {
        let others: Vec<u64> = (1..=self.nodes.len() as u64)
            .filter(|id| *id != leader)
            .collect();
        others[rng.below(others.len() as u64) as usize]
    }

    /// Waits until every node runs, answers `/readyz` (knows a leader and has
    /// applied what it knows committed), and all name the same leader, which
    /// itself says it leads. Panics with the logs after [`PATIENCE`].
    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.healthy().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not healthy within {PATIENCE:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn healthy(&self) -> bool {
        let mut leaders = Vec::new();
        for node in &self.nodes {
            if !node.is_up() {
                return false;
            }
            let ready = self
                .http
                .get(format!("{}/readyz", node.url()))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if !ready {
                return false;
            }
            let Some(status) = self.status(node.id).await else {
                return false;
            };
            leaders.push(status["leader_id"].as_u64());
        }
        let Some(Some(leader)) = leaders.first().copied() else {
            return false;
        };
        if leaders.iter().any(|l| *l != Some(leader)) {
            return false;
        }
        self.status(leader)
            .await
            .is_some_and(|s| s["role"] == "Leader")
    }

    /// Every node's log tail, for failure messages, preceded by the first
    /// lines of each whole log that tell why a node failed (a panic with the
    /// line after it, startup errors), which the tail alone often cuts off.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- node {} first failures ---\n{}\n--- node {} log tail ---\n{}",
                    n.id,
                    n.first_failures(),
                    n.id,
                    n.log_tail()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        for id in 1..=self.nodes.len() as u64 {
            self.kill(id);
        }
        // A failed run keeps its logs and data directories for a post-mortem
        // (any run does with CHAOS_KEEP set).
        if std::thread::panicking() || std::env::var_os("CHAOS_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "chaos: kept {} (node logs, data)",
                self.dir.path().display()
            );
        }
    }
}

/// How the load behaves.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent sessions (one client each, one request at a time).
    pub sessions: usize,
    /// Client-side time-out of one request. Must exceed the longest time a
    /// node may hold a request (read wait + write time-out + a SIGSTOP), see
    /// the module doc.
    pub request_timeout: Duration,
    /// Pause between a session's requests, drawn from this range (ms); keeps
    /// two shared cores from being saturated by the driver alone.
    pub think_ms: (u64, u64),
    /// Most requests one session sends.
    pub max_ops: u64,
    /// The load stops by itself after this long, whatever the test does.
    pub hard_stop: Duration,
}

impl LoadSpec {
    /// Defaults for `sessions` sessions that stop within `hard_stop`.
    pub fn new(sessions: usize, hard_stop: Duration) -> Self {
        Self {
            sessions,
            request_timeout: Duration::from_secs(15),
            think_ms: (20, 80),
            max_ops: 1_000_000,
            hard_stop,
        }
    }
}

/// What one session's client saw.
#[derive(Debug, Default, Clone)]
pub struct SessionLog {
    /// Index of the session in the load.
    pub index: usize,
    /// `sid=<value>` of the last acknowledged write.
    pub cookie: Option<String>,
    /// Acknowledged increments.
    pub acked: u64,
    /// Highest count an acknowledged increment answered.
    pub max_acked: u64,
    /// Requests whose outcome is unknown (time-out, lost connection, 503).
    pub unknown: u64,
    /// Requests refused before anything was sent (connection refused).
    pub refused: u64,
    /// Reads (with the session's token) that answered.
    pub reads_ok: u64,
    /// Reads that did not answer (any failure; reads change nothing).
    pub reads_failed: u64,
    /// When each acknowledged increment's answer arrived.
    pub ack_times: Vec<Instant>,
    /// Broken promises seen by this client.
    pub violations: Vec<String>,
}

/// One request's outcome, as a client can classify it.
enum Answer {
    /// 2xx with a count.
    Ok {
        count: u64,
        cookie: Option<String>,
        node: String,
    },
    /// Connection refused: nothing was sent.
    Refused,
    /// The outcome cannot be known.
    Unknown,
    /// An answer no correct server gives here (4xx, 5xx other than 503,
    /// 2xx without a count).
    Odd(String),
}

async fn call(client: &reqwest::Client, method: Method, url: &str, cookie: Option<&str>) -> Answer {
    let mut request = client.request(method, format!("{url}/api/counter"));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Answer::Refused,
        Err(_) => return Answer::Unknown,
    };
    let status = response.status();
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .rfind(|pair| pair.starts_with(&format!("{COOKIE_NAME}=")))
        .map(str::to_owned);
    if status.is_success() {
        return match response.json::<Value>().await {
            Ok(v) => match v["count"].as_u64() {
                Some(count) => Answer::Ok {
                    count,
                    cookie,
                    node: v["node"].as_str().unwrap_or("?").to_owned(),
                },
                None => Answer::Odd(format!("{status} without a count: {v}")),
            },
            // The status arrived, the body did not: we cannot tell.
            Err(_) => Answer::Unknown,
        };
    }
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Answer::Unknown;
    }
    let body = response.text().await.unwrap_or_default();
    Answer::Odd(format!("{status}: {body}"))
}

/// A running load; [`Load::finish`] stops it and collects what it saw.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Acknowledged increments so far, for progress checks while it runs.
    acked: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<SessionLog>>,
    started: Instant,
}

impl Load {
    /// Starts `spec.sessions` session clients against `urls`.
    pub fn start(urls: Vec<String>, spec: LoadSpec, seed: u64) -> Self {
        let client = reqwest::Client::builder()
            .timeout(spec.request_timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let driver = Arc::new(Driver {
            client,
            urls,
            hard_deadline: started + spec.hard_stop,
            spec,
            stop: stop.clone(),
            acked: acked.clone(),
        });
        let tasks = (0..driver.spec.sessions)
            .map(|index| {
                let rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x1000_0000_01B3));
                tokio::spawn(drive(index, driver.clone(), rng))
            })
            .collect();
        Self {
            stop,
            acked,
            tasks,
            started,
        }
    }

    /// Acknowledged increments so far.
    pub fn acked_so_far(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` increments were acknowledged in all; panics
    /// after [`PATIENCE`].
    pub async fn wait_acked(&self, n: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.acked_so_far() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} increments acknowledged within {PATIENCE:?}",
                self.acked_so_far()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every session after its current request and returns the logs.
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let ended = Instant::now();
        let mut sessions = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            sessions.push(task.await.expect("session task panicked"));
        }
        LoadReport {
            sessions,
            started: self.started,
            ended,
        }
    }
}

/// What every session client of one load shares.
struct Driver {
    client: reqwest::Client,
    urls: Vec<String>,
    spec: LoadSpec,
    /// Set when the load is to stop.
    stop: Arc<AtomicBool>,
    /// Acknowledged increments of all sessions.
    acked: Arc<AtomicU64>,
    /// The load stops by itself then.
    hard_deadline: Instant,
}

async fn drive(index: usize, driver: Arc<Driver>, mut rng: Rng) -> SessionLog {
    let Driver {
        client,
        urls,
        spec,
        stop,
        acked: acked_total,
        hard_deadline,
    } = &*driver;
    let hard_deadline = *hard_deadline;
    let mut log = SessionLog {
        index,
        ..SessionLog::default()
    };
    let pick = |rng: &mut Rng| urls[rng.below(urls.len() as u64) as usize].clone();
    let mut ops = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < hard_deadline && ops < spec.max_ops {
        ops += 1;
        let url = pick(&mut rng);
        match call(client, Method::POST, &url, log.cookie.as_deref()).await {
            Answer::Ok {
                count,
                cookie,
                node,
            } => {
                log.ack_times.push(Instant::now());
                acked_total.fetch_add(1, Ordering::Relaxed);
                // The handler read at least the last acknowledged count (the
                // cookie's token makes the node wait for it) and added one.
                if count <= log.max_acked {
                    log.violations.push(format!(
                        "session {index}: increment via {node} answered {count} after an \
                         acknowledged {} (counter went back)",
                        log.max_acked
                    ));
                }
                // Every count is the number of increments applied so far,
                // which cannot exceed the ones this client may have caused.
                if count > log.acked + 1 + log.unknown {
                    log.violations.push(format!(
                        "session {index}: increment via {node} answered {count}, but only {} \
                         acknowledged and {} unknown requests came before it",
                        log.acked, log.unknown
                    ));
                }
                log.acked += 1;
                log.max_acked = log.max_acked.max(count);
                match cookie {
                    Some(c) => log.cookie = Some(c),
                    None if log.cookie.is_none() => log
                        .violations
                        .push(format!("session {index}: first write set no cookie")),
                    None => {}
                }
                // Now and then read it back through any node: the token in
                // the cookie must make that node show at least this write.
                if rng.below(3) == 0 {
                    let url = pick(&mut rng);
                    match call(client, Method::GET, &url, log.cookie.as_deref()).await {
                        Answer::Ok { count, node, .. } => {
                            log.reads_ok += 1;
                            if count < log.max_acked {
                                log.violations.push(format!(
                                    "session {index}: read via {node} saw {count} after an \
                                     acknowledged {} (stale read)",
                                    log.max_acked
                                ));
                            }
                        }
                        Answer::Odd(what) => log
                            .violations
                            .push(format!("session {index}: read answered {what}")),
                        _ => log.reads_failed += 1,
                    }
                }
            }
            Answer::Refused => log.refused += 1,
            Answer::Unknown => log.unknown += 1,
            Answer::Odd(what) => {
                log.unknown += 1;
                log.violations
                    .push(format!("session {index}: increment answered {what}"));
            }
        }
        let (lo, hi) = spec.think_ms;
        tokio::time::sleep(Duration::from_millis(lo + rng.below(hi - lo + 1))).await;
    }
    log
}

/// Everything the load saw.
pub struct LoadReport {
    /// Per session.
    pub sessions: Vec<SessionLog>,
    /// When the load started.
    pub started: Instant,
    /// When it was told to stop.
    pub ended: Instant,
}

impl LoadReport {
    /// Acknowledged increments in all.
    pub fn acked(&self) -> u64 {
        self.sessions.iter().map(|s| s.acked).sum()
    }

    /// Requests with unknown outcome in all.
    pub fn unknown(&self) -> u64 {
        self.sessions.iter().map(|s| s.unknown).sum()
    }

    /// Refused requests in all.
    pub fn refused(&self) -> u64 {
        self.sessions.iter().map(|s| s.refused).sum()
    }

    /// Successful token-carrying reads in all.
    pub fn reads_ok(&self) -> u64 {
        self.sessions.iter().map(|s| s.reads_ok).sum()
    }

    /// Failed reads in all.
    pub fn reads_failed(&self) -> u64 {
        self.sessions.iter().map(|s| s.reads_failed).sum()
    }

    /// Acknowledged increments whose answer arrived in `from..to`.
    pub fn acked_between(&self, from: Instant, to: Instant) -> usize {
        self.sessions
            .iter()
            .flat_map(|s| &s.ack_times)
            .filter(|t| **t >= from && **t < to)
            .count()
    }

    /// Longest stretch of the load with no acknowledged write, and when it
    /// started (seconds after the load started).
    pub fn longest_no_write(&self) -> (Duration, f64) {
        let mut times: Vec<Instant> = self
            .sessions
            .iter()
            .flat_map(|s| s.ack_times.iter().copied())
            .collect();
        times.sort();
        let mut longest = (Duration::ZERO, 0.0);
        let mut last = self.started;
        for t in times.into_iter().chain(std::iter::once(self.ended)) {
            let gap = t.saturating_duration_since(last);
            if gap > longest.0 {
                longest = (gap, (last - self.started).as_secs_f64());
            }
            last = last.max(t);
        }
        longest
    }

    /// Every violation any client saw.
    pub fn violations(&self) -> Vec<String> {
        self.sessions
            .iter()
            .flat_map(|s| s.violations.iter().cloned())
            .collect()
    }
}

/// Reads every session back through the nodes of a healthy cluster and
/// checks it holds every acknowledged increment and no more increments than
/// its client sent. Returns the problems found (empty: all good).
pub async fn read_back(cluster: &ChaosCluster, report: &LoadReport) -> Vec<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let urls = cluster.urls();
    let deadline = Instant::now() + PATIENCE;
    let mut problems = Vec::new();
    for session in &report.sessions {
        let Some(cookie) = session.cookie.as_deref() else {
            // Never acknowledged: nothing was promised.
            continue;
        };
        let mut attempt = session.index;
        let count = loop {
            let url = &urls[attempt % urls.len()];
            attempt += 1;
            match call(&client, Method::GET, url, Some(cookie)).await {
                Answer::Ok { count, .. } => break Some(count),
                _ if Instant::now() >= deadline => break None,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let index = session.index;
        match count {
            None => problems.push(format!("session {index}: could not be read back")),
            Some(count) if count < session.max_acked => problems.push(format!(
                "session {index}: reads {count}, but {} was acknowledged (lost write)",
                session.max_acked
            )),
            Some(count) if count > session.acked + session.unknown => problems.push(format!(
                "session {index}: reads {count}, more than {} acknowledged + {} unknown",
                session.acked, session.unknown
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Asserts no violation and no read-back problem; prints what was found.
pub fn assert_clean(what: &str, mut problems: Vec<String>, cluster: &ChaosCluster) {
    if problems.is_empty() {
        return;
    }
    let total = problems.len();
    problems.truncate(20);
    panic!(
        "{what}: {total} problems, first {}:\n{}\nfaults:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        cluster.events.join("\n"),
        cluster.logs()
    );
}
