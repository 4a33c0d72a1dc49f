//! Chaos against the real binary: three `demo-app node` processes with
//! durable data directories, their cluster ports behind fault proxies, and
//! many sessions incrementing their own counters through randomly chosen
//! nodes while the cluster suffers, round after round: SIGKILL of the leader
//! and restart, SIGKILL of a follower and restart, SIGSTOP/SIGCONT of a node,
//! and a node cut off from its peers (both ways) and healed.
//!
//! It proves, from the clients' side only:
//! - no acknowledged increment is lost: after the faults, every session reads
//!   at least its highest acknowledged count, and at most its acknowledged
//!   plus unknown-outcome requests (nothing is applied that nobody sent);
//! - no client ever sees its counter go back: each acknowledged increment
//!   answers more than the previous one, and every read carrying the
//!   session's token shows at least the last acknowledged count, on any node;
//! - failures are 503s or lost connections, never another error;
//! - writes resume after every fault (the longest stretch with no
//!   acknowledged write is reported, and bounded generously).
//!
//! Throughput is printed, never asserted. `CHAOS_SECS` (load time, default
//! 40) and `CHAOS_SESSIONS` (default 200) size it; `bench/chaos.sh` runs it
//! long. `CHAOS_SUMMARY_FILE` appends the summary and fault log to a file;
//! `CHAOS_SEED` fixes the random choices (not the timing); `CHAOS_KEEP`
//! keeps node logs and data directories (a failed run always does);
//! `CHAOS_READ_MODE=linearizable|local` runs the nodes in another read mode
//! (`local` may serve stale reads by design, and this test then fails: a
//! check that the checks bite).

#[path = "common/chaos_support.rs"]
mod chaos_support;
mod common;
#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::time::{Duration, Instant};

use chaos_support::{assert_clean, env_u64, read_back, ChaosCluster, Load, LoadSpec, Rng};

/// A healthy stretch before each fault, so every fault starts from a
/// cluster under load, not from the previous fault's recovery.
const SETTLE: Duration = Duration::from_secs(2);
/// How long a killed node stays dead.
const DOWN: Duration = Duration::from_secs(2);
/// How long a node stays SIGSTOPped: well under the clients' request
/// time-out minus the server's own bounds (see `chaos_support`).
const PAUSED: Duration = Duration::from_secs(3);
/// How long a node stays cut off once the others have noticed.
const CUT: Duration = Duration::from_secs(3);
/// About how long one round of faults takes here; another round starts only
/// if it fits in the load time.
const ROUND_ESTIMATE: Duration = Duration::from_secs(25);
/// Load on a healthy cluster after the last fault.
const TAIL: Duration = Duration::from_secs(3);
/// Generous bound on the longest stretch with no acknowledged write.
const MAX_NO_WRITE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_increments_survive_kills_pauses_and_cuts() {
    let wall = Instant::now();
    let secs = env_u64("CHAOS_SECS", 40);
    let sessions = env_u64("CHAOS_SESSIONS", 200) as usize;
    let seed = Rng::seed_from_env();
    let mut rng = Rng::new(seed);
    eprintln!("chaos: seed {seed}, {sessions} sessions, {secs} s of load");

    let mut cluster = ChaosCluster::start(3).await;
    cluster.event("cluster healthy");
    let load_for = Duration::from_secs(secs);
    // The driver stops by itself even if this body hangs: load time plus a
    // round and the longest recovery waits.
    let spec = LoadSpec::new(
        sessions,
        load_for + ROUND_ESTIMATE + Duration::from_secs(120),
    );
    let load = Load::start(cluster.urls(), spec, seed);
    let load_started = Instant::now();

    let mut rounds = 0u32;
    loop {
        fault_round(&mut cluster, &mut rng, rounds).await;
        rounds += 1;
        if load_started.elapsed() + ROUND_ESTIMATE > load_for || rounds >= 1000 {
            break;
        }
    }
    let healed = Instant::now();
    // Pacing, not correctness: keep the load on the healthy cluster until
    // the load time is over (at least TAIL).
    tokio::time::sleep_until((healed + TAIL).max(load_started + load_for).into()).await;
    let report = load.finish().await;
    cluster.event("load stopped");

    cluster.wait_healthy().await;
    let mut problems = report.violations();
    problems.extend(read_back(&cluster, &report).await);
    let (no_write, no_write_at) = report.longest_no_write();
    let load_secs = (report.ended - report.started).as_secs_f64();
    let net = cluster.net.stats();
    let summary = format!(
        "CHAOS SUMMARY: sessions={sessions} load={load_secs:.1}s rounds={rounds} acked={} \
         unknown={} refused={} reads_ok={} reads_failed={} writes/s={:.0} \
         longest_no_write={:.2}s (from +{no_write_at:.1}s) proxy_refused={} proxy_severed={} \
         proxy_unidentified={} proxy_scans={} slowest_scan={:?} problems={} wall={:.1}s \
         seed={seed}",
        report.acked(),
        report.unknown(),
        report.refused(),
        report.reads_ok(),
        report.reads_failed(),
        report.acked() as f64 / load_secs,
        no_write.as_secs_f64(),
        net.refused,
        net.severed,
        net.unidentified,
        net.scans,
        net.slowest_scan,
        problems.len(),
        wall.elapsed().as_secs_f64(),
    );
    eprintln!("{summary}");
    if let Ok(path) = std::env::var("CHAOS_SUMMARY_FILE") {
        let text = format!("{summary}\nfaults:\n{}\n", cluster.events.join("\n"));
        let mut old = std::fs::read_to_string(&path).unwrap_or_default();
        old.push_str(&text);
        std::fs::write(&path, old).expect("write CHAOS_SUMMARY_FILE");
    }

    assert_clean("chaos", problems, &cluster);
    assert!(
        report.acked_between(healed, report.ended) > 0,
        "no increment acknowledged after the last fault healed"
    );
    assert!(
        no_write < MAX_NO_WRITE,
        "no write acknowledged for {no_write:?} (from +{no_write_at:.1}s); faults:\n{}",
        cluster.events.join("\n")
    );
}

