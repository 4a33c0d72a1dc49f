//! A follower under load forwards its writes in batches that grow with
//! the load: 64 writers through one follower make batches of many writes,
//! not one RPC per write.

mod common;

use std::time::Duration;

use common::{new_id, new_session, TestCluster};
use session_core::SessionStore;

const LEADER_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_writers_through_a_follower_make_big_batches() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (_leader, followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(followers[0]).store();
    // Warm the connection to the leader so that the burst measures batching,
    // not connecting.
    store.create(&new_id(), new_session(0)).await.unwrap();
    let before = session_raft::internals::forward_batch_sizes().len();

    let writers: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    store.create(&new_id(), new_session(n)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let mut sizes = session_raft::internals::forward_batch_sizes()[before..].to_vec();
    assert!(
        sizes.iter().sum::<usize>() >= 640,
        "every write forwarded: {sizes:?}"
    );
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    eprintln!("forwarded batch sizes: {sizes:?}");
    assert!(
        median >= 16,
        "batches stayed small under load: median {median} of {sizes:?}"
    );
    cluster.shutdown().await;
}
