//! Load run of [`session_raft::RaftStore`] on a three-node cluster in one
//! process (127.0.0.1, ephemeral ports): committed writes per second with
//! p50/p99 latency at 1, 16 and 64 concurrent writers, through the leader's
//! store and through a follower's (forwarded), then local session reads per
//! second on a follower against a plain [`session_core::MemoryStore`].
//!
//! Not a criterion benchmark: every phase runs for a fixed time and the run
//! prints Markdown tables. Environment:
//!
//! - `BENCH_SECS` (default 5): seconds per measured phase;
//! - `BENCH_WARMUP_MS` (default 500): unmeasured warm-up before each phase;
//! - `BENCH_STORAGE` (default `durable,ephemeral`): which clusters to run;
//!   `durable` keeps each node's log (write-ahead log, one fdatasync per
//!   write batch) and state in a temp dir, `ephemeral` keeps everything in
//!   memory;
//! - `BENCH_SESSIONS` (default 1000): sessions created before writing;
//! - `BENCH_READERS` (default 4): concurrent reader tasks;
//! - `BENCH_DIR`: parent of the temp dirs (default: the system temp dir);
//! - `BENCH_WRITERS` (default `1,16,64`): writer counts measured;
//! - `BENCH_VIA` (default `leader,follower`): whose store the writers use;
//! - `BENCH_READS` (default 1): 0 skips the read phases (to profile writes).
//!
//! `cargo bench -p session-raft --bench store`

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::store::testing::live_session;
use session_core::{
    ChangeSet, Clock, ConsistencyToken, MemoryStore, NewSession, SessionId, SessionStore,
    StoreError,
};
use session_raft::{NodeConfig, RaftNode, RaftStore};

/// The allocator demo-app runs on, so that these figures and the demo's
/// describe the same process (glibc's malloc was about a quarter of this
/// bench's CPU samples, much of it frees on another thread than the
/// allocation's).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cluster secret of the benchmark cluster.
const SECRET: &[u8] = b"store-bench-secret";
/// Session key written by every change set (as the demo's counter does).
const COUNTER_KEY: &str = "counter";
/// Writer counts measured unless `BENCH_WRITERS` says otherwise.
const WRITERS: [usize; 3] = [1, 16, 64];

/// Run parameters, from the environment.
struct Params {
    /// Length of one measured phase.
    secs: Duration,
    /// Unmeasured warm-up before each phase.
    warmup: Duration,
    /// Storage kinds to run.
    storages: Vec<Storage>,
    /// Sessions created up front.
    sessions: usize,
    /// Concurrent reader tasks.
    readers: usize,
    /// Writer counts measured.
    writers: Vec<usize>,
    /// Whose store the writers use: "leader", "follower".
    via: Vec<String>,
    /// Whether the read phases run.
    reads: bool,
}

/// Where the nodes keep their log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// Write-ahead log with fdatasync, in a temp dir.
    Durable,
    /// In memory.
    Ephemeral,
}

