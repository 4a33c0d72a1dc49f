//! The session count limit of a three-node cluster (`NodeConfig::max_sessions`):
//! the create that would exceed it is refused on the leader and through a
//! follower with `StoreError::Unavailable` (the layer's 503 + Retry-After),
//! nothing is stored by it on any replica, existing sessions keep working,
//! and room comes back after a delete and after the leader's expiry timer
//! drops expired sessions.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use session_core::store::testing;
use session_core::{ChangeSet, Clock, ConsistencyToken, NewSession, SessionStore, StoreError};
use session_raft::internals::FULL_RETRY_AFTER;
use session_raft::RaftStore;

const LEADER_WAIT: Duration = Duration::from_secs(10);
const MAX: u64 = 3;
const HOUR: u64 = 3_600_000;

/// The clock of every node's expiry timer; the test moves it to expire
/// sessions (`tune` is a plain `fn`, so it cannot capture one).
fn expiry_clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| Clock::manual(now()))
}

/// A session created at `at`, live for an hour from then.
fn session_at(at: u64) -> NewSession {
    testing::new_session(at, at + HOUR, &[("v", &1u64.to_le_bytes())])
}

fn assert_full(result: Result<session_core::Committed, StoreError>, via: &str) {
    match result {
        Err(StoreError::Unavailable {
            retry_after,
            reason,
        }) => {
            assert_eq!(retry_after, FULL_RETRY_AFTER, "{via}");
            assert!(reason.contains("full"), "{via}: {reason}");
        }
        other => panic!("create beyond the limit through {via}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_refuses_sessions_beyond_the_limit_until_room_appears() {
    let cluster = TestCluster::start(3, false, |c| {
        c.with_max_sessions(MAX)
            .with_clock(expiry_clock().clone())
            .with_expiry_interval(Duration::from_millis(100))
            // The test moves only the expiry clock, two hours on; allow the
            // stamp that far past the group's writes (default: 5 minutes).
            .with_expiry_clock_bound(Duration::from_millis(3 * HOUR))
    })
    .await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let stores: Vec<RaftStore> = [leader, followers[0], followers[1]]
        .iter()
        .map(|id| cluster.node(*id).store())
        .collect();
    let t0 = now();

    // Fill the map, one create through each node.
    let mut ids = Vec::new();
    for store in &stores {
        let id = new_id();
        store.create(&id, session_at(t0)).await.expect("room left");
        ids.push(id);
    }
    // Session MAX + 1 is refused wherever it is proposed, and leaves nothing.
    let refused = new_id();
    assert_full(stores[1].create(&refused, session_at(t0)).await, "follower");
    assert_full(stores[0].create(&refused, session_at(t0)).await, "leader");
    for id in cluster.running() {
        assert!(cluster.node(id).status().session_count as u64 <= MAX);
        let record = cluster
            .node(id)
            .store()
            .load(&refused, ConsistencyToken::NONE, t0)
            .await
            .unwrap();
        assert!(record.is_none(), "node {id} stored a refused session");
    }

    // Existing sessions keep working while the map is full.
    let mut changes = ChangeSet::default();
    changes.set("v".into(), 2u64.to_le_bytes().to_vec());
    let written = stores[2]
        .apply(&ids[0], changes, t0)
        .await
        .expect("a full map still takes changes to existing sessions");
    let record = stores[1]
        .load(&ids[0], written.token, t0)
        .await
        .unwrap()
        .expect("existing session");
    assert_eq!(value_of(&record), 2);

    // A delete makes room for exactly one.
    stores[1].delete(&ids[1]).await.unwrap();
    stores[2]
        .create(&new_id(), session_at(t0))
        .await
        .expect("room after a delete");
    assert_full(
        stores[2].create(&new_id(), session_at(t0)).await,
        "follower",
    );

    // Expiry: the leader's timer (on the manual clock) drops every session
    // once it is two hours later, and then new ones are accepted again.
    expiry_clock().advance(Duration::from_millis(2 * HOUR));
    eventually(
        Duration::from_secs(10),
        "expired sessions dropped on every node",
        || async {
            cluster
                .running()
                .iter()
                .all(|id| cluster.node(*id).status().session_count == 0)
                .then_some(())
        },
    )
    .await;
    // Stamped at the manual clock's time, so the timer leaves them alone.
    let later = expiry_clock().now();
    for store in &stores {
        store
            .create(&new_id(), session_at(later))
            .await
            .expect("room after expiry");
    }
    assert_full(
        stores[1].create(&new_id(), session_at(later)).await,
        "follower",
    );
    cluster.shutdown().await;
}
