//! Writes go to openraft in batches that grow with the load: 64 writers
//! through one follower make forwarded batches of many writes, not one RPC
//! per write, and a second batch goes while one is out only once it is a
//! big one; 64 writers on the leader make proposal batches of many
//! entries, not one `client_write` each.

mod common;

use std::time::Duration;

use common::{new_id, new_session, TestCluster};
use session_core::SessionStore;
use session_raft::RaftStore;

const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Sessions each writer creates: enough that the batches of the steady
/// load outnumber the small ones while the writers start and finish.
const PER_WRITER: usize = 20;
/// All the writes of one burst.
const WRITES: usize = 64 * PER_WRITER;

/// 64 writers creating [`PER_WRITER`] sessions each through `store`, after
/// one warm-up create (so that the burst measures batching, not
/// connecting). Returns
/// the sizes `sizes_now` gained meanwhile, sorted, and their median.
async fn burst(store: RaftStore, sizes_now: fn() -> Vec<usize>) -> (Vec<usize>, usize) {
    store.create(&new_id(), new_session(0)).await.unwrap();
    let before = sizes_now().len();
    let writers: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..PER_WRITER {
                    store.create(&new_id(), new_session(n)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut sizes = sizes_now()[before..].to_vec();
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    (sizes, median)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_writers_through_a_follower_make_big_batches() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (_leader, followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(followers[0]).store();
    let overlapping_before = session_raft::internals::forward_overlapping_batch_sizes().len();
    let (sizes, median) = burst(store, session_raft::internals::forward_batch_sizes).await;
    let overlapping =
        session_raft::internals::forward_overlapping_batch_sizes()[overlapping_before..].to_vec();
    eprintln!("forwarded batch sizes: {sizes:?}; sent while another was out: {overlapping:?}");
    assert!(
        sizes.iter().sum::<usize>() >= WRITES,
        "every write forwarded: {sizes:?}"
    );
    assert!(
        median >= 16,
        "batches stayed small under load: median {median} of {sizes:?}"
    );
    // Writes that queue behind a batch in flight do not all wait for it to
    // come back: once there are enough of them they go as a second batch,
    // and only then, so that overlapping batches are big ones too.
    assert!(
        !overlapping.is_empty(),
        "no batch went while another was out: {sizes:?}"
    );
    assert!(
        overlapping.iter().all(|&n| n >= 16),
        "a small batch went while another was out: {overlapping:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_writers_on_the_leader_make_big_batches() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, _followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(leader).store();
    let (sizes, median) = burst(store, session_raft::internals::proposal_batch_sizes).await;
    eprintln!("proposal batch sizes: {sizes:?}");
    assert_eq!(
        sizes.iter().sum::<usize>(),
        WRITES,
        "every write proposed once, through the batches: {sizes:?}"
    );
    // One proposal per batch would be a median of 1; on a quiet machine it
    // is about 28, while other tests share the two cores it was 12.
    assert!(
        median >= 4,
        "batches stayed small under load: median {median} of {sizes:?}"
    );
    cluster.shutdown().await;
}
