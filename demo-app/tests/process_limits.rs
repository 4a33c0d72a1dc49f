//! The real binary as a one-node cluster process, started with
//! `RS_MAX_SESSIONS` in its environment (the `--max-sessions` flag):
//!
//! - a client creating sessions as fast as it can (a bounded loop, no
//!   cookies kept) gets 200 for the first N and 503 with `Retry-After`
//!   after; the node never holds more than N sessions, and an existing
//!   session keeps working;
//! - cluster RPCs without the secret or with a wrong one get 401, the node's
//!   log says so, and neither the log nor `/cluster/status` contains the
//!   real or the presented secret;
//! - `/metrics` counts the flood's requests (`demo_requests_total`).
//!
//! One test per binary: the environment variable is set for this process.

mod common;

use common::ProcessCluster;
use serde_json::Value;

const MAX: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sessions_flag_caps_a_flood_and_secrets_stay_out_of_logs_and_status() {
    // Inherited by the node process (clap reads RS_* variables); nothing
    // else in this binary reads the environment concurrently.
    std::env::set_var("RS_MAX_SESSIONS", MAX.to_string());
    let mut cluster = ProcessCluster::start(1).await;
    let url = cluster.node(1).url();
    // No cookie jar: every request asks for a new session.
    let http = reqwest::Client::new();

    let mut created = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let response = http
            .post(format!("{url}/api/counter"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => created.push(
                response.headers()["set-cookie"]
                    .to_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_owned(),
            ),
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert!(response.headers().get("set-cookie").is_none());
                refused += 1;
            }
            other => panic!("flood got {other}; log:\n{}", cluster.node(1).log_tail()),
        }
    }
    assert_eq!(created.len() as u64, MAX);
    assert_eq!(refused, 60 - MAX as usize);
    let status: Value = http
        .get(format!("{url}/cluster/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["session_count"], MAX, "{status}");
    // An existing session still counts on.
    let response = http
        .post(format!("{url}/api/counter"))
        .header("cookie", &created[0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["count"], 2, "{view}");

    // The cluster port refuses calls without the right secret.
    let secret = std::fs::read_to_string(cluster.dir.path().join("cluster.secret"))
        .unwrap()
        .trim()
        .to_owned();
    let presented = "0123456789abcdef0123456789abcdef";
    let rpc = format!("http://127.0.0.1:{}/raft/rpc", cluster.node(1).cluster_port);
    for auth in [None, Some(format!("Bearer {presented}"))] {
        let mut request = http.post(&rpc).body(vec![6u8]);
        if let Some(auth) = &auth {
            request = request.header("authorization", auth);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{auth:?}");
    }
    let status = http
        .get(format!("{url}/cluster/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains(&secret), "status shows the secret");
    // A flood of them: every one refused and counted, but the log keeps
    // to one line per reason per ten seconds.
    for _ in 0..50 {
        let response = http.post(&rpc).body(vec![6u8]).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"session_raft_refused_calls_total{reason="secret-missing"} 51"#),
        "{metrics}"
    );
    // The demo's own counters count too (their handles are made once, after
    // the recorder is installed): every flood request reached the handler.
    let posts = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"demo_requests_total{route="counter_post"} "#))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(posts.is_some_and(|n| n >= 60), "{posts:?} in\n{metrics}");
    // The node writes its warnings before answering, so they are in.
    let log = cluster.node(1).log_tail();
    assert_eq!(
        log.matches("refused cluster request").count(),
        2,
        "log:\n{log}"
    );
    assert!(!log.contains(&secret), "log shows the secret:\n{log}");
    assert!(!log.contains(presented), "log shows the presented secret");
}
