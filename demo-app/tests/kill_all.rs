//! Whole-cluster crash: three `demo-app node` processes with durable data
//! directories serve many sessions incrementing their counters; all three
//! are SIGKILLed at once mid-load and restarted from their data directories.
//!
//! It proves that an acknowledged increment was on disk (vote and log in
//! redb) on a majority before the client heard of it: after the restart every
//! session reads at least its highest acknowledged count, and at most its
//! acknowledged plus unknown-outcome requests; no client ever saw its counter
//! go back, on any node, before or after the crash (the cookie's token, a log
//! index, stays meaningful across the restart); and writes resume.
//!
//! SIGKILL leaves the OS page cache intact, so this checks that writes reach
//! the store before they are acknowledged, not that they are fsynced (which
//! only a power cut would tell).
//!
//! `CHAOS_SESSIONS` (default 200) sizes it.

#[path = "common/chaos_support.rs"]
mod chaos_support;
mod common;
#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::time::{Duration, Instant};

use chaos_support::{assert_clean, env_u64, read_back, ChaosCluster, Load, LoadSpec, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_increments_survive_killing_every_node_at_once() {
    let wall = Instant::now();
    let sessions = env_u64("CHAOS_SESSIONS", 200) as usize;
    let seed = Rng::seed_from_env();
    eprintln!("kill-all: seed {seed}, {sessions} sessions");

    let mut cluster = ChaosCluster::start(3).await;
    let load = Load::start(
        cluster.urls(),
        LoadSpec::new(sessions, Duration::from_secs(90)),
        seed,
    );
    // Every session has written a few times (on average) before the crash.
    load.wait_acked(3 * sessions as u64).await;
    let before = load.acked_so_far();
    cluster.event(format!(
        "SIGKILL all nodes ({before} increments acknowledged)"
    ));
    cluster.kill_all();
    // Pacing: clients meet refused connections for a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.event("restarted all nodes");
    cluster.wait_healthy().await;
    let restarted = Instant::now();
    cluster.event("healthy");
    // Writes resume: at least as many again as there are sessions.
    let resumed = load.acked_so_far();
    load.wait_acked(resumed + sessions as u64).await;
    let report = load.finish().await;
    cluster.event("load stopped");

    cluster.wait_healthy().await;
    let mut problems = report.violations();
    problems.extend(read_back(&cluster, &report).await);
    let (no_write, _) = report.longest_no_write();
    eprintln!(
        "KILL-ALL SUMMARY: sessions={sessions} acked={} (before crash {before}) unknown={} \
         refused={} reads_ok={} longest_no_write={:.2}s problems={} wall={:.1}s seed={seed}",
        report.acked(),
        report.unknown(),
        report.refused(),
        report.reads_ok(),
        no_write.as_secs_f64(),
        problems.len(),
        wall.elapsed().as_secs_f64(),
    );
    assert_clean("kill-all", problems, &cluster);
    assert!(
        report.acked_between(restarted, report.ended) > 0,
        "no increment acknowledged after the restart"
    );
}
