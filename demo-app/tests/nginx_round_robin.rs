//! `deploy/nginx.conf` in front of three real node processes: requests of one
//! session land on different nodes (plain round-robin) and the session is kept.
//!
//! Needs Debian's nginx (`.ci/run` installs it). Outside CI a missing nginx
//! skips the test with a message; under CI (`CI` set) it fails.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{client, free_ports, nginx_binary, Nginx, ProcessCluster};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_round_robin_keeps_the_session() {
    let Some(nginx) = nginx_binary() else {
        assert!(std::env::var_os("CI").is_none(), "nginx missing under CI");
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let cluster = ProcessCluster::start(3).await;
    let listen = free_ports(1)[0];

    // The shipped config, with this test's ports.
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx.conf"))
            .expect("read deploy/nginx.conf");
    let mut conf = template.replace("127.0.0.1:8080", &format!("127.0.0.1:{listen}"));
    for (i, node) in cluster.nodes.iter().enumerate() {
        conf = conf.replace(
            &format!("127.0.0.1:{}", 3001 + i),
            &format!("127.0.0.1:{}", node.port),
        );
    }
    let prefix = cluster.dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("tmp")).unwrap();
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let proxy = Nginx::start(nginx, &prefix, &conf_path);

    let http = client();
    let base = format!("http://127.0.0.1:{listen}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "nginx did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut served_by = BTreeSet::new();
    for expected in 1..=9u64 {
        let v: Value = http
            .post(format!("{base}/api/counter"))
            .send()
            .await
            .expect("POST through nginx")
            .error_for_status()
            .expect("2xx")
            .json()
            .await
            .unwrap();
        assert_eq!(v["count"], expected, "session kept across nodes");
        served_by.insert(v["node"].as_str().unwrap().to_owned());
        let v: Value = http
            .get(format!("{base}/api/counter"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["count"], expected, "read on another node sees the write");
        served_by.insert(v["node"].as_str().unwrap().to_owned());
    }
    drop(proxy);
    assert_eq!(
        served_by.len(),
        3,
        "round-robin should spread one session over all nodes: {served_by:?}"
    );
}