/// One round: SIGKILL the leader and restart it; SIGKILL a follower and
/// restart it; SIGSTOP a node and continue it; cut a node off and heal it.
/// Each fault ends with the whole cluster healthy again. The SIGSTOP and cut
/// targets alternate between follower and leader from round to round.
async fn fault_round(cluster: &mut ChaosCluster, rng: &mut Rng, round: u32) {
    let pause = tokio::time::sleep;

    pause(SETTLE).await;
    let leader = cluster.leader().await;
    cluster.event(format!("round {round}: SIGKILL leader {leader}"));
    cluster.kill(leader);
    pause(DOWN).await;
    cluster.spawn(leader);
    cluster.event(format!("round {round}: restarted {leader}"));
    cluster.wait_healthy().await;
    cluster.event(format!("round {round}: healthy"));

    pause(SETTLE).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower(leader, rng);
    cluster.event(format!("round {round}: SIGKILL follower {follower}"));
    cluster.kill(follower);
    pause(DOWN).await;
    cluster.spawn(follower);
    cluster.event(format!("round {round}: restarted {follower}"));
    cluster.wait_healthy().await;
    cluster.event(format!("round {round}: healthy"));

    pause(SETTLE).await;
    let leader = cluster.leader().await;
    let target = if round % 2 == 0 {
        cluster.follower(leader, rng)
    } else {
        leader
    };
    let role = if target == leader {
        "leader"
    } else {
        "follower"
    };
    cluster.event(format!("round {round}: SIGSTOP {role} {target}"));
    cluster.stop(target);
    pause(PAUSED).await;
    cluster.cont(target);
    cluster.event(format!("round {round}: SIGCONT {target}"));
    cluster.wait_healthy().await;
    cluster.event(format!("round {round}: healthy"));

    pause(SETTLE).await;
    let leader = cluster.leader().await;
    let target = if round % 2 == 0 {
        leader
    } else {
        cluster.follower(leader, rng)
    };
    let role = if target == leader {
        "leader"
    } else {
        "follower"
    };
    cluster.event(format!("round {round}: cut off {role} {target}"));
    cluster.net.isolate(target);
    cut_took_effect(cluster, target, leader).await;
    pause(CUT).await;
    // Still cut off at the end: it must not have heard of what the others
    // committed meanwhile (the proxy really blocks both ways).
    let inside = committed(cluster, target).await;
    let outside = majority_committed(cluster, target).await;
    assert!(
        inside < outside,
        "node {target} cut off but committed {inside:?}, the others {outside:?}"
    );
    cluster.net.heal(target);
    cluster.event(format!(
        "round {round}: healed {target} (committed while cut: {inside:?} vs {outside:?})"
    ));
    cluster.wait_healthy().await;
    cluster.event(format!("round {round}: healthy"));
}

/// Waits until the cut is visible: if the leader was cut off, the other two
/// elect a new leader (so its heartbeats no longer reach them).
async fn cut_took_effect(cluster: &mut ChaosCluster, target: u64, leader: u64) {
    if target != leader {
        return;
    }
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        for id in (1..=3).filter(|id| *id != target) {
            if let Some(s) = cluster.status(id).await {
                if s["role"] == "Leader" {
                    cluster.event(format!("node {id} leads the majority side"));
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the majority elected no new leader while leader {target} was cut off\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn committed(cluster: &ChaosCluster, id: u64) -> Option<u64> {
    cluster.status(id).await?["committed_index"].as_u64()
}

/// Highest committed index on the nodes other than `cut`.
async fn majority_committed(cluster: &ChaosCluster, cut: u64) -> Option<u64> {
    let mut best = None;
    for id in (1..=3).filter(|id| *id != cut) {
        best = best.max(committed(cluster, id).await);
    }
    best
}
