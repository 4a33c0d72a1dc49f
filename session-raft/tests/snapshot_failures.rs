//! A snapshot build that fails (here: every snapshot file write fails part
//! way, as on a full disk) must not stop Raft: the cluster keeps serving
//! writes, and the snapshot is built once writing works again. Its own test
//! binary, because the failure hook is process-wide.

mod common;

use std::time::Duration;

use common::*;
use session_core::SessionStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_build_is_survived_and_retried() {
    let cluster = TestCluster::start(3, true, |c| c.with_snapshot_every(20)).await;
    let (leader, _) = cluster.followers(Duration::from_secs(10)).await;
    let store = cluster.node(leader).store();
    session_raft::internals::snapshot::inject_write_failures(true);
    // Well past the snapshot policy on every member: each build fails.
    let mut written = Vec::new();
    for i in 0..100u64 {
        let id = new_id();
        let committed =
            tokio::time::timeout(Duration::from_secs(10), store.create(&id, new_session(i)))
                .await
                .expect("writes keep committing while snapshots fail")
                .expect("write commits");
        written.push((id, i, committed));
    }
    for id in cluster.running() {
        assert_eq!(
            cluster.node(id).status().snapshot_index,
            None,
            "no snapshot yet"
        );
    }
    session_raft::internals::snapshot::inject_write_failures(false);
    // Later writes trigger a retry once the back-off has passed.
    eventually(
        Duration::from_secs(20),
        "snapshot built after the failures",
        || async {
            store.create(&new_id(), new_session(0)).await.unwrap();
            let status = cluster.node(leader).status();
            (status.snapshot_index.unwrap_or(0) > 100).then_some(())
        },
    )
    .await;
    for (id, i, committed) in &written {
        let record = store
            .load(id, committed.token, now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value_of(&record), *i);
    }
    cluster.shutdown().await;
}
