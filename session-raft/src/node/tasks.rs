//! The background tasks of a member: the cluster-id proposal of a new
//! group's first leader, the leader's expiry timer (with its clock bound),
//! and the metrics exporter. Each runs until the node's stop signal.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;

use crate::command::Command;
use crate::replica::Replica;
use crate::stop::stopped;

/// The first leader that finds the group without a cluster id proposes a
/// random one ([`Command::InitCluster`]); every member's task ends once the
/// id is applied there.
pub(super) async fn name_the_cluster(replica: Arc<Replica>, mut stop: watch::Receiver<bool>) {
    let mut metrics = replica.raft.server_metrics();
    while replica.reader.cluster_id() == 0 {
        if replica.raft.is_leader() {
            let proposal = replica.raft.client_write(Arc::new(Command::InitCluster {
                cluster_id: random_cluster_id(),
            }));
            match tokio::time::timeout(replica.write_timeout, proposal).await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => tracing::debug!(error = %e, "cluster id proposal failed"),
                Err(_) => tracing::debug!("cluster id proposal timed out"),
            }
        }
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = metrics.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A random, non-zero cluster id.
fn random_cluster_id() -> u64 {
    let mut bytes = [0u8; 8];
    loop {
        // The OS generator failing is next to impossible; the clock's
        // nanoseconds are then still unique enough to tell histories apart.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            bytes = nanos.to_le_bytes();
        }
        let id = u64::from_le_bytes(bytes);
        if id != 0 {
            return id;
        }
    }
}

/// The leader proposes "expire before now" every `every`; other members idle.
/// "Now" is the leader's clock, but never more than `clock_bound` past the
/// newest time a committed write carried: a leader whose clock jumps ahead
/// must not expire every session of the group at once.
pub(super) async fn expiry_timer(
    replica: Arc<Replica>,
    every: Duration,
    clock_bound: Duration,
    clock: session_core::Clock,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut warned: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = ticks.tick() => {}
        }
        if !replica.raft.is_leader() {
            continue;
        }
        let wall = clock.now();
        let group = replica.reader.newest_write_time();
        let now = bounded_expiry_stamp(wall, group, clock_bound);
        if now < wall {
            // Loud, but once a minute: the cause lasts (a stepped clock, or
            // an idle group whose newest write is old).
            if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                warned = Some(std::time::Instant::now());
                tracing::warn!(
                    node = replica.node_id,
                    wall_clock = wall,
                    newest_committed_write = group,
                    ahead_ms = wall - group,
                    "this leader's clock is ahead of every committed write by more than the \
                     expiry clock bound: expiring only up to the bound (a clock step, or an \
                     idle cluster)"
                );
            }
            metrics::counter!("session_raft_expiry_stamps_bounded_total").increment(1);
        }
        if !replica.reader.any_expired(now) {
            continue;
        }
        let proposal = replica
            .raft
            .client_write(Arc::new(Command::ExpireBefore { now }));
        match tokio::time::timeout(replica.write_timeout, proposal).await {
            Ok(Ok(_)) => tracing::debug!(now, "expired sessions"),
            Ok(Err(e)) => tracing::debug!(error = %e, "expiry proposal failed"),
            Err(_) => tracing::debug!("expiry proposal timed out"),
        }
    }
}

/// Mirrors Raft progress into `metrics` gauges (a no-op without a recorder).
///
/// The gauges are looked up on every refresh (a few a second at most), not
/// once: an application that installs its metrics recorder after starting
/// the node still gets them.
pub(super) async fn export_metrics(replica: Arc<Replica>, mut stop: watch::Receiver<bool>) {
    let mut metrics = replica.raft.metrics();
    let mut applied = replica.reader.watch_applied();
    let node = replica.node_id.to_string();
    loop {
        {
            let gauge = |name: &'static str| metrics::gauge!(name, "node" => node.clone());
            let m = metrics.borrow_watched();
            let index =
                |l: &Option<crate::types::LogId>| l.as_ref().map(|l| l.index).unwrap_or(0) as f64;
            gauge("session_raft_term").set(m.current_term as f64);
            gauge("session_raft_commit_index").set(index(&m.local_committed));
            gauge("session_raft_is_leader").set(if m.state == openraft::ServerState::Leader {
                1.0
            } else {
                0.0
            });
            // The state machine's own applied index: openraft's metrics may
            // not announce every apply.
            gauge("session_raft_applied_index").set(replica.reader.applied_index() as f64);
            gauge("session_raft_sessions").set(replica.reader.session_count() as f64);
        }
        tokio::select! {
            _ = stopped(&mut stop) => return,
            changed = metrics.changed() => if changed.is_err() { return },
            changed = applied.changed() => if changed.is_err() { return },
            // And a refresh now and then, whatever was announced.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Metrics change on every apply; a few updates a second are plenty.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The expiry stamp for a leader whose clock says `wall` in a group whose
/// newest committed write carried `group`: at most `bound` past `group`.
/// A group that never saw a write (0) has nothing to expire anyway.
fn bounded_expiry_stamp(
    wall: session_core::UnixMillis,
    group: session_core::UnixMillis,
    bound: Duration,
) -> session_core::UnixMillis {
    let bound = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    wall.min(group.saturating_add(bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_stamp_never_runs_more_than_the_bound_past_the_group() {
        let bound = Duration::from_secs(300);
        let group = 1_800_000_000_000;
        assert_eq!(bounded_expiry_stamp(group + 5, group, bound), group + 5);
        let day = 86_400_000;
        assert_eq!(
            bounded_expiry_stamp(group + day, group, bound),
            group + 300_000
        );
        // A clock behind the group is used as it is (it expires less).
        assert_eq!(bounded_expiry_stamp(group - day, group, bound), group - day);
    }

    #[test]
    fn cluster_ids_are_never_zero_and_differ() {
        let a = random_cluster_id();
        let b = random_cluster_id();
        assert!(a != 0 && b != 0);
        assert_ne!(a, b);
    }
}
