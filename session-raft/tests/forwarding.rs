//! Writes a follower forwards to the leader, on a path that misbehaves (an
//! HTTP proxy in front of the leader's cluster port, see
//! `common::http_fault`):
//!
//! - an answer lost after the leader acted (a proxy's `502`) is an unknown
//!   outcome: the write is not sent again, so a rotation is applied once and
//!   the caller hears "unavailable", never a false "not found";
//! - a stalled path never holds a write past the write timeout, however
//!   many writes queue for a connection.

mod common;

use std::time::{Duration, Instant};

use common::http_fault::{HttpFaultProxy, WriteFault};
use common::{eventually, new_id, new_session, now, value_of, TestCluster};
use session_core::{ChangeSet, ConsistencyToken, SessionStore, StoreError};

const LEADER_WAIT: Duration = Duration::from_secs(10);

/// A cluster whose leader's inbound cluster traffic passes an HTTP fault
/// proxy; returns it with (leader, a follower, the proxy).
async fn cluster_with_faulty_leader_path(
    tune: fn(session_raft::NodeConfig) -> session_raft::NodeConfig,
) -> (TestCluster, u64, u64, HttpFaultProxy) {
    let cluster = TestCluster::start(3, false, tune).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let proxy = HttpFaultProxy::start(cluster.node(leader).cluster_addr()).await;
    cluster.proxies[&leader].set_target(proxy.addr);
    (cluster, leader, followers[0], proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_whose_answer_is_lost_is_not_sent_again() {
    let (cluster, leader, follower, proxy) =
        cluster_with_faulty_leader_path(|c| c.with_write_timeout(Duration::from_secs(3))).await;
    let old = new_id();
    cluster
        .node(leader)
        .store()
        .create(&old, new_session(1))
        .await
        .unwrap();

    // A login: rotate the id, through the follower.
    proxy.set(WriteFault::PassThenBadGateway);
    let new = new_id();
    let rotate = ChangeSet {
        rotate_to: Some(new),
        ..ChangeSet::default()
    };
    let outcome = cluster
        .node(follower)
        .store()
        .apply(&old, rotate, now())
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable { .. })),
        "a lost answer is an unknown outcome: {outcome:?}"
    );
    assert_eq!(
        proxy.writes_passed(),
        1,
        "a write that reached the leader must not be sent again"
    );
    // It was applied exactly once: the session lives on under the new id.
    let record = eventually(Duration::from_secs(5), "the rotated session", || async {
        cluster
            .node(leader)
            .store()
            .load(&new, ConsistencyToken::NONE, now())
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(value_of(&record), 1);

    // With the path healed, writes through the follower work again.
    proxy.set(WriteFault::None);
    let mut changes = ChangeSet::default();
    changes.set("v".into(), 2u64.to_le_bytes().to_vec());
    cluster
        .node(follower)
        .store()
        .apply(&new, changes, now())
        .await
        .expect("write after the fault");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_leader_path_never_holds_a_write_past_the_write_timeout() {
    const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
    let (cluster, leader, follower, proxy) =
        cluster_with_faulty_leader_path(|c| c.with_write_timeout(WRITE_TIMEOUT)).await;
    let id = new_id();
    cluster
        .node(leader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    proxy.set(WriteFault::Stall);

    // More writes than the forwarder keeps RPCs in flight (8), spaced so that
    // each goes out alone: the later ones wait for a free connection.
    let store = cluster.node(follower).store();
    let mut writes = Vec::new();
    for n in 0..12u64 {
        let store = store.clone();
        writes.push(tokio::spawn(async move {
            let mut changes = ChangeSet::default();
            changes.set(format!("k{n}"), vec![1]);
            let started = Instant::now();
            let outcome = store.apply(&id, changes, now()).await;
            (started.elapsed(), outcome)
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for write in writes {
        let (took, outcome) = write.await.unwrap();
        assert!(
            matches!(outcome, Err(StoreError::Unavailable { .. })),
            "{outcome:?}"
        );
        assert!(
            took <= WRITE_TIMEOUT + Duration::from_millis(400),
            "a write took {took:?}, its bound is {WRITE_TIMEOUT:?}"
        );
    }
    assert!(proxy.writes_stalled() >= 8, "{}", proxy.writes_stalled());
    cluster.shutdown().await;
}
