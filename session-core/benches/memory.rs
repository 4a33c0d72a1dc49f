//! Resident memory per stored session, for the shapes of session an app
//! keeps: the demo's counter (one key, the JSON value `1`), one key with a
//! 100 byte value, and five small keys.
//!
//! Each case fills a fresh [`SessionMap`], or a fresh [`MemoryStore`]
//! through its [`SessionStore`] API, with [`N`] sessions and prints the
//! growth of the resident set (`VmRSS` of `/proc/self/status`) divided by
//! `N`: what a session costs in real memory, allocator rounding and hash
//! table slack included. Then it drops everything and prints what is still
//! resident per session, a sanity check (the allocator keeps most freed
//! memory, so this is not zero, but it must not exceed the fill).
//!
//! Every case runs in a child process of its own: memory freed by one case
//! and kept by the allocator would otherwise be reused by the next, which
//! would then look nearly free.
//!
//! Run: `cargo bench -p session-core --bench memory` (Linux only).

use std::process::Command;

use session_core::store::SessionMap;
use session_core::{ConsistencyToken, SessionStore};
use session_core::{MemoryStore, MemoryStoreConfig, NewSession, SessionData, SessionId};

/// Sessions per case.
const N: usize = 200_000;
/// Shards, as `MemoryStoreConfig::default()` has them.
const SHARDS: usize = 64;
/// Argument that makes the process run one case instead of all of them.
const CHILD: &str = "--memory-case";

/// What one session holds.
#[derive(Clone, Copy)]
enum Shape {
    /// `count = 1`, as the demo's counter page stores it.
    Counter,
    /// One key whose value is 100 bytes of JSON.
    Value100,
    /// Five small keys: what a logged-in session with a cart might hold.
    FiveKeys,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::Counter, Shape::Value100, Shape::FiveKeys];

    fn name(self) -> &'static str {
        match self {
            Shape::Counter => "count=1",
            Shape::Value100 => "1 key, 100 B value",
            Shape::FiveKeys => "5 keys",
        }
    }

    fn pairs(self) -> Vec<(String, Vec<u8>)> {
        let pair = |k: &str, v: &[u8]| (k.to_owned(), v.to_vec());
        match self {
            Shape::Counter => vec![pair("count", b"1")],
            Shape::Value100 => {
                // A JSON string of 100 bytes, quotes included.
                let value = format!("\"{}\"", "x".repeat(98));
                vec![pair("count", value.as_bytes())]
            }
            Shape::FiveKeys => vec![
                pair("cart", b"[17,42]"),
                pair("count", b"12"),
                pair("csrf", b"\"k3Jd9sQxLm2pWz8a\""),
                pair("theme", b"\"dark\""),
                pair("user", b"1234567"),
            ],
        }
    }

    fn data(self) -> SessionData {
        self.pairs().into_iter().collect()
    }
}

/// Where the sessions go.
#[derive(Clone, Copy)]
enum Target {
    /// `SessionMap::create`, what the Raft state machine calls.
    Map,
    /// `MemoryStore`'s `SessionStore::create`.
    Store,
}

impl Target {
    const ALL: [Target; 2] = [Target::Map, Target::Store];

    fn name(self) -> &'static str {
        match self {
            Target::Map => "SessionMap",
            Target::Store => "MemoryStore",
        }
    }
}

/// Resident set size of this process in bytes.
fn resident() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<usize>().ok())
        .expect("a VmRSS line in kB")
        * 1024
}

fn new_session(shape: Shape) -> NewSession {
    NewSession {
        data: shape.data(),
        created_at: 1_000,
        expires_at: u64::MAX,
        size_limit: 0,
    }
}

fn id() -> SessionId {
    SessionId::generate(None).expect("OS random numbers")
}

/// Runs one case; returns resident bytes per session when full and after
/// everything was dropped, both against the resident size before.
fn run_case(shape: Shape, target: Target) -> (f64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let per_session = |bytes: usize, before: usize| bytes.saturating_sub(before) as f64 / N as f64;
    match target {
        Target::Map => {
            let map = SessionMap::new(SHARDS);
            let before = resident();
            for version in 1..=N as u64 {
                map.create(id(), new_session(shape), None, || version)
                    .expect("a fresh id");
            }
            assert_eq!(map.len(), N);
            let full = resident();
            drop(map);
            (per_session(full, before), per_session(resident(), before))
        }
        Target::Store => runtime.block_on(async {
            let store = MemoryStore::new(MemoryStoreConfig {
                shards: SHARDS,
                purge_interval: None,
                ..MemoryStoreConfig::default()
            });
            let before = resident();
            let mut last = id();
            for _ in 0..N {
                last = id();
                store
                    .create(&last, new_session(shape))
                    .await
                    .expect("a fresh id");
            }
            assert_eq!(store.len(), N);
            // Served through the API like any other: the records are there.
            let loaded = store.load(&last, ConsistencyToken::NONE, 1_000).await;
            assert!(loaded.expect("a load").is_some());
            let full = resident();
            drop(store);
            (per_session(full, before), per_session(resident(), before))
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD) {
        let shape = Shape::ALL[args[at + 1].parse::<usize>().expect("a shape")];
        let target = Target::ALL[args[at + 2].parse::<usize>().expect("a target")];
        let (full, dropped) = run_case(shape, target);
        println!("{full:.0} {dropped:.0}");
        return;
    }
    // `cargo test --benches` runs this too: measure only under `cargo bench`.
    if !args.iter().any(|a| a == "--bench") {
        println!("memory: run with `cargo bench -p session-core --bench memory`");
        return;
    }
    let me = std::env::current_exe().expect("the bench's own path");
    println!("resident bytes per session, {N} sessions, {SHARDS} shards");
    // What the figures are made of: one hash table slot per session (id
    // and `Arc`, plus a control byte, at the table's load), the `Arc`'s
    // allocation (two counts and the record), and the data's buffer.
    println!(
        "(map slot {} B, record {} B + 16 B of Arc counts, SessionData {} B + its buffer)",
        std::mem::size_of::<(SessionId, std::sync::Arc<session_core::SessionRecord>)>(),
        std::mem::size_of::<session_core::SessionRecord>(),
        std::mem::size_of::<SessionData>(),
    );
    println!(
        "{:<12} {:<20} {:>10} {:>14}",
        "target", "session", "full", "after drop"
    );
    for (t, target) in Target::ALL.iter().enumerate() {
        for (s, shape) in Shape::ALL.iter().enumerate() {
            let output = Command::new(&me)
                .args([CHILD, &s.to_string(), &t.to_string()])
                .output()
                .expect("the child case runs");
            assert!(
                output.status.success(),
                "case failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let text = String::from_utf8_lossy(&output.stdout);
            let mut numbers = text.split_whitespace();
            let (full, dropped) = (numbers.next().unwrap_or("?"), numbers.next().unwrap_or("?"));
            println!(
                "{:<12} {:<20} {:>10} {:>14}",
                target.name(),
                shape.name(),
                full,
                dropped
            );
        }
    }
}
