//! Logging (tracing) and Prometheus metrics for the demo's processes.
//!
//! Libraries (session-core, session-raft) only emit through the `metrics`
//! facade; this installs the recorder that turns those into `/metrics` text.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use session_raft::ClusterStatus;
use tracing_subscriber::EnvFilter;

/// Sets up `tracing` output on stderr with the given filter.
pub(crate) fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// How often histogram samples are folded into their buckets between
/// scrapes (what `PrometheusBuilder::install` would do on a runtime of its
/// own).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder and its upkeep; `None` if one is
/// already installed.
pub(crate) fn init_metrics() -> Option<PrometheusHandle> {
    let handle = builder().install_recorder().ok()?;
    spawn_upkeep(handle.clone(), UPKEEP_EVERY);
    Some(handle)
}

/// The recorder's configuration.
fn builder() -> PrometheusBuilder {
    // Latency buckets in seconds, from 0.25 ms to 2.5 s: commit latency on a
    // LAN sits in the low milliseconds, and the tail is what operators watch.
    let buckets = [
        0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .expect("the bucket list is not empty")
}

/// Folds pending histogram samples into their buckets every `every`, on a
/// thread of its own for the life of the process. The recorder keeps each
/// sample (8 bytes; every write records its commit time) until a scrape or
/// an upkeep drains it: with no upkeep, a node nobody scrapes grew by every
/// write it ever made.
fn spawn_upkeep(handle: PrometheusHandle, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!("metrics upkeep thread not started: {e}; histograms drain on scrape only");
    }
}

/// Publishes, on each scrape, what session-raft's own gauges (term, commit
/// and applied index, leadership, session count) leave out: apply lag, last
/// log index and member count.
pub(crate) fn record_cluster_gauges(status: &ClusterStatus) {
    let committed = status.committed_index.unwrap_or(0);
    let applied = status.applied_index.unwrap_or(0);
    metrics::gauge!("session_raft_apply_lag").set(committed.saturating_sub(applied) as f64);
    metrics::gauge!("session_raft_last_log_index").set(status.last_log_index.unwrap_or(0) as f64);
    metrics::gauge!("session_raft_members").set(status.members.len() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of this process (`/proc/self/statm`).
    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn histogram_samples_do_not_pile_up_between_scrapes() {
        let recorder = builder().build_recorder();
        spawn_upkeep(recorder.handle(), Duration::from_millis(10));
        metrics::with_local_recorder(&recorder, || {
            let commit = metrics::histogram!("test_commit_seconds");
            commit.record(0.001);
            let before = resident_bytes();
            // 4M samples, 32 MB if kept; nothing scrapes meanwhile.
            for _ in 0..40 {
                for _ in 0..100_000 {
                    commit.record(0.001);
                }
                std::thread::sleep(Duration::from_millis(15));
            }
            let grown = resident_bytes().saturating_sub(before);
            assert!(
                grown < 12 << 20,
                "resident memory grew by {grown} bytes over 4M samples nobody scraped"
            );
        });
    }
}
