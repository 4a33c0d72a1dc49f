//! Micro-benchmark of the durable Raft log alone ([`LogStore::open`] in a
//! temp dir, no cluster): appends per second, disk bytes written per entry
//! and CPU per entry, for a 72-byte encoded entry (the size of the demo's
//! counter write, see docs/scaling.md).
//!
//! Three ways of appending, as openraft's RaftCore would:
//!
//! - `1 appender`: one entry per `append`, and the next append only once the
//!   flush callback of the previous one fired (one client writing in a loop);
//! - `64 in flight`: one entry per `append`, successive appends without
//!   waiting for the callback, at most 64 callbacks outstanding (RaftCore does
//!   not wait for a flush before it appends the next client write);
//! - `64 per call`: 64 entries per `append`, waiting for each callback (64
//!   client writes that RaftCore batched into one append).
//!
//! Disk bytes are the process's `write_bytes` from `/proc/self/io` (bytes it
//! made the kernel write to storage, counted per dirtied 4 KiB page), CPU is
//! user + system time from `/proc/self/stat`, both over the measured phase.
//! Environment: `LOG_BENCH_SECS` (default 3) seconds per phase,
//! `LOG_BENCH_DIR` parent of the temp dir (default: the system temp dir).
//!
//! `cargo bench -p session-raft --bench log`

use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt as _;
use openraft::EntryPayload;
use session_core::{ChangeSet, SessionId};
use session_raft::internals::types::{Entry, TypeConfig};
use session_raft::internals::{Command, LogStore};

/// Encoded size the benchmark entry is padded to.
const ENTRY_BYTES: usize = 72;

/// An `Apply` entry at `index` whose bincode encoding is `ENTRY_BYTES` long
/// (or as close as a value length gets it).
fn entry(id: SessionId, index: u64, value_len: usize) -> Entry {
    let mut changes = ChangeSet::default();
    changes.set("counter".into(), vec![b'7'; value_len]);
    Entry {
        log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
        payload: EntryPayload::Normal(std::sync::Arc::new(Command::Apply {
            id,
            changes,
            now: 1_790_000_000_000,
        })),
    }
}

fn encoded_len(entry: &Entry) -> usize {
    bincode::serde::encode_to_vec(entry, bincode::config::standard())
        .expect("encodes")
        .len()
}

/// The value length that makes the entry `ENTRY_BYTES` long when encoded.
fn value_len_for(id: SessionId) -> usize {
    (0..ENTRY_BYTES)
        .min_by_key(|len| encoded_len(&entry(id, 1_000, *len)).abs_diff(ENTRY_BYTES))
        .unwrap_or(0)
}

/// `write_bytes` of this process so far.
fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process so far (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

#[derive(Clone, Copy)]
enum Mode {
    One,
    InFlight(usize),
    PerCall(usize),
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::One => "1 appender".into(),
            Mode::InFlight(n) => format!("{n} in flight"),
            Mode::PerCall(n) => format!("{n} per call"),
        }
    }
}

/// A callback and the receiver that hears when it fired.
fn callback() -> (
    IOFlushed<TypeConfig>,
    tokio::sync::oneshot::Receiver<std::io::Result<()>>,
) {
    let (tx, rx) = TypeConfig::oneshot();
    (IOFlushed::signal(tx), rx)
}

struct Outcome {
    entries: u64,
    elapsed: Duration,
    disk_bytes: u64,
    cpu: Duration,
}

async fn run_phase(log: &mut LogStore, next: &mut u64, mode: Mode, secs: Duration) -> Outcome {
    let id = SessionId::generate(None).expect("random id");
    let value_len = value_len_for(id);
    let (bytes0, cpu0, start) = (write_bytes(), cpu_time(), Instant::now());
    let mut appended = 0u64;
    let mut outstanding = std::collections::VecDeque::new();
    while start.elapsed() < secs {
        let batch = match mode {
            Mode::One | Mode::InFlight(_) => 1,
            Mode::PerCall(n) => n,
        };
        let entries: Vec<Entry> = (0..batch as u64)
            .map(|i| entry(id, *next + i, value_len))
            .collect();
        *next += batch as u64;
        appended += batch as u64;
        let (cb, rx) = callback();
        log.append(entries, cb).await.expect("append");
        outstanding.push_back(rx);
        let limit = match mode {
            Mode::InFlight(n) => n,
            Mode::One | Mode::PerCall(_) => 1,
        };
        while outstanding.len() >= limit {
            let rx = outstanding.pop_front().expect("outstanding");
            rx.await.expect("callback fired").expect("flushed");
        }
    }
    for rx in outstanding {
        rx.await.expect("callback fired").expect("flushed");
    }
    Outcome {
        entries: appended,
        elapsed: start.elapsed(),
        disk_bytes: write_bytes() - bytes0,
        cpu: cpu_time() - cpu0,
    }
}

async fn run(secs: Duration) {
    let parent = std::env::var_os("LOG_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &parent {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let mut log = LogStore::open(&dir.path().join("log")).expect("open log");
    let id = SessionId::generate(None).expect("random id");
    let size = encoded_len(&entry(id, 1_000, value_len_for(id)));
    println!("Durable log, {size}-byte encoded entries, {secs:?} per phase\n");
    println!("| appending | appends/s (entries/s) | disk bytes/entry | CPU µs/entry |");
    println!("|---|---:|---:|---:|");
    let mut next = 1;
    for mode in [Mode::One, Mode::InFlight(64), Mode::PerCall(64)] {
        let out = run_phase(&mut log, &mut next, mode, secs).await;
        let n = out.entries.max(1) as f64;
        println!(
            "| {} | {:.0} | {:.0} | {:.1} |",
            mode.name(),
            out.entries as f64 / out.elapsed.as_secs_f64(),
            out.disk_bytes as f64 / n,
            out.cpu.as_secs_f64() * 1e6 / n,
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not:
    // then only a short smoke run.
    let secs = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs_f64(
            std::env::var("LOG_BENCH_SECS")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(3.0),
        )
    } else {
        Duration::from_millis(50)
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(secs));
}
