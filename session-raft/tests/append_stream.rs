//! The replication stream a leader keeps to each follower:
//!
//! - appends are pipelined: with a slow answer path, many are sent and
//!   unanswered at once on one stream;
//! - the stream passes the same checks as any call (secret, target), and a
//!   malformed frame is refused with the stream closed and the node alive;
//! - a stream to a restarted follower reconnects and replication resumes.

mod common;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, new_id, new_session, now, TestCluster, SECRET};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use session_core::{ConsistencyToken, SessionStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LEADER_WAIT: Duration = Duration::from_secs(10);

/// A TCP proxy to `target` that passes bytes from the target back to the
/// client `delay` late (a long answer path), and the other way at once.
async fn slow_answers(target: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let (chunks, mut delayed) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = out_read.read(&mut buf).await {
                        if n == 0
                            || chunks
                                .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                                .is_err()
                        {
                            return;
                        }
                    }
                });
                while let Some((read_at, chunk)) = delayed.recv().await {
                    tokio::time::sleep_until(read_at + delay).await;
                    if in_write.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A session created on `leader` is readable on `follower` at its token.
async fn assert_replicates(cluster: &TestCluster, leader: u64, follower: u64, n: u64) {
    let id = new_id();
    let committed = cluster
        .node(leader)
        .store()
        .create(&id, new_session(n))
        .await
        .unwrap();
    let record = cluster
        .node(follower)
        .store()
        .load(&id, committed.token, now())
        .await
        .unwrap();
    assert!(
        record.is_some(),
        "node {follower} lacks a write of node {leader}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_to_a_follower_are_pipelined_on_one_stream() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    // Both followers answer 30 ms late, so every commit waits for a slow
    // answer; meanwhile writes keep arriving and must not wait in line.
    for follower in &followers {
        let slow = slow_answers(
            cluster.node(*follower).cluster_addr(),
            Duration::from_millis(30),
        )
        .await;
        cluster.proxies[follower].set_target(slow);
    }
    // Writes arrive on a clock (one every 2 ms, each its own task), not
    // when earlier ones are answered: writers that each wait for their
    // commit fall into step with the 30 ms round trip and arrive as one
    // batch per trip, which a stream that does not pipeline also carries.
    let store = cluster.node(leader).store();
    let mut writes = Vec::new();
    let mut clock = tokio::time::interval(Duration::from_millis(2));
    for _ in 0..150 {
        clock.tick().await;
        let store = store.clone();
        writes.push(tokio::spawn(async move {
            store.create(&new_id(), new_session(1)).await.unwrap();
        }));
    }
    for write in writes {
        write.await.unwrap();
    }
    let peak = session_raft::internals::append_stream_peak_in_flight();
    eprintln!("peak appends in flight: {peak}");
    assert!(
        peak >= 3,
        "appends waited in line: at most {peak} were in flight at once"
    );
    cluster.shutdown().await;
}

/// Opens a replication stream to `addr` with `authorization` and `to`, sends
/// `first` as its first bytes and keeps the body open; returns the answer's
/// status and, for a `200`, the answer body read to its end (or to a 5 s
/// bound).
async fn open_stream(
    addr: SocketAddr,
    authorization: &str,
    to: u64,
    first: Vec<u8>,
) -> (u16, Option<Vec<u8>>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let (feed, frames) = futures::channel::mpsc::unbounded::<Bytes>();
    feed.unbounded_send(Bytes::from(first)).unwrap();
    let body = StreamBody::new(frames.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let request = http::Request::post(format!("http://{addr}/raft/append-stream"))
        .header("authorization", authorization)
        .header("x-raft-sessions-to", to.to_string())
        .body(body)
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let answer = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the follower must close a stream it refused")
        .map(|body| body.to_bytes().to_vec())
        .unwrap_or_default();
    drop(feed);
    (status, Some(answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_checked_and_a_malformed_frame_closes_it_not_the_node() {
    let cluster = TestCluster::start(3, false, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let follower = followers[0];
    let addr = cluster.node(follower).cluster_addr();
    let good: String = format!(
        "Bearer {}",
        SECRET
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    let (status, _) = open_stream(addr, "Bearer 00ff", follower, vec![]).await;
    assert_eq!(status, 401, "the stream needs the cluster secret");
    let (status, _) = open_stream(addr, &good, leader, vec![]).await;
    assert_eq!(status, 421, "a stream meant for another member is refused");

    // A frame claiming more than the body limit, and one that is garbage.
    let mut huge = (u32::MAX).to_le_bytes().to_vec();
    huge.extend_from_slice(&[0; 16]);
    let mut garbage = 9u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 9]);
    for frame in [huge, garbage] {
        let (status, answer) = open_stream(addr, &good, follower, frame).await;
        assert_eq!(status, 200);
        let answer = answer.unwrap();
        assert_eq!(
            session_raft::internals::decode_append_answer(&answer),
            Ok("refused"),
            "{answer:?}"
        );
    }

    // The follower is alive and still replicating.
    assert_replicates(&cluster, leader, follower, 7).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_to_a_restarted_follower_reconnects() {
    let mut cluster = TestCluster::start(3, true, |c| c).await;
    let (leader, followers) = cluster.followers(LEADER_WAIT).await;
    let follower = followers[0];
    let store = cluster.node(leader).store();
    store.create(&new_id(), new_session(1)).await.unwrap();
    cluster.crash_node(follower).await;
    // Written while it is down: it must get these over a new stream.
    let mut ids = Vec::new();
    for n in 0..20 {
        let id = new_id();
        store.create(&id, new_session(n)).await.unwrap();
        ids.push(id);
    }
    cluster.start_node(follower).await;
    let last = *ids.last().unwrap();
    eventually(
        Duration::from_secs(10),
        "the restarted follower catches up",
        || {
            let store = cluster.node(follower).store();
            async move {
                store
                    .load(&last, ConsistencyToken::NONE, now())
                    .await
                    .ok()
                    .flatten()
            }
        },
    )
    .await;
    // And keeps up with new writes.
    assert_replicates(&cluster, leader, follower, 99).await;
    cluster.shutdown().await;
}
