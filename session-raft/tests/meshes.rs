//! Two meshes of three nodes each, in one process on loopback: sessions of one
//! mesh are read and written through the other's nodes, a mesh that loses its
//! majority takes only its own sessions down, each mesh's log holds only its
//! own sessions, and ids of unknown meshes find nothing.
//!
//! Mesh `a` is nodes 1-3, mesh `b` nodes 4-6. Raft traffic inside a mesh
//! goes through the test proxies; the directory lists the nodes' own ports,
//! so a stopped member refuses connections as a dead host would.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;
use openraft::storage::RaftLogReader;
use session_core::{ChangeSet, Committed, MeshTag, SessionId, SessionStore, StoreError};
use session_raft::internals::types::EntryPayload;
use session_raft::internals::LogStore;
use session_raft::{MeshDirectory, NodeConfig};

const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Counts every counter by name and labels, as `name{k=v,...}`; installed
/// once for the whole test binary (metrics has one global recorder), so
/// counts include every test's calls and are checked as lower bounds.
#[derive(Default)]
struct CountingRecorder {
    counters: parking_lot::Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl CountingRecorder {
    fn global() -> &'static CountingRecorder {
        static RECORDER: OnceLock<&'static CountingRecorder> = OnceLock::new();
        RECORDER.get_or_init(|| {
            let recorder: &'static CountingRecorder = Box::leak(Box::default());
            metrics::set_global_recorder(recorder).expect("no other recorder");
            recorder
        })
    }

