//! Large data between members on loopback: bursts of big sessions that make
//! an AppendEntries batch larger than the RPC body limit, and snapshots that
//! fail to build or are larger than that limit.

mod common;

use std::time::Duration;

use common::*;
use session_core::store::testing::live_session;
use session_core::{ChangeSet, NewSession, SessionStore, StoreError};

const LEADER_WAIT: Duration = Duration::from_secs(10);

/// RPC body limit of these tests: small, so that a few sessions exceed it.
const MAX_RPC_BYTES: usize = 256 << 10;

/// A session whose data is one value of `bytes` bytes (plus key "v").
fn big_session(value: u64, bytes: usize) -> NewSession {
    let blob = vec![(value % 251) as u8; bytes];
    live_session(&[("v", &value.to_le_bytes()), ("blob", &blob)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_sessions_commits_despite_the_body_limit() {
    let cluster = TestCluster::start(3, false, |c| c.with_max_rpc_bytes(MAX_RPC_BYTES)).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(leader).store();
    // 40 sessions of 60 KiB at once: openraft batches them, and a batch of
    // more than four is over the limit.
    let writes: Vec<_> = (0..40u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = new_id();
                let committed = tokio::time::timeout(
                    Duration::from_secs(15),
                    store.create(&id, big_session(i, 60 << 10)),
                )
                .await
                .expect("write does not stall")
                .expect("write commits");
                (id, i, committed)
            })
        })
        .collect();
    let mut results = Vec::new();
    for write in writes {
        results.push(write.await.unwrap());
    }
    for follower in followers {
        let reader = cluster.node(follower).store();
        for (id, i, committed) in &results {
            let record = reader
                .load(id, committed.token, now())
                .await
                .unwrap()
                .expect("replicated");
            assert_eq!(value_of(&record), *i);
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_the_rpc_limit_reaches_a_lagging_member() {
    let mut cluster = TestCluster::start(3, true, |c| {
        c.with_max_rpc_bytes(MAX_RPC_BYTES).with_snapshot_every(20)
    })
    .await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let lagging = followers[0];
    cluster.stop_node(lagging).await;
    // 60 sessions of 20 KiB: a snapshot of over 1 MiB, four times the limit.
    let store = cluster.node(leader).store();
    let mut written = Vec::new();
    for i in 0..60u64 {
        let id = new_id();
        let committed = store.create(&id, big_session(i, 20 << 10)).await.unwrap();
        written.push((id, i, committed));
    }
    eventually(
        Duration::from_secs(10),
        "leader snapshots and purges",
        || async {
            let status = cluster.node(leader).status();
            (status.snapshot_index.unwrap_or(0) > 40).then_some(())
        },
    )
    .await;
    cluster.start_node(lagging).await;
    let last = written.last().unwrap().2.token;
    eventually(
        Duration::from_secs(20),
        "lagging member catches up",
        || async { (cluster.node(lagging).store().applied_index() >= last.index).then_some(()) },
    )
    .await;
    let status = cluster.node(lagging).status();
    assert!(status.snapshot_index.unwrap_or(0) > 40, "{status:?}");
    let reader = cluster.node(lagging).store();
    for (id, i, committed) in &written {
        let record = reader
            .load(id, committed.token, now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value_of(&record), *i);
    }
    // And the cluster serves writes.
    store.create(&new_id(), new_session(1)).await.unwrap();
    cluster.shutdown().await;
}

/// One write too large for any replication message is refused before it is
/// proposed (it could never be replicated, and would stall every write
/// behind it); the cluster goes on committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_larger_than_one_replication_message_is_refused_not_stuck() {
    let cluster = TestCluster::start(3, false, |c| {
        c.with_max_rpc_bytes(MAX_RPC_BYTES)
            .with_write_timeout(Duration::from_secs(3))
    })
    .await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    for via in [leader, followers[0]] {
        let store = cluster.node(via).store();
        let refused = store
            .create(&new_id(), big_session(1, MAX_RPC_BYTES + 1))
            .await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { .. })),
            "through node {via}: {refused:?}"
        );
        let id = new_id();
        store.create(&id, big_session(2, 1_000)).await.unwrap();
        let mut changes = ChangeSet::default();
        changes.set("big".into(), vec![0; MAX_RPC_BYTES]);
        let refused = store.apply(&id, changes, now()).await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { .. })),
            "{refused:?}"
        );
        // Ordinary writes still commit, everywhere.
        let mut changes = ChangeSet::default();
        changes.set("v".into(), 3u64.to_le_bytes().to_vec());
        let written = store.apply(&id, changes, now()).await.unwrap();
        for node in cluster.running() {
            let record = cluster
                .node(node)
                .store()
                .load(&id, written.token, now())
                .await
                .unwrap()
                .expect("replicated");
            assert_eq!(value_of(&record), 3);
        }
    }
    cluster.shutdown().await;
}
