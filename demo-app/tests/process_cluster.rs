//! The real binary as three OS processes: a session written through node 1 is
//! read through nodes 2 and 3; the leader is SIGKILLed; the counter is intact,
//! writes continue, and the killed node rejoins from its data directory.

mod common;

use common::{client, eventually, ProcessCluster};
use serde_json::Value;

async fn counter(client: &reqwest::Client, url: &str, method: &str) -> Option<Value> {
    let request = match method {
        "POST" => client.post(format!("{url}/api/counter")),
        _ => client.get(format!("{url}/api/counter")),
    };
    let response = request.send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

/// The value of gauge `name` for `node` in a Prometheus text page.
fn gauge(page: &str, name: &str, node: u64) -> Option<u64> {
    let prefix = format!("{name}{{node=\"{node}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
}

/// `Some` once node `id`'s applied and commit gauges equal its status.
async fn gauges_match_status(http: &reqwest::Client, url: &str, id: u64) -> Option<()> {
    let status: Value = http
        .get(format!("{url}/cluster/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let page = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let applied = gauge(&page, "session_raft_applied_index", id)?;
    let committed = gauge(&page, "session_raft_commit_index", id)?;
    (Some(applied) == status["applied_index"].as_u64()
        && Some(committed) == status["committed_index"].as_u64()
        && applied >= 5)
        .then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_sigkill_of_the_leader() {
    let mut cluster = ProcessCluster::start(3).await;
    let http = client();
    let url1 = cluster.node(1).url();

    for expected in 1..=5u64 {
        let v = counter(&http, &url1, "POST")
            .await
            .expect("increment through node 1");
        assert_eq!(v["count"], expected);
        assert_eq!(v["node"], "node-1");
    }
    // The cookie carries the consistency token of the last write, so nodes 2
    // and 3 answer with it applied: no stale read, no retry loop needed.
    for id in [2, 3] {
        let url = cluster.node(id).url();
        let v = counter(&http, &url, "GET").await.expect("read");
        assert_eq!(v["count"], 5, "read through node {id}");
        assert_eq!(v["node"], format!("node-{id}"));
    }

    // Idle now: every node's /metrics gauges agree with its own status (they
    // used to stay at an old index on an idle follower).
    for id in 1..=3 {
        let url = cluster.node(id).url();
        eventually("metrics that match the status", || {
            gauges_match_status(&http, &url, id)
        })
        .await;
    }

    let leader = cluster.leader().await;
    cluster.node(leader).kill();
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();

    for id in &survivors {
        let url = cluster.node(*id).url();
        let v = eventually("read after leader death", || counter(&http, &url, "GET")).await;
        assert_eq!(
            v["count"], 5,
            "acknowledged increments survive on node {id}"
        );
    }
    let url = cluster.node(survivors[0]).url();
    let v = eventually("write after leader death", || counter(&http, &url, "POST")).await;
    assert_eq!(v["count"], 6);
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader, "a survivor took over");
    let url = cluster.node(survivors[1]).url();
    let v = counter(&http, &url, "POST").await.expect("second write");
    assert_eq!(v["count"], 7);

    // The killed node restarts from its data directory and serves the session.
    cluster.node(leader).spawn();
    let restarted = cluster.node(leader).url();
    let v = eventually("read on restarted node", || {
        counter(&http, &restarted, "GET")
    })
    .await;
    assert_eq!(v["count"], 7, "restarted node caught up");
}
