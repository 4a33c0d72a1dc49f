//! Large data between members on loopback: bursts of big sessions that make
//! an AppendEntries batch larger than the RPC body limit, and snapshots that
//! fail to build or are larger than that limit.

mod common;

use std::time::Duration;

use common::*;
use session_core::{NewSession, SessionData, SessionStore};

const LEADER_WAIT: Duration = Duration::from_secs(10);

/// RPC body limit of these tests: small, so that a few sessions exceed it.
const MAX_RPC_BYTES: usize = 256 << 10;

/// A session whose data is one value of `bytes` bytes (plus key "v").
fn big_session(value: u64, bytes: usize) -> NewSession {
    let mut session = new_session(value);
    let mut data = SessionData::new();
    data.insert("v".into(), value.to_le_bytes().to_vec());
    data.insert("blob".into(), vec![(value % 251) as u8; bytes]);
    session.data = data;
    session
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
