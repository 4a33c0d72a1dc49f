//! Each Raft group names its history with a cluster id made by its first
//! leader, and tokens carry it: a token of another group or of an earlier
//! incarnation of this one (a wiped and rebuilt cluster) is ignored instead
//! of waited for. And the leader's expiry stamp is bounded by the group's
//! own notion of "now", so a leader whose clock jumps cannot expire
//! everyone.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{eventually, new_id, new_session, now, TestCluster};
use session_core::{Clock, ConsistencyToken, SessionStore};

const LEADER_WAIT: Duration = Duration::from_secs(10);

async fn cluster_id(cluster: &TestCluster, node: u64) -> u64 {
    eventually(LEADER_WAIT, "a cluster id", || async {
        cluster.node(node).cluster_id()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_history_is_ignored_not_waited_for() {
    let first = TestCluster::start(3, false, |c| c).await;
    let (leader, followers) = first.followers(LEADER_WAIT).await;
    let history = cluster_id(&first, leader).await;
    for node in first.running() {
        assert_eq!(cluster_id(&first, node).await, history, "one id per group");
    }
    let id = new_id();
    let created = first
        .node(leader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    assert_eq!(created.token.history, history, "tokens name the history");

    let follower = first.node(followers[0]).store();
    eventually(LEADER_WAIT, "the follower applies the create", || async {
        (follower.applied_index() >= created.token.index).then_some(())
    })
    .await;

    // A cookie from a rebuilt cluster: same index space, another history,
    // an index this group has not reached.
    let foreign = ConsistencyToken::new(history ^ 0x5a5a, created.token.index + 1_000_000);
    let started = Instant::now();
    let read = follower.load(&id, foreign, now()).await;
    assert!(matches!(read, Ok(Some(_))), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "waited {:?} for a token of another history",
        started.elapsed()
    );

    // A rebuilt cluster has a history of its own; the old group's token
    // means nothing there.
    let rebuilt = TestCluster::start(3, false, |c| c).await;
    let leader2 = rebuilt.leader(LEADER_WAIT).await;
    assert_ne!(cluster_id(&rebuilt, leader2).await, history);
    let started = Instant::now();
    let read = rebuilt
        .node(leader2)
        .store()
        .load(&id, created.token, now())
        .await;
    assert!(matches!(read, Ok(None)), "{read:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    rebuilt.shutdown().await;
    first.shutdown().await;
}

/// One manual clock for every node's expiry timer: whoever leads, its clock
/// is the one that jumps.
fn jumping_clock() -> Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| Clock::manual(now())).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_clock_a_day_ahead_does_not_expire_every_session() {
    let cluster = TestCluster::start(3, false, |c| {
        c.with_clock(jumping_clock())
            .with_expiry_interval(Duration::from_millis(100))
            .with_expiry_clock_bound(Duration::from_secs(60))
    })
    .await;
    let leader = cluster.leader(LEADER_WAIT).await;
    let store = cluster.node(leader).store();
    let mut live = Vec::new();
    for n in 0..5 {
        let id = new_id();
        store.create(&id, new_session(n)).await.unwrap();
        live.push(id);
    }
    // One session that really is over: it expires 50 ms from now.
    let short = new_id();
    let mut session = new_session(9);
    session.expires_at = session.created_at + 50;
    store.create(&short, session).await.unwrap();

    jumping_clock().advance(Duration::from_secs(86_400));
    // Many expiry rounds at the jumped clock.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    for node in cluster.running() {
        eventually(
            Duration::from_secs(5),
            "the over session dropped",
            || async { (cluster.node(node).status().session_count == live.len()).then_some(()) },
        )
        .await;
        for id in &live {
            let record = cluster
                .node(node)
                .store()
                .load(id, ConsistencyToken::NONE, now())
                .await
                .unwrap();
            assert!(record.is_some(), "node {node} lost a live session");
        }
    }
    cluster.shutdown().await;
}
