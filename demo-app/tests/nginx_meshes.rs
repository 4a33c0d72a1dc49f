//! `deploy/nginx-meshes.conf` in front of two meshes of three real node
//! processes: a session's requests go to nodes of its own mesh (round-robin
//! inside it), a request without a session goes to any node, a cookie that
//! names no mesh takes the default route, and a node of the other mesh asked
//! directly still serves the session (cross-mesh forward, counted in
//! `/metrics`).
//!
//! Needs Debian's nginx (`.ci/run` installs it). Outside CI a missing nginx
//! skips the test with a message; under CI (`CI` set) it fails.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{client, free_ports, nginx_binary, MeshCluster, Nginx};
use serde_json::Value;

/// One request's answer: the counter view plus the route nginx reports.
struct Answer {
    view: Value,
    route: Option<String>,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request
        .send()
        .await
        .expect("request")
        .error_for_status()
        .expect("2xx");
    let route = response
        .headers()
        .get("x-mesh-upstream")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Answer {
        view: response.json().await.expect("JSON"),
        route,
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_routes_sessions_to_their_mesh() {
    let Some(nginx) = nginx_binary() else {
        assert!(std::env::var_os("CI").is_none(), "nginx missing under CI");
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let meshes = MeshCluster::start(2, 3).await;
    let listen = free_ports(1)[0];

    // The shipped config with this test's ports. Placeholders first, so a
    // free port that happens to look like 300N is not replaced twice.
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nginx-meshes.conf"
    ))
    .expect("read deploy/nginx-meshes.conf");
    let mut conf = template.replace("127.0.0.1:8080", "@LISTEN@");
    for i in 1..=6 {
        conf = conf.replace(&format!("127.0.0.1:{}", 3000 + i), &format!("@NODE{i}@"));
    }
    conf = conf.replace("@LISTEN@", &format!("127.0.0.1:{listen}"));
    for node in &meshes.cluster.nodes {
        conf = conf.replace(
            &format!("@NODE{}@", node.id),
            &format!("127.0.0.1:{}", node.port),
        );
    }
    let prefix = meshes.cluster.dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("tmp")).unwrap();
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _proxy = Nginx::start(nginx, &prefix, &conf_path);
    let base = format!("http://127.0.0.1:{listen}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "nginx did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new session through nginx: no cookie, so any node; the session
    // belongs to that node's mesh.
    let first = client();
    let a = send(first.post(format!("{base}/api/counter"))).await;
    assert_eq!(
        a.route.as_deref(),
        Some("all_nodes"),
        "no session: any node"
    );
    assert_eq!(a.view["count"], 1);
    let mesh_a = text(&a.view, "session_mesh");
    assert_eq!(
        text(&a.view, "node_mesh"),
        mesh_a,
        "new session in the serving node's mesh"
    );

    // Its next requests: only nodes of its mesh, round-robin among them.
    let mut served_by = BTreeSet::new();
    for expected in 2..=7u64 {
        let r = send(first.post(format!("{base}/api/counter"))).await;
        assert_eq!(r.route, Some(format!("mesh_{mesh_a}")));
        assert_eq!(r.view["count"], expected, "session kept: {}", r.view);
        assert_eq!(text(&r.view, "session_mesh"), mesh_a);
        assert_eq!(text(&r.view, "node_mesh"), mesh_a, "served in its own mesh");
        served_by.insert(text(&r.view, "node"));
    }
    let own: BTreeSet<String> = meshes
        .nodes_of(&mesh_a)
        .map(|n| format!("node-{}", n.id))
        .collect();
    assert_eq!(served_by, own, "round-robin over the mesh's three nodes");

    // A second session created in the other mesh: new clients go round-robin
    // over all six nodes, so one of the next few lands there.
    let mut other = None;
    for _ in 0..12 {
        let c = client();
        let r = send(c.post(format!("{base}/api/counter"))).await;
        if text(&r.view, "session_mesh") != mesh_a {
            other = Some((c, text(&r.view, "session_mesh")));
            break;
        }
    }
    let (second, mesh_b) = other.expect("a new session in the other mesh within 12 tries");
    for expected in 2..=4u64 {
        let r = send(second.post(format!("{base}/api/counter"))).await;
        assert_eq!(r.route, Some(format!("mesh_{mesh_b}")));
        assert_eq!(r.view["count"], expected);
        assert_eq!(text(&r.view, "node_mesh"), mesh_b, "served in its own mesh");
    }

    // A cookie that verifies nowhere and names no mesh: the default route,
    // and the node treats it as no session.
    let r = send(
        reqwest::Client::new()
            .get(format!("{base}/api/counter"))
            .header("cookie", "sid=not-a-session"),
    )
    .await;
    assert_eq!(r.route.as_deref(), Some("all_nodes"));
    assert_eq!(r.view["count"], 0);

    // Past the balancer: every node of the other mesh still serves the first
    // session (cookies are per host, not port, so the jar sends it along)
    // by forwarding to the owning mesh.
    let mut expected = 7u64;
    for node in meshes.nodes_of(&mesh_b) {
        expected += 1;
        let r = send(first.post(format!("{}/api/counter", node.url()))).await;
        assert_eq!(r.view["count"], expected, "cross-mesh write: {}", r.view);
        assert_eq!(text(&r.view, "session_mesh"), mesh_a);
        assert_eq!(text(&r.view, "node_mesh"), mesh_b);
        let metrics = reqwest::get(format!("{}/metrics", node.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("session_raft_cross_mesh_forwards_total")),
            "cross-mesh forwards counted on node {}:\n{metrics}",
            node.id
        );
    }
    // And the owning mesh sees those writes through nginx again.
    let r = send(first.get(format!("{base}/api/counter"))).await;
    assert_eq!(r.view["count"], expected);
    assert_eq!(text(&r.view, "node_mesh"), mesh_a);
}
