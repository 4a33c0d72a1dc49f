//! Logging (tracing) and Prometheus metrics for the demo's processes.
//!
//! Libraries (session-core, session-raft) only emit through the `metrics`
//! facade; this installs the recorder that turns those into `/metrics` text.

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

/// Installs the Prometheus recorder; `None` if one is already installed.
pub(crate) fn init_metrics() -> Option<PrometheusHandle> {
    // Latency buckets in seconds, from 0.25 ms to 2.5 s: commit latency on a
    // LAN sits in the low milliseconds, and the tail is what operators watch.
    let buckets = [
        0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .ok()?
        .install_recorder()
        .ok()
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