    fn count(&self, key: &str) -> u64 {
        self.counters
            .lock()
            .get(key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let counter = self.counters.lock().entry(name).or_default().clone();
        metrics::Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn tag(name: &str) -> MeshTag {
    MeshTag::new(name).unwrap()
}

struct Meshes {
    a: TestCluster,
    b: TestCluster,
}

impl Meshes {
    /// Starts both meshes and waits for each to elect a leader.
    async fn start(durable: bool, tune: fn(NodeConfig) -> NodeConfig) -> Meshes {
        let mut a = TestCluster::prepare(1..=3, durable, tune).await;
        let mut b = TestCluster::prepare(4..=6, durable, tune).await;
        let mut directory = MeshDirectory::new();
        directory.insert(tag("a"), a.fix_ports().await).unwrap();
        directory.insert(tag("b"), b.fix_ports().await).unwrap();
        a.mesh = Some((tag("a"), directory.clone()));
        b.mesh = Some((tag("b"), directory));
        a.start_all().await;
        b.start_all().await;
        a.leader(LEADER_WAIT).await;
        b.leader(LEADER_WAIT).await;
        Meshes { a, b }
    }

    /// The cluster node `id` belongs to.
    fn cluster(&self, id: u64) -> &TestCluster {
        if id <= 3 {
            &self.a
        } else {
            &self.b
        }
    }

    fn store(&self, id: u64) -> session_raft::RaftStore {
        self.cluster(id).node(id).store()
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

fn set_value(value: u64) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set("v".into(), value.to_le_bytes().to_vec());
    changes
}

/// Creates a session through node `via` with an id minted the way the layer
/// mints them: tagged with that node's mesh.
async fn create_via(meshes: &Meshes, via: u64, value: u64) -> (SessionId, Committed) {
    let store = meshes.store(via);
    let id = SessionId::generate(store.mesh_tag()).unwrap();
    let committed = store
        .create(&id, new_session(value))
        .await
        .unwrap_or_else(|e| panic!("create through node {via}: {e}"));
    (id, committed)
}

async fn value_via(meshes: &Meshes, via: u64, id: &SessionId, token: Committed) -> u64 {
    let record = meshes
        .store(via)
        .load(id, token.token, now())
        .await
        .unwrap_or_else(|e| panic!("load through node {via}: {e}"))
        .unwrap_or_else(|| panic!("session missing through node {via}"));
    assert!(record.version >= token.version);
    value_of(&record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_one_mesh_are_served_through_every_node_of_the_other() {
    let recorder = CountingRecorder::global();
    let meshes = Meshes::start(false, |c| c).await;
    for id in 1..=6u64 {
        let expected = if id <= 3 { "a" } else { "b" };
        let node = meshes.cluster(id).node(id);
        assert_eq!(node.status().mesh.as_deref(), Some(expected));
        assert_eq!(node.store().mesh_tag(), Some(tag(expected)));
    }

    // One session created through each node of mesh a.
    let mut sessions = Vec::new();
    for via in 1..=3u64 {
        let (id, committed) = create_via(&meshes, via, via * 10).await;
        assert_eq!(id.mesh(), Some(tag("a")));
        sessions.push((id, committed, via * 10));
    }

    // Every node of mesh b reads each one with its token, writes it, and the
    // write is seen through another b node and through mesh a.
    for via in 4..=6u64 {
        for (id, committed, value) in sessions.iter_mut() {
            assert_eq!(value_via(&meshes, via, id, *committed).await, *value);
            *value += via;
            *committed = meshes
                .store(via)
                .apply(id, set_value(*value), now())
                .await
                .unwrap_or_else(|e| panic!("apply through node {via}: {e}"));
            let other_b = 4 + (via - 3) % 3;
            assert_eq!(value_via(&meshes, other_b, id, *committed).await, *value);
            for a in 1..=3 {
                assert_eq!(value_via(&meshes, a, id, *committed).await, *value);
            }
        }
    }

    // A create through mesh b for an id of mesh a lands in mesh a.
    let id = SessionId::generate(Some(tag("a"))).unwrap();
    let created = meshes.store(5).create(&id, new_session(77)).await.unwrap();
    assert_eq!(value_via(&meshes, 2, &id, created).await, 77);
    assert_eq!(
        meshes.store(6).create(&id, new_session(1)).await,
        Err(StoreError::IdExists),
        "mesh a's verdict comes back through mesh b"
    );

    // Rotation through mesh b keeps the session in mesh a ...
    let (rotated_id, _, value) = sessions[0];
    let new_id = SessionId::generate(rotated_id.mesh()).unwrap();
    let mut rotate = set_value(value + 1);
    rotate.rotate_to = Some(new_id);
    let rotated = meshes
        .store(4)
        .apply(&rotated_id, rotate, now())
        .await
        .unwrap();
    assert_eq!(value_via(&meshes, 1, &new_id, rotated).await, value + 1);
    // The old id is gone, and said to be moved moments ago.
    assert_eq!(
        meshes
            .store(3)
            .load(&rotated_id, rotated.token, now())
            .await,
        Err(StoreError::Superseded)
    );
    // ... and is refused when the new id names another mesh, which would
    // strand the session where no request for it is routed.
    let mut stranded = set_value(0);
    stranded.rotate_to = Some(SessionId::generate(Some(tag("b"))).unwrap());
    assert!(matches!(
        meshes.store(4).apply(&new_id, stranded, now()).await,
        Err(StoreError::Backend(_))
    ));

    // Delete through mesh b; mesh a no longer has it.
    let deleted = meshes.store(6).delete(&new_id).await.unwrap();
    assert_eq!(
        meshes.store(1).load(&new_id, deleted.token, now()).await,
        Err(StoreError::Superseded),
        "gone, moments ago"
    );
    assert_eq!(
        meshes.store(5).apply(&new_id, set_value(1), now()).await,
        Err(StoreError::NotFound)
    );

    // /metrics counts the forwards by operation (the counts are global to
    // this test binary, hence lower bounds).
    let forwards = |op: &str| {
        recorder.count(&format!(
            "session_raft_cross_mesh_forwards_total{{op={op}}}"
        ))
    };
    // Two loads and one apply per (b node, session), then the rotation and
    // the apply that found nothing.
    assert!(forwards("load") >= 18, "loads: {}", forwards("load"));
    assert!(forwards("apply") >= 9 + 2, "applies: {}", forwards("apply"));
    assert!(forwards("create") >= 2);
    assert!(forwards("delete") >= 1);
    meshes.shutdown().await;
}

/// Shorter bounds, so that writes to a mesh without quorum fail quickly.
fn quick_failure(config: NodeConfig) -> NodeConfig {
    config
        .with_write_timeout(Duration::from_secs(3))
        .with_read_wait(Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_majority_of_one_mesh_leaves_the_other_meshs_sessions_available() {
    let recorder = CountingRecorder::global();
    let mut meshes = Meshes::start(false, quick_failure).await;
    let (a_id, a_token) = create_via(&meshes, 1, 1).await;
    let (b_id, b_token) = create_via(&meshes, 4, 2).await;
    // Every b node has applied its session before two of them go.
    for via in 4..=6 {
        assert_eq!(value_via(&meshes, via, &b_id, b_token).await, 2);
    }

    // Mesh b loses its leader and one follower; node `survivor` is left alone.
    let (b_leader, b_followers) = meshes.b.followers(LEADER_WAIT).await;
    let survivor = b_followers[1];
    meshes.b.crash_node(b_leader).await;
    meshes.b.crash_node(b_followers[0]).await;

    // Mesh a's session stays fully available through mesh a and through the
    // lone b node, which needs no quorum of its own mesh to forward.
    let mut token = a_token;
    for (round, via) in [1, 2, 3, survivor, survivor].into_iter().enumerate() {
        assert_eq!(
            value_via(&meshes, via, &a_id, token).await,
            round as u64 + 1
        );
        token = meshes
            .store(via)
            .apply(&a_id, set_value(round as u64 + 2), now())
            .await
            .unwrap_or_else(|e| panic!("apply to mesh a through node {via}: {e}"));
    }
    let (new_a, created) = {
        let id = SessionId::generate(Some(tag("a"))).unwrap();
        let created = meshes
            .store(survivor)
            .create(&id, new_session(9))
            .await
            .expect("create in mesh a through the lone b node");
        (id, created)
    };
    assert_eq!(value_via(&meshes, 3, &new_a, created).await, 9);

    // Mesh b's own session cannot be written, through b or through a: the
    // answer is Unavailable, never a success.
    for via in [survivor, 1, 2] {
        match meshes.store(via).apply(&b_id, set_value(3), now()).await {
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("write to mesh b through node {via} gave {other:?}"),
        }
    }
    assert!(recorder.count("session_raft_cross_mesh_forward_failures_total{op=apply}") >= 2);
    // Its reads may still be served by the lone b node, which has applied the
    // token, but never with other data.
    for via in [survivor, 3] {
        match meshes.store(via).load(&b_id, b_token.token, now()).await {
            Ok(Some(record)) => assert_eq!(value_of(&record), 2),
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("read of mesh b through node {via} gave {other:?}"),
        }
    }
    meshes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_fails_over_to_the_live_members_of_the_owning_mesh() {
    let mut meshes = Meshes::start(false, |c| c).await;
    let (id, mut token) = create_via(&meshes, 1, 0).await;
    let (_, a_followers) = meshes.a.followers(LEADER_WAIT).await;
    meshes.a.crash_node(a_followers[0]).await;
    // Each call starts at the next member in turn, so some of these start
    // at the stopped one and must move on to a live member.
    let mut value = 0;
    for via in [4, 5, 6, 4, 5, 6] {
        assert_eq!(value_via(&meshes, via, &id, token).await, value);
        value += 1;
        token = meshes
            .store(via)
            .apply(&id, set_value(value), now())
            .await
            .unwrap_or_else(|e| panic!("apply through node {via} with a member down: {e}"));
    }
    meshes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_meshs_log_holds_only_its_own_sessions() {
    let mut meshes = Meshes::start(true, |c| c).await;
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    // Sessions of each mesh created and changed through both meshes' nodes.
    for via in 1..=6u64 {
        let (id, committed) = create_via(&meshes, via, via).await;
        let writer = 7 - via; // a node of the other mesh
        let changed = meshes
            .store(writer)
            .apply(&id, set_value(via * 100), now())
            .await
            .unwrap();
        assert_eq!(value_via(&meshes, via, &id, changed).await, via * 100);
        assert!(changed.token.index > committed.token.index);
        (if via <= 3 { &mut a_ids } else { &mut b_ids }).push(id);
        let other = SessionId::generate(Some(tag(if via <= 3 { "b" } else { "a" }))).unwrap();
        meshes
            .store(via)
            .create(&other, new_session(via))
            .await
            .unwrap();
        (if via <= 3 { &mut b_ids } else { &mut a_ids }).push(other);
    }
    // Every member of a mesh holds exactly its mesh's sessions.
    for (cluster, ids) in [(&meshes.a, &a_ids), (&meshes.b, &b_ids)] {
        for node in cluster.running() {
            eventually(
                LEADER_WAIT,
                "every member applied its mesh's writes",
                || async { (cluster.node(node).status().session_count == ids.len()).then_some(()) },
            )
            .await;
        }
    }

    // The logs, read from disk once the nodes are down: every session
    // command of a mesh's log is about a session of that mesh.
    for id in 1..=6u64 {
        let cluster = if id <= 3 {
            &mut meshes.a
        } else {
            &mut meshes.b
        };
        cluster.crash_node(id).await;
    }
    for id in 1..=6u64 {
        let (cluster, mesh, ids) = if id <= 3 {
            (&meshes.a, tag("a"), &a_ids)
        } else {
            (&meshes.b, tag("b"), &b_ids)
        };
        let dir = cluster.data_dir(id).unwrap().join("log");
        let mut log = LogStore::open(&dir).unwrap();
        let entries = log.try_get_log_entries(..).await.unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for entry in entries {
            if let EntryPayload::Normal(command) = entry.payload {
                if let Some(session) = command.session_id() {
                    assert_eq!(session.mesh(), Some(mesh), "node {id} logged {command}");
                    seen.insert(*session);
                }
            }
        }
        let expected: std::collections::BTreeSet<SessionId> = ids.iter().copied().collect();
        assert_eq!(seen, expected, "node {id}'s log has its mesh's sessions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_an_unknown_mesh_find_nothing() {
    let meshes = Meshes::start(false, |c| c).await;
    let id = SessionId::generate(Some(tag("zz"))).unwrap();
    for via in [1, 5] {
        let store = meshes.store(via);
        let token = session_core::ConsistencyToken::new(0, 1);
        assert!(store.load(&id, token, now()).await.unwrap().is_none());
        assert_eq!(
            store.apply(&id, set_value(1), now()).await,
            Err(StoreError::NotFound)
        );
        assert!(store.delete(&id).await.is_ok(), "deleting nothing succeeds");
        assert!(matches!(
            store.create(&id, new_session(1)).await,
            Err(StoreError::Backend(_))
        ));
    }
    meshes.shutdown().await;
}

/// The session limit is the owning mesh's: mesh `a` holds at most 2, mesh
/// `b` has no limit. A create forwarded to the other mesh is re-stamped by
/// the receiver, so neither the sender's limit nor its absence leaks across.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mesh_enforces_its_own_session_limit() {
    let meshes = Meshes::start(false, |c| {
        if c.mesh == Some(tag("a")) {
            c.with_max_sessions(2)
        } else {
            c
        }
    })
    .await;
    create_via(&meshes, 1, 1).await;
    create_via(&meshes, 2, 2).await;
    let full = |result: Result<Committed, StoreError>, what: &str| match result {
        Err(StoreError::Unavailable { reason, .. }) if reason.contains("full") => {}
        other => panic!("{what}: {other:?}"),
    };
    // Mesh a is full, whichever mesh's node proposes the create.
    let a_id = || SessionId::generate(Some(tag("a"))).unwrap();
    full(
        meshes.store(3).create(&a_id(), new_session(3)).await,
        "through a",
    );
    full(
        meshes.store(4).create(&a_id(), new_session(4)).await,
        "through b (no limit of its own)",
    );
    // Mesh b is not limited by mesh a's nodes' setting.
    for via in [1, 2, 3] {
        let id = SessionId::generate(Some(tag("b"))).unwrap();
        meshes
            .store(via)
            .create(&id, new_session(via))
            .await
            .unwrap_or_else(|e| panic!("b session through node {via}: {e}"));
    }
    meshes.shutdown().await;
}

/// Mesh b's peer list sends its node 2's traffic to mesh a's node 2 (a typo,
/// or an address reused across meshes): the node ids match, the groups do
/// not. Mesh a's node 2 refuses b's calls, and both meshes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_address_leading_into_another_mesh_is_refused_not_obeyed() {
    let mut a = TestCluster::prepare(1..=3, false, |c| c).await;
    let mut b = TestCluster::prepare(1..=3, false, |c| c).await;
    let mut directory = MeshDirectory::new();
    directory.insert(tag("a"), a.fix_ports().await).unwrap();
    directory.insert(tag("b"), b.fix_ports().await).unwrap();
    a.mesh = Some((tag("a"), directory.clone()));
    b.mesh = Some((tag("b"), directory));
    b.peers.insert(2, a.proxies[&2].addr.to_string());
    a.start_all().await;
    b.start_all().await;
    let leader_a = a.leader(LEADER_WAIT).await;
    let cluster_a = eventually(LEADER_WAIT, "mesh a's cluster id", || async {
        a.node(2).cluster_id()
    })
    .await;

    // Mesh b elects among its two reachable members and commits.
    let leader_b = eventually(LEADER_WAIT, "a leader in mesh b", || async {
        [1, 3]
            .into_iter()
            .find(|id| b.node(*id).status().role == session_raft::Role::Leader)
    })
    .await;
    let in_b = SessionId::generate(Some(tag("b"))).unwrap();
    b.node(leader_b)
        .store()
        .create(&in_b, new_session(2))
        .await
        .expect("mesh b commits with its majority");

    // Mesh a is untouched, its node 2 included, through many rounds of
    // b's heartbeats and elections aimed at it.
    let in_a = SessionId::generate(Some(tag("a"))).unwrap();
    a.node(leader_a)
        .store()
        .create(&in_a, new_session(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in 1..=3 {
        let status = a.node(id).status();
        assert_eq!(status.leader_id, Some(leader_a), "node {id} of mesh a");
        assert_eq!(
            a.node(id).cluster_id(),
            Some(cluster_a),
            "node {id} of mesh a"
        );
    }
    let mut changes = ChangeSet::default();
    changes.set("v".into(), 5u64.to_le_bytes().to_vec());
    a.node(2)
        .store()
        .apply(&in_a, changes, now())
        .await
        .expect("mesh a's node 2 still writes");
    let record = a
        .node(leader_a)
        .store()
        .load(&in_a, session_core::ConsistencyToken::NONE, now())
        .await
        .unwrap()
        .expect("mesh a's session");
    assert_eq!(value_of(&record), 5);
    let mut changes = ChangeSet::default();
    changes.set("v".into(), 6u64.to_le_bytes().to_vec());
    b.node(leader_b)
        .store()
        .apply(&in_b, changes, now())
        .await
        .expect("mesh b still writes");
    a.shutdown().await;
    b.shutdown().await;
}