impl Storage {
    fn name(self) -> &'static str {
        match self {
            Storage::Durable => "durable",
            Storage::Ephemeral => "ephemeral",
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Params {
    fn from_env() -> Params {
        let storages = std::env::var("BENCH_STORAGE")
            .unwrap_or_else(|_| "durable,ephemeral".into())
            .split(',')
            .filter_map(|s| match s.trim() {
                "durable" => Some(Storage::Durable),
                "ephemeral" => Some(Storage::Ephemeral),
                "" => None,
                other => panic!("unknown BENCH_STORAGE entry {other:?}"),
            })
            .collect();
        Params {
            secs: Duration::from_secs_f64(env_or("BENCH_SECS", 5.0)),
            warmup: Duration::from_millis(env_or("BENCH_WARMUP_MS", 500)),
            storages,
            sessions: env_or("BENCH_SESSIONS", 1000usize).max(64),
            readers: env_or("BENCH_READERS", 4usize).max(1),
            writers: list_env("BENCH_WRITERS")
                .map(|l| l.iter().filter_map(|w| w.parse().ok()).collect())
                .unwrap_or_else(|| WRITERS.to_vec()),
            via: list_env("BENCH_VIA").unwrap_or_else(|| vec!["leader".into(), "follower".into()]),
            reads: env_or("BENCH_READS", 1u8) != 0,
        }
    }
}

/// A comma-separated list from the environment, if set.
fn list_env(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Latency samples (nanoseconds) and failures of one phase.
#[derive(Default)]
struct Samples {
    /// One entry per successful operation.
    nanos: Vec<u64>,
    /// Failed operations by error kind.
    failures: BTreeMap<String, u64>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.nanos.extend(other.nanos);
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
    }

    fn fail(&mut self, error: &StoreError) {
        let kind = format!("{error:?}");
        let kind = kind.split(['(', ' ', '{']).next().unwrap_or("?").to_owned();
        *self.failures.entry(kind).or_default() += 1;
    }

    /// Sorts the samples and returns (ops/s, p50, p99, max) with latencies in ns.
    fn summary(&mut self, elapsed: Duration) -> (f64, u64, u64, u64) {
        self.nanos.sort_unstable();
        let pct = |p: f64| -> u64 {
            if self.nanos.is_empty() {
                return 0;
            }
            let rank = ((p / 100.0) * self.nanos.len() as f64).ceil() as usize;
            self.nanos[rank.clamp(1, self.nanos.len()) - 1]
        };
        let rate = self.nanos.len() as f64 / elapsed.as_secs_f64();
        (
            rate,
            pct(50.0),
            pct(99.0),
            self.nanos.last().copied().unwrap_or(0),
        )
    }

    fn failures_text(&self) -> String {
        if self.failures.is_empty() {
            return "0".into();
        }
        self.failures
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn now() -> u64 {
    Clock::system().now()
}

/// A session live for an hour with the counter at 0.
fn counter_session() -> NewSession {
    let counter = serde_json::to_vec(&0u64).unwrap();
    let user = serde_json::to_vec("bench-user").unwrap();
    live_session(&[(COUNTER_KEY, &counter), ("user", &user)])
}

/// A change set setting the counter, as the demo's increment does.
fn increment(value: u64) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set(COUNTER_KEY.into(), serde_json::to_vec(&value).unwrap());
    changes
}

/// Three nodes on 127.0.0.1 and their temp dir.
struct Cluster {
    nodes: Vec<RaftNode>,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    async fn start(storage: Storage) -> Cluster {
        // Pick three free ports, release them, and hand them to the nodes so
        // that every node knows all addresses before any starts.
        let ports: Vec<u16> = {
            let probes: Vec<TcpListener> = (0..3)
                .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
                .collect();
            probes
                .iter()
                .map(|l| l.local_addr().unwrap().port())
                .collect()
        };
        let peers: BTreeMap<u64, String> = (1..=3u64)
            .zip(&ports)
            .map(|(id, port)| (id, format!("127.0.0.1:{port}")))
            .collect();
        let dir = (storage == Storage::Durable).then(|| match std::env::var_os("BENCH_DIR") {
            Some(parent) => tempfile::tempdir_in(parent).unwrap(),
            None => tempfile::tempdir().unwrap(),
        });
        let mut nodes = Vec::new();
        for (id, port) in (1..=3u64).zip(&ports) {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
            let mut config = NodeConfig::new(id, addr)
                .with_peers(peers.clone())
                .with_secret(SECRET)
                .with_ephemeral_cluster(dir.is_none());
            if let Some(dir) = &dir {
                config = config.with_data_dir(dir.path().join(format!("node-{id}")));
            }
            nodes.push(RaftNode::start(config).await.expect("node starts"));
        }
        Cluster { nodes, _dir: dir }
    }

    /// Waits until all three agree on a leader; returns (leader, a follower).
    async fn roles(&self) -> (usize, usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<Option<u64>> =
                self.nodes.iter().map(|n| n.status().leader_id).collect();
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*leader)) {
                    let li = self
                        .nodes
                        .iter()
                        .position(|n| n.node_id() == *leader)
                        .unwrap();
                    return (li, (li + 1) % self.nodes.len());
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader in 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn term(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.status().term)
            .max()
            .unwrap_or(0)
    }

    async fn shutdown(self) {
        for node in self.nodes {
            let _ = node.shutdown_abruptly().await;
        }
    }
}

/// Runs `writers` tasks applying increments to their own sessions through
/// `store` for `length`, each write timed.
async fn write_phase(
    store: &RaftStore,
    ids: &Arc<Vec<SessionId>>,
    writers: usize,
    length: Duration,
    counter_base: u64,
) -> (Samples, Duration) {
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<SessionId> = ids.iter().skip(w).step_by(writers).copied().collect();
            let mut samples = Samples::default();
            samples.nanos.reserve(8192);
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                let id = &mine[(n as usize) % mine.len()];
                n += 1;
                let changes = increment(counter_base + n);
                let t = Instant::now();
                match store.apply(id, changes, now()).await {
                    Ok(_) => samples.nanos.push(t.elapsed().as_nanos() as u64),
                    Err(e) => samples.fail(&e),
                }
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        all.merge(task.await.expect("writer task"));
    }
    (all, start.elapsed())
}

/// Runs `readers` tasks loading sessions from `store` for `length`.
async fn read_phase<S: SessionStore + Clone>(
    store: &S,
    ids: &Arc<Vec<SessionId>>,
    token: ConsistencyToken,
    readers: usize,
    length: Duration,
) -> (Samples, Duration) {
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::new();
    for r in 0..readers {
        let store = store.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            samples.nanos.reserve(1 << 20);
            let mut i = r * 7919;
            let now = now();
            let mut misses = 0u64;
            loop {
                // Check the clock only every 64 reads; time each read anyway.
                for _ in 0..64 {
                    let id = &ids[i % ids.len()];
                    i += 1;
                    let t = Instant::now();
                    match store.load(id, token, now).await {
                        Ok(Some(_)) => samples.nanos.push(t.elapsed().as_nanos() as u64),
                        Ok(None) => misses += 1,
                        Err(e) => samples.fail(&e),
                    }
                }
                if Instant::now() >= deadline {
                    break;
                }
                // Let the cluster's own tasks (heartbeats) run between bursts.
                tokio::task::yield_now().await;
            }
            if misses > 0 {
                *samples.failures.entry("missing".into()).or_default() += misses;
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        all.merge(task.await.expect("reader task"));
    }
    (all, start.elapsed())
}

/// Times small write + fsync pairs in the directory the durable cluster uses,
/// to tell how much of a durable write's latency the disk alone explains.
/// Measures this disk's fdatasync rate with one file, and with three files
/// flushed at once as the three nodes' logs are, and prints the bound that
/// puts on durable writes: a write is acknowledged only after a flush of
/// the leader's log that began after it was appended, and `w` closed-loop
/// writers never have more than `w` writes in one flush, so writes/s can
/// not pass `w` times the flushes per second one log gets (printed for each
/// of `writers`).
fn fsync_probe(writers: &[usize]) {
    let dir = match std::env::var_os("BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let mut per_log = 0.0;
    for files in [1usize, 3] {
        let flushers: Vec<_> = (0..files)
            .map(|i| {
                let path = dir.path().join(format!("probe-{i}"));
                std::thread::spawn(move || flush_loop(&path))
            })
            .collect();
        let mut samples = Samples::default();
        let mut elapsed = Duration::ZERO;
        for flusher in flushers {
            let (one, took) = flusher.join().unwrap();
            samples.merge(one);
            elapsed = elapsed.max(took);
        }
        let (rate, p50, p99, max) = samples.summary(elapsed);
        per_log = rate / files as f64;
        println!(
            "fsync probe ({}), {files} file(s) at once: 4 KiB append + fdatasync: \
             {per_log:.0}/s per file, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            dir.path().display(),
            ms(p50),
            ms(p99),
            ms(max),
        );
    }
    let bound: Vec<String> = writers
        .iter()
        .map(|w| format!("{w} writers <= {:.0}/s", per_log * *w as f64))
        .collect();
    println!(
        "disk bound on durable writes (flushes per log with three at once x writers): {}",
        bound.join(", ")
    );
}

/// 300 appends of 4 KiB to a new file at `path`, each followed by
/// fdatasync: the latencies and the time they took.
fn flush_loop(path: &std::path::Path) -> (Samples, Duration) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = [7u8; 4096];
    let mut samples = Samples::default();
    let start = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        samples.nanos.push(t.elapsed().as_nanos() as u64);
    }
    (samples, start.elapsed())
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn us(nanos: u64) -> f64 {
    nanos as f64 / 1e3
}

/// Creates `count` sessions through `store`, 32 at a time.
async fn create_sessions(store: &RaftStore, count: usize) -> Vec<SessionId> {
    let ids: Vec<SessionId> = (0..count)
        .map(|_| SessionId::generate(None).unwrap())
        .collect();
    for chunk in ids.chunks(32) {
        let creates = chunk.iter().map(|id| {
            let store = store.clone();
            let id = *id;
            async move { store.create(&id, counter_session()).await }
        });
        for result in futures::future::join_all(creates).await {
            result.expect("create session");
        }
    }
    ids
}

/// One measured read phase, printed after all clusters ran.
struct ReadRow {
    /// Storage of the cluster read from.
    storage: Storage,
    /// Which token the reads carried.
    token: &'static str,
    /// Reads per second.
    rate: f64,
    /// The table row.
    line: String,
}

async fn run_storage(storage: Storage, params: &Params, read_rows: &mut Vec<ReadRow>) {
    let setup = Instant::now();
    let cluster = Cluster::start(storage).await;
    let (leader, follower) = cluster.roles().await;
    let leader_store = cluster.nodes[leader].store();
    let follower_store = cluster.nodes[follower].store();
    let ids = Arc::new(create_sessions(&leader_store, params.sessions).await);
    eprintln!(
        "# {}: cluster up, {} sessions created in {:.1} s (leader node {}, follower node {})",
        storage.name(),
        ids.len(),
        setup.elapsed().as_secs_f64(),
        cluster.nodes[leader].node_id(),
        cluster.nodes[follower].node_id(),
    );

    println!();
    println!(
        "### Writes, {} storage ({} s per row, {} sessions)",
        storage.name(),
        params.secs.as_secs_f64(),
        ids.len()
    );
    println!();
    println!("| storage | via | writers | writes/s | p50 ms | p99 ms | max ms | failures |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    let mut base = 1_000_000u64;
    for (via, store) in [("leader", &leader_store), ("follower", &follower_store)] {
        if !params.via.iter().any(|v| v == via) {
            continue;
        }
        for &writers in &params.writers {
            let term_before = cluster.term();
            if !params.warmup.is_zero() {
                let _ = write_phase(store, &ids, writers, params.warmup, base).await;
                base += 1_000_000;
            }
            let (mut samples, elapsed) = write_phase(store, &ids, writers, params.secs, base).await;
            base += 1_000_000;
            let (rate, p50, p99, max) = samples.summary(elapsed);
            let mut failures = samples.failures_text();
            let term_after = cluster.term();
            if term_after != term_before {
                failures.push_str(&format!(" (term {term_before}→{term_after})"));
            }
            println!(
                "| {} | {via} | {writers} | {rate:.0} | {:.2} | {:.2} | {:.2} | {failures} |",
                storage.name(),
                ms(p50),
                ms(p99),
                ms(max),
            );
        }
    }

    if !params.reads {
        cluster.shutdown().await;
        return;
    }
    // Reads on a follower: with no token, and with the token of a write this
    // follower has already applied (both served locally, no network).
    let token = leader_store
        .apply(&ids[0], increment(1), now())
        .await
        .expect("write for token")
        .token;
    let deadline = Instant::now() + Duration::from_secs(5);
    while follower_store.applied_index() < token.index && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (label, token) in [("none", ConsistencyToken::NONE), ("applied", token)] {
        let _ = read_phase(&follower_store, &ids, token, params.readers, params.warmup).await;
        let (mut samples, elapsed) =
            read_phase(&follower_store, &ids, token, params.readers, params.secs).await;
        let (rate, p50, p99, max) = samples.summary(elapsed);
        read_rows.push(ReadRow {
            storage,
            token: label,
            rate,
            line: format!(
            "| RaftStore follower ({}) | {label} | {} | {rate:.0} | {:.2} | {:.2} | {:.1} | {} |",
            storage.name(),
            params.readers,
            us(p50),
            us(p99),
            us(max),
            samples.failures_text(),
        ),
        });
    }
    cluster.shutdown().await;
}

async fn run(params: Params) {
    println!(
        "session-raft store bench: 3 nodes on 127.0.0.1 in one process, {} tokio workers, \
         {} s per phase, {} ms warm-up, {} sessions, {} readers",
        tokio::runtime::Handle::current().metrics().num_workers(),
        params.secs.as_secs_f64(),
        params.warmup.as_millis(),
        params.sessions,
        params.readers,
    );
    let mut read_rows = Vec::new();
    for storage in &params.storages {
        run_storage(*storage, &params, &mut read_rows).await;
    }
    if !params.reads {
        return;
    }

    // Baseline: the same reads on a MemoryStore holding the same kind of data.
    let memory = Arc::new(MemoryStore::default());
    let ids: Vec<SessionId> = (0..params.sessions)
        .map(|_| SessionId::generate(None).unwrap())
        .collect();
    for id in &ids {
        memory.create(id, counter_session()).await.unwrap();
    }
    let ids = Arc::new(ids);
    let _ = read_phase(
        &memory,
        &ids,
        ConsistencyToken::NONE,
        params.readers,
        params.warmup,
    )
    .await;
    let (mut samples, elapsed) = read_phase(
        &memory,
        &ids,
        ConsistencyToken::NONE,
        params.readers,
        params.secs,
    )
    .await;
    let (memory_rate, p50, p99, max) = samples.summary(elapsed);

    println!();
    println!("### Local reads ({} s per row)", params.secs.as_secs_f64());
    println!();
    println!("| store | token | readers | reads/s | p50 µs | p99 µs | max µs | failures |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for row in &read_rows {
        println!("{}", row.line);
    }
    println!(
        "| MemoryStore (baseline) | none | {} | {memory_rate:.0} | {:.2} | {:.2} | {:.1} | {} |",
        params.readers,
        us(p50),
        us(p99),
        us(max),
        samples.failures_text(),
    );
    println!();
    for row in &read_rows {
        println!(
            "- RaftStore follower reads ({}, token {}) / MemoryStore reads = {:.2}",
            row.storage.name(),
            row.token,
            row.rate / memory_rate
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openraft=error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let mut params = Params::from_env();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not:
    // then only a short in-memory smoke run.
    if !std::env::args().any(|a| a == "--bench") {
        params = Params {
            secs: Duration::from_millis(200),
            warmup: Duration::ZERO,
            storages: vec![Storage::Ephemeral],
            sessions: 64,
            readers: 2,
            ..params
        };
    }
    if params.storages.contains(&Storage::Durable) {
        fsync_probe(&params.writers);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(params));
}
