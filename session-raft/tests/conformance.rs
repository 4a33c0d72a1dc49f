//! session-core's store conformance suite, run against `RaftStore` on a real
//! three-node cluster (durable storage, real sockets): once through a
//! follower (every write forwarded to the leader, reads waiting for tokens)
//! and once through the leader. A store is correct when it passes the same
//! suite as `MemoryStore`.

mod common;

use std::time::Duration;

use common::TestCluster;
use session_core::store::conformance;

const LEADER_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_store_passes_the_conformance_suite_through_follower_and_leader() {
    let cluster = TestCluster::start(3, true, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;

    let follower = cluster.node(followers[0]).store();
    conformance::run_all(|| follower.clone()).await;

    let leader = cluster.node(leader).store();
    conformance::run_all(|| leader.clone()).await;

    cluster.shutdown().await;
}
