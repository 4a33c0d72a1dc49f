//! Three-node clusters on loopback with real sockets: replication through
//! followers, leader loss, catch-up by snapshot, full restarts from disk, a
//! node cut off by its proxy, and the cluster port's authentication.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use session_core::{ChangeSet, ConsistencyToken, SessionStore, StoreError};
use session_raft::{NodeConfig, RaftNode, ReadMode, StartError};

const LEADER_WAIT: Duration = Duration::from_secs(10);

async fn write_then_read_through_followers(durable: bool) {
    let cluster = TestCluster::start(3, durable, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let (writer, reader) = (followers[0], followers[1]);

    let id = new_id();
    let created = cluster
        .node(writer)
        .store()
        .create(&id, new_session(7))
        .await
        .expect("create through a follower");
    assert!(created.token.index > 0);
    assert_eq!(created.version, created.token.index);

    let mut changes = ChangeSet::default();
    changes.set("v".into(), 8u64.to_le_bytes().to_vec());
    let applied = cluster
        .node(writer)
        .store()
        .apply(&id, changes, now())
        .await
        .expect("apply through a follower");
    assert!(applied.token.index > created.token.index);

    // The token makes the other follower (and the leader) wait until applied.
    for node in [reader, leader] {
        let record = cluster
            .node(node)
            .store()
            .load(&id, applied.token, now())
            .await
            .expect("load with token")
            .expect("session exists");
        assert_eq!(value_of(&record), 8);
        assert_eq!(record.version, applied.version);
    }

    // Create with an id already taken is refused, through a follower too.
    let err = cluster
        .node(reader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::IdExists);

    let deleted = cluster.node(reader).store().delete(&id).await.unwrap();
    let gone = cluster
        .node(writer)
        .store()
        .load(&id, deleted.token, now())
        .await;
    assert_eq!(gone, Err(StoreError::Superseded), "gone, moments ago");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_follower_read_through_another_ephemeral() {
    write_then_read_through_followers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_follower_read_through_another_durable() {
    write_then_read_through_followers(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_forwarded_writes_all_commit() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (_, followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(followers[0]).store();
    let started = Instant::now();
    let writes: Vec<_> = (0..200u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = new_id();
                let committed = store.create(&id, new_session(i)).await.expect("create");
                (id, i, committed)
            })
        })
        .collect();
    let mut results = Vec::new();
    for write in writes {
        results.push(write.await.unwrap());
    }
    eprintln!(
        "200 concurrent forwarded creates took {:?}",
        started.elapsed()
    );
    let other = cluster.node(followers[1]).store();
    for (id, i, committed) in results {
        let record = other
            .load(&id, committed.token, now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value_of(&record), i);
    }
    cluster.shutdown().await;
}

async fn leader_loss(graceful: bool, bound: Duration) {
    let mut cluster = TestCluster::start(3, false, |c| c).await;
    let old_leader = cluster.leader(LEADER_WAIT).await;
    let survivor = if old_leader == 1 { 2 } else { 1 };
    let mut acknowledged = Vec::new();
    for i in 0..20u64 {
        let id = new_id();
        let committed = cluster
            .node(survivor)
            .store()
            .create(&id, new_session(i))
            .await
            .unwrap();
        acknowledged.push((id, i, committed));
    }

    let stopped_at = Instant::now();
    if graceful {
        cluster.stop_node(old_leader).await;
    } else {
        cluster.crash_node(old_leader).await;
    }
    let new_leader = cluster.leader(Duration::from_secs(10)).await;
    let took = stopped_at.elapsed();
    eprintln!("new leader {new_leader} after {took:?} (graceful: {graceful})");
    assert_ne!(new_leader, old_leader);
    assert!(took < bound, "new leader took {took:?}, bound {bound:?}");

    // Writes continue, through either survivor.
    for node in cluster.running() {
        for i in 100..110u64 {
            let id = new_id();
            let committed = cluster
                .node(node)
                .store()
                .create(&id, new_session(i))
                .await
                .unwrap();
            acknowledged.push((id, i, committed));
        }
    }
    for node in cluster.running() {
        for (id, i, committed) in &acknowledged {
            let record = cluster
                .node(node)
                .store()
                .load(id, committed.token, now())
                .await
                .unwrap()
                .expect("acknowledged write survives");
            assert_eq!(value_of(&record), *i);
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_new_leader_within_two_seconds() {
    leader_loss(true, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_new_leader_and_no_acknowledged_write_lost() {
    // An election timeout (≤ 0.9 s) plus a vote; generous for a loaded machine.
    leader_loss(false, Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_through_snapshot() {
    let mut cluster = TestCluster::start(3, true, |c| c.with_snapshot_every(50)).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let lagging = followers[0];
    cluster.stop_node(lagging).await;

    let mut acknowledged = Vec::new();
    for i in 0..300u64 {
        let id = new_id();
        let committed = cluster
            .node(leader)
            .store()
            .create(&id, new_session(i))
            .await
            .unwrap();
        acknowledged.push((id, i, committed));
    }
    let last = acknowledged.last().unwrap().2.token;
    // The leader has purged the log the stopped node would need.
    eventually(Duration::from_secs(10), "leader purges its log", || async {
        let status = cluster.node(leader).status();
        (status.snapshot_index.unwrap_or(0) > 100).then_some(())
    })
    .await;

    cluster.start_node(lagging).await;
    eventually(
        Duration::from_secs(20),
        "restarted node catches up",
        || async { (cluster.node(lagging).store().applied_index() >= last.index).then_some(()) },
    )
    .await;
    let status = cluster.node(lagging).status();
    assert!(
        status.snapshot_index.unwrap_or(0) > 100,
        "caught up through a snapshot: {status:?}"
    );
    let store = cluster.node(lagging).store();
    for (id, i, committed) in &acknowledged {
        let record = store
            .load(id, committed.token, now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value_of(&record), *i);
    }
    assert_eq!(status.session_count, acknowledged.len());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_from_disk_loses_nothing() {
    let mut cluster = TestCluster::start(3, true, |c| c.with_snapshot_every(40)).await;
    cluster.leader(LEADER_WAIT).await;
    let mut acknowledged = Vec::new();
    for i in 0..100u64 {
        let via = 1 + i % 3;
        let id = new_id();
        let committed = cluster
            .node(via)
            .store()
            .create(&id, new_session(i))
            .await
            .unwrap();
        acknowledged.push((id, i, committed));
    }
    // Stop all at once, like a power cut.
    for id in 1..=3 {
        cluster.crash_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    cluster.leader(LEADER_WAIT).await;
    for node in 1..=3 {
        let store = cluster.node(node).store();
        for (id, i, committed) in &acknowledged {
            let record = store
                .load(id, committed.token, now())
                .await
                .unwrap()
                .expect("acknowledged write survives a full restart");
            assert_eq!(value_of(&record), *i);
        }
    }
    // And the restarted cluster takes writes.
    let id = new_id();
    cluster
        .node(2)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_node_cannot_commit_and_serves_no_stale_reads() {
    let cluster = TestCluster::start(3, false, |c| {
        c.with_write_timeout(Duration::from_secs(3))
            .with_read_wait(Duration::from_millis(500))
    })
    .await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let (cut, other) = (followers[0], followers[1]);

    let id = new_id();
    let first = cluster
        .node(leader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    let seen = cluster
        .node(cut)
        .store()
        .load(&id, first.token, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&seen), 1);

    cluster.cut(cut);
    let cut_at = Instant::now();

    // The majority goes on.
    let mut changes = ChangeSet::default();
    changes.set("v".into(), 2u64.to_le_bytes().to_vec());
    let second = cluster
        .node(other)
        .store()
        .apply(&id, changes, now())
        .await
        .unwrap();

    // A write through the cut node is never acknowledged.
    let mut changes = ChangeSet::default();
    changes.set("v".into(), 3u64.to_le_bytes().to_vec());
    let refused = cluster.node(cut).store().apply(&id, changes, now()).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable { .. })),
        "cut-off write must fail: {refused:?}"
    );
    let new_id_ = new_id();
    let refused = cluster
        .node(cut)
        .store()
        .create(&new_id_, new_session(9))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable { .. })),
        "{refused:?}"
    );

    // A client that saw the newer write never reads the older value there.
    for _ in 0..3 {
        match cluster
            .node(cut)
            .store()
            .load(&id, second.token, now())
            .await
        {
            Err(StoreError::Unavailable { .. }) => {}
            Ok(Some(record)) => assert_eq!(value_of(&record), 2, "stale read"),
            other => panic!("unexpected read result {other:?}"),
        }
    }
    // Once its read lease has run out (twice the election timeout of 900
    // ms), it serves nothing from its own state, not even without a token,
    // since that state may miss a logout.
    tokio::time::sleep_until((cut_at + Duration::from_millis(1_800 + 200)).into()).await;
    let local = cluster
        .node(cut)
        .store()
        .load(&id, ConsistencyToken::NONE, now())
        .await;
    assert!(
        matches!(local, Err(StoreError::Unavailable { .. })),
        "a cut-off member served from its own state: {local:?}"
    );

    cluster.heal(cut);
    let record = eventually(
        Duration::from_secs(10),
        "healed node catches up",
        || async {
            cluster
                .node(cut)
                .store()
                .load(&id, second.token, now())
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    assert_eq!(value_of(&record), 2);
    // The refused writes did not sneak in.
    let after = cluster
        .node(leader)
        .store()
        .load(&new_id_, second.token, now())
        .await
        .unwrap();
    assert!(after.is_none(), "a write reported as failed was committed");
    cluster.shutdown().await;
}

async fn post(addr: &str, path: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, String) {
    post_to(addr, path, auth, None, body).await
}

/// [`post`] with an optional `x-raft-sessions-to` (the member meant).
async fn post_to(
    addr: &str,
    path: &str,
    auth: Option<&str>,
    to: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::post(format!("http://{addr}{path}"));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(to) = to {
        request = request.header("x-raft-sessions-to", to);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rpc_requires_the_secret_and_refuses_garbage() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let leader = cluster.leader(LEADER_WAIT).await;
    let addr = cluster.node(leader).cluster_addr().to_string();
    let good = format!(
        "Bearer {}",
        SECRET
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    let (status, _) = post(&addr, "/raft/rpc", None, vec![6]).await;
    assert_eq!(status, 401, "no secret");
    let (status, body) = post(&addr, "/raft/rpc", Some("Bearer 00ff"), vec![6]).await;
    assert_eq!(status, 401, "wrong secret");
    assert!(
        !body.contains(&good[7..]),
        "the refusal must not echo the secret"
    );
    let (status, _) = post(&addr, "/raft/snapshot", Some("Bearer nope"), vec![]).await;
    assert_eq!(status, 401, "snapshot endpoint needs the secret too");

    // With the secret, a malformed body is a 400, not a crash.
    for garbage in [
        vec![],
        vec![0xff; 64],
        vec![4, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10],
    ] {
        let (status, body) = post(&addr, "/raft/rpc", Some(&good), garbage).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("malformed"), "{body}");
    }
    let (status, _) = post(&addr, "/raft/snapshot", Some(&good), vec![1, 2, 3]).await;
    assert_eq!(status, 400);
    let (status, _) = post(&addr, "/nope", Some(&good), vec![]).await;
    assert_eq!(status, 404);
    // A call meant for another member (a peer address that leads to the
    // wrong node) is refused before its body is read, naming both nodes.
    let other = (leader % 3 + 1).to_string();
    for path in ["/raft/rpc", "/raft/snapshot"] {
        let (status, body) = post_to(&addr, path, Some(&good), Some(&other), vec![6]).await;
        assert_eq!(status, 421, "{body}");
        assert!(
            body.contains(&format!("this is node {leader}, not node {other}")),
            "{body}"
        );
    }
    let (status, _) = post_to(&addr, "/raft/rpc", Some(&good), Some("two"), vec![6]).await;
    assert_eq!(status, 400, "a target that is no node id");
    // Naming the right member changes nothing: the garbage is still a 400.
    let own = leader.to_string();
    let (status, _) = post_to(&addr, "/raft/rpc", Some(&good), Some(&own), vec![0xff; 8]).await;
    assert_eq!(status, 400);
    // Oversized bodies are refused.
    let (status, _) = post(&addr, "/raft/rpc", Some(&good), vec![0; 65 << 20]).await;
    assert_eq!(status, 413);

    // The cluster still works.
    let id = new_id();
    cluster
        .node(leader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_node_cluster_without_secret_refuses_to_start() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let peers = [
        (1, "127.0.0.1:1".to_string()),
        (2, "127.0.0.1:2".to_string()),
    ]
    .into();
    let config = NodeConfig::new(1, addr).with_peers(peers);
    let err = RaftNode::start(config.clone()).await.unwrap_err();
    assert!(matches!(err, StartError::Config(_)), "{err}");
    // Insecure on purpose is allowed.
    let node = RaftNode::start(config.with_insecure(true).with_ephemeral_cluster(true))
        .await
        .unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_promote_and_remove_at_run_time() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let leader = cluster.leader(LEADER_WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let id = new_id();
    let committed = cluster
        .node(leader)
        .store()
        .create(&id, new_session(5))
        .await
        .unwrap();

    // Node 4 joins through a follower (the request is redirected to the leader).
    let via = cluster.proxies[&follower].addr.to_string();
    let config = test_timing(
        NodeConfig::new(4, "127.0.0.14:0".parse().unwrap())
            .with_secret(common::SECRET)
            .with_join(via),
    );
    let joined = RaftNode::start(config).await.expect("join");
    let record = joined
        .store()
        .load(&id, committed.token, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&record), 5);
    let status = cluster.node(leader).status();
    let member = status.members.iter().find(|m| m.id == 4).expect("member 4");
    assert!(member.voter, "{status:?}");

    // Remove it again, from another node.
    cluster.node(follower).remove_member(4).await.unwrap();
    eventually(Duration::from_secs(10), "member 4 removed", || async {
        let status = cluster.node(leader).status();
        (!status.members.iter().any(|m| m.id == 4)).then_some(())
    })
    .await;
    joined.shutdown_abruptly().await.ok();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_see_the_latest_write_without_a_token() {
    let cluster = TestCluster::start(3, false, |c| {
        c.with_read_mode(ReadMode::Linearizable)
            .with_read_wait(Duration::from_millis(800))
    })
    .await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let id = new_id();
    cluster
        .node(leader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    for i in 2..12u64 {
        let mut changes = ChangeSet::default();
        changes.set("v".into(), i.to_le_bytes().to_vec());
        cluster
            .node(followers[0])
            .store()
            .apply(&id, changes, now())
            .await
            .unwrap();
        // No token: the read index alone makes the follower catch up first.
        for node in [followers[1], leader] {
            let record = cluster
                .node(node)
                .store()
                .load(&id, ConsistencyToken::NONE, now())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(value_of(&record), i);
        }
    }
    // A cut-off node cannot confirm a read index: it refuses rather than guess.
    cluster.cut(followers[1]);
    let read = cluster
        .node(followers[1])
        .store()
        .load(&id, ConsistencyToken::NONE, now())
        .await;
    assert!(
        matches!(read, Err(StoreError::Unavailable { .. })),
        "{read:?}"
    );
    cluster.heal(followers[1]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_expiry_timer_removes_expired_sessions_everywhere() {
    // (A leader clock far ahead no longer expires anything early: the stamp
    // is bounded by the group's newest write, see tests/histories.rs. So
    // the sessions here really expire, 300 ms after they are made.)
    let cluster = TestCluster::start(3, false, |c| {
        c.with_expiry_interval(Duration::from_millis(200))
    })
    .await;
    let leader = cluster.leader(LEADER_WAIT).await;
    for i in 0..5 {
        let mut session = new_session(i);
        session.expires_at = session.created_at + 300;
        cluster
            .node(leader)
            .store()
            .create(&new_id(), session)
            .await
            .unwrap();
    }
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
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_follower_restarts_empty_and_catches_up() {
    let mut cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let mut last = None;
    for i in 0..20u64 {
        let id = new_id();
        last = Some((
            id,
            i,
            cluster
                .node(leader)
                .store()
                .create(&id, new_session(i))
                .await
                .unwrap(),
        ));
    }
    cluster.crash_node(followers[0]).await;
    cluster.start_node(followers[0]).await;
    let (id, i, committed) = last.unwrap();
    let record = eventually(
        Duration::from_secs(15),
        "empty restart catches up",
        || async {
            cluster
                .node(followers[0])
                .store()
                .load(&id, committed.token, now())
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    assert_eq!(value_of(&record), i);
    let status = cluster.node(leader).status();
    assert_eq!(status.members.len(), 3);
    assert!(
        status.members.iter().all(|m| m.matched_index.is_some()),
        "{status:?}"
    );
    cluster.shutdown().await;
}

/// The store contract through a follower, until session-core's shared
/// conformance suite lands (then run that suite here as well).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_contract_through_a_follower() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(followers[0]).store();
    let check = cluster.node(leader).store();

    // Changes to a missing session: NotFound; deleting one: fine.
    let missing = new_id();
    let mut changes = ChangeSet::default();
    changes.set("k".into(), vec![1]);
    assert_eq!(
        store.apply(&missing, changes, now()).await,
        Err(StoreError::NotFound)
    );
    store
        .delete(&missing)
        .await
        .expect("deleting a missing session succeeds");

    // Compare-and-set.
    let id = new_id();
    let created = store.create(&id, new_session(1)).await.unwrap();
    let stale = ChangeSet {
        expected_version: Some(created.version - 1),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&id, stale, now()).await,
        Err(StoreError::VersionConflict {
            current: created.version
        })
    );
    let mut fresh = ChangeSet {
        expected_version: Some(created.version),
        ..ChangeSet::default()
    };
    fresh.set("v".into(), 2u64.to_le_bytes().to_vec());
    let updated = store.apply(&id, fresh, now()).await.unwrap();
    assert!(updated.version > created.version);

    // Size limit: refused, nothing written.
    let mut big = ChangeSet {
        size_limit: 64,
        ..ChangeSet::default()
    };
    big.set("big".into(), vec![0; 128]);
    assert!(matches!(
        store.apply(&id, big, now()).await,
        Err(StoreError::TooLarge { .. })
    ));

    // Rotation moves the data to the new id.
    let rotated = new_id();
    let rotate = ChangeSet {
        rotate_to: Some(rotated),
        ..ChangeSet::default()
    };
    let moved = store.apply(&id, rotate, now()).await.unwrap();
    assert_eq!(
        check.load(&id, moved.token, now()).await,
        Err(StoreError::Superseded),
        "the old id is gone, and said to be moved moments ago"
    );
    let record = check
        .load(&rotated, moved.token, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&record), 2);
    assert!(!record.data.contains_key("big"));

    // Expired at `now`: not loaded, not changed.
    let late = record.expires_at + 1;
    assert!(check
        .load(&rotated, moved.token, late)
        .await
        .unwrap()
        .is_none());
    let mut changes = ChangeSet::default();
    changes.set("k".into(), vec![1]);
    assert_eq!(
        store.apply(&rotated, changes, late).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.mesh_tag(), None);
    cluster.shutdown().await;
}

/// A peer list that sends node 2's traffic to node 1 itself (a typo, or a
/// port reused by another member): node 1 refuses the calls meant for node 2
/// with a clear error instead of feeding its own Raft messages to itself, and
/// nodes 1 and 3 (a majority of three) elect a leader and commit writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_address_leading_to_the_wrong_member_is_refused_not_fatal() {
    let probe = |id| std::net::TcpListener::bind((node_ip(id), 0)).unwrap();
    let (one, three) = (probe(1), probe(3));
    let addr1 = one.local_addr().unwrap();
    let addr3 = three.local_addr().unwrap();
    drop((one, three));
    let peers: std::collections::BTreeMap<u64, String> = [
        (1, addr1.to_string()),
        (2, addr1.to_string()),
        (3, addr3.to_string()),
    ]
    .into();
    let config = |id: u64, addr| {
        test_timing(
            NodeConfig::new(id, addr)
                .with_outbound_ip(node_ip(id))
                .with_peers(peers.clone())
                .with_secret(SECRET),
        )
    };
    let node1 = RaftNode::start(config(1, addr1)).await.expect("node 1");
    let node3 = RaftNode::start(config(3, addr3)).await.expect("node 3");
    let leader = node1
        .wait_for_leader(LEADER_WAIT)
        .await
        .expect("nodes 1 and 3 elect a leader");
    let leader_node = if leader == 1 { &node1 } else { &node3 };
    let id = new_id();
    let committed = leader_node
        .store()
        .create(&id, new_session(1))
        .await
        .expect("a majority commits");
    // Heartbeats and replication to "node 2" keep reaching node 1 for a
    // while; both nodes must stay alive and serve.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in [&node1, &node3] {
        let status = node.status();
        assert_eq!(status.leader_id, Some(leader), "{status:?}");
        let record = node
            .store()
            .load(&id, committed.token, now())
            .await
            .expect("served")
            .expect("present");
        assert_eq!(record.version, committed.version);
    }
    node1.shutdown().await.expect("node 1 stops cleanly");
    node3.shutdown().await.expect("node 3 stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_member_stops_serving_a_logged_out_session_within_its_lease() {
    const LEASE: Duration = Duration::from_secs(1);
    let cluster = TestCluster::start(3, false, |c| {
        c.with_read_lease(LEASE)
            .with_read_wait(Duration::from_millis(300))
    })
    .await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let cut = followers[0];
    let id = new_id();
    let created = cluster
        .node(leader)
        .store()
        .create(&id, new_session(1))
        .await
        .unwrap();
    let seen = cluster
        .node(cut)
        .store()
        .load(&id, created.token, now())
        .await
        .unwrap();
    assert!(seen.is_some());

    cluster.cut(cut);
    let cut_at = Instant::now();
    // Logout, committed by the majority.
    cluster.node(leader).store().delete(&id).await.unwrap();

    // The cut member answers from its old state (the session, still logged
    // in) only until its lease runs out; then it refuses.
    let refused_after = eventually(LEASE * 3, "the cut-off member refuses reads", || async {
        match cluster
            .node(cut)
            .store()
            .load(&id, ConsistencyToken::NONE, now())
            .await
        {
            Err(StoreError::Unavailable { .. }) => Some(cut_at.elapsed()),
            Ok(Some(_)) => None,
            other => panic!("unexpected read result {other:?}"),
        }
    })
    .await;
    // The load itself may wait `read_wait` for a leader that never answers.
    assert!(
        refused_after <= LEASE + Duration::from_millis(300) + Duration::from_millis(500),
        "served a logged-out session {refused_after:?} after the cut (lease {LEASE:?})"
    );
    for _ in 0..3 {
        let again = cluster
            .node(cut)
            .store()
            .load(&id, ConsistencyToken::NONE, now())
            .await;
        assert!(
            matches!(again, Err(StoreError::Unavailable { .. })),
            "{again:?}"
        );
    }

    // Healed, it hears from the leader again and knows the logout.
    cluster.heal(cut);
    eventually(Duration::from_secs(10), "the logout reaches it", || async {
        matches!(
            cluster
                .node(cut)
                .store()
                .load(&id, ConsistencyToken::NONE, now())
                .await,
            Ok(None)
        )
        .then_some(())
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_moved_by_a_login_or_deleted_by_a_logout_is_superseded_on_every_node() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let (old, deleted) = (new_id(), new_id());
    let store = cluster.node(followers[0]).store();
    store.create(&old, new_session(1)).await.unwrap();
    store.create(&deleted, new_session(2)).await.unwrap();
    let moved = ChangeSet {
        rotate_to: Some(new_id()),
        ..ChangeSet::default()
    };
    store.apply(&old, moved, now()).await.unwrap();
    let last = store.delete(&deleted).await.unwrap();
    for node in [leader, followers[0], followers[1]] {
        for id in [&old, &deleted] {
            let read = cluster.node(node).store().load(id, last.token, now()).await;
            assert_eq!(read, Err(StoreError::Superseded), "node {node}");
        }
        // An id nobody ever used is simply not found.
        let never = cluster
            .node(node)
            .store()
            .load(&new_id(), last.token, now())
            .await;
        assert_eq!(never, Ok(None));
    }
    cluster.shutdown().await;
}
