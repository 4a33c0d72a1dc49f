//! The leader proposes its own writes in batches that grow with the load:
//! 64 writers on the leader's store make batches of many entries, not one
//! `client_write` each.

mod common;

use std::time::Duration;

use common::{new_id, new_session, TestCluster};
use session_core::SessionStore;

const LEADER_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_writers_on_the_leader_make_big_batches() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, _followers) = cluster.followers(LEADER_WAIT).await;
    let store = cluster.node(leader).store();
    store.create(&new_id(), new_session(0)).await.unwrap();
    let before = session_raft::internals::proposal_batch_sizes().len();

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

    let mut sizes = session_raft::internals::proposal_batch_sizes()[before..].to_vec();
    assert_eq!(
        sizes.iter().sum::<usize>(),
        640,
        "every write proposed once, through the batches: {sizes:?}"
    );
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    eprintln!("proposal batch sizes: {sizes:?}");
    // One proposal per batch would be a median of 1; on a quiet machine it
    // is about 28, while other tests share the two cores it was 12.
    assert!(
        median >= 4,
        "batches stayed small under load: median {median} of {sizes:?}"
    );
    cluster.shutdown().await;
}
