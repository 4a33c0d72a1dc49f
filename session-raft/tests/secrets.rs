//! The cluster secret stays secret: a cluster RPC without it or with a wrong
//! one gets 401 and a warning in the log that names neither the presented nor
//! the real secret; and the secret shows in none of `NodeConfig`'s `Debug`,
//! the node's or store's `Debug`, or the status value (`Debug` and the JSON
//! that `/cluster/status` endpoints serve).
//!
//! This binary installs its own global log subscriber (writing to a buffer),
//! so it holds no other test that would install one.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use session_raft::{NodeConfig, RaftNode};

/// Printable, so that a leak in any text form is easy to spot.
const SECRET: &[u8] = b"real-cluster-secret-4242";
/// What the bad client presents.
const PRESENTED: &str = "presented-wrong-secret-1717";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every text form of a secret that must not appear anywhere.
fn forms(secret: &[u8]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(secret).into_owned(),
        hex(secret),
        // What a derived `Debug` of the bytes would print.
        format!("{:?}", secret.to_vec())
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned(),
    ]
}

fn assert_no_secret(text: &str, what: &str) {
    for form in forms(SECRET).into_iter().chain(forms(PRESENTED.as_bytes())) {
        assert!(!text.contains(&form), "{what} contains {form:?}:\n{text}");
    }
}

/// The log, as written by the global subscriber.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        // Global, because the server logs from tokio worker threads.
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Buffer(writer.clone()))
            .init();
        buffer
    })
}

struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn post(addr: &str, auth: Option<String>) -> (u16, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::post(format!("http://{addr}/raft/rpc"));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from_static(&[6]))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn config() -> NodeConfig {
    NodeConfig::new(1, "127.0.0.1:0".parse().unwrap()).with_secret(SECRET)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rpcs_are_401_and_logged_without_any_secret() {
    let log = log_buffer();
    let node = RaftNode::start(config()).await.unwrap();
    let addr = node.cluster_addr().to_string();
    let attempts = [
        None,
        Some(format!("Bearer {}", hex(PRESENTED.as_bytes()))),
        Some(format!("Bearer {PRESENTED}")),
        Some(PRESENTED.to_owned()),
        // The real secret, but not in the expected form.
        Some(String::from_utf8(SECRET.to_vec()).unwrap()),
    ];
    for auth in attempts {
        let (status, body) = post(&addr, auth.clone()).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_no_secret(&body, "the 401 body");
    }
    // With the right secret the same (malformed) body gets past the check.
    let (status, _) = post(&addr, Some(format!("Bearer {}", hex(SECRET)))).await;
    assert_eq!(status, 400);
    node.shutdown().await.unwrap();

    // The warnings are written before the 401 is sent, so they are in.
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused cluster request"))
        .collect();
    // One warning per reason (then at most one per ten seconds, see
    // log_limit.rs): the first missing and the first wrong secret.
    assert_eq!(warnings.len(), 2, "one warning per reason:\n{text}");
    assert!(warnings[0].contains("missing cluster secret"), "{text}");
    assert!(warnings[1].contains("wrong cluster secret"), "{text}");
    assert!(warnings.iter().all(|l| l.contains("peer")), "{text}");
    assert_no_secret(&text, "the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_and_status_never_show_the_secret() {
    let config = config();
    assert_no_secret(&format!("{config:?}"), "NodeConfig's Debug");
    assert_no_secret(&format!("{config:#?}"), "NodeConfig's pretty Debug");
    assert!(format!("{config:?}").contains("<redacted>"));
    // The bytes are still there for the node to use.
    assert_eq!(config.secret.as_deref(), Some(SECRET));

    let node = RaftNode::start(config).await.unwrap();
    node.wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let status = node.status();
    assert_no_secret(&format!("{status:?}"), "the status value");
    let json = serde_json::to_string(&status).unwrap();
    assert!(json.contains("\"node_id\":1"), "{json}");
    assert_no_secret(&json, "the status JSON");
    assert_no_secret(&format!("{node:?}"), "RaftNode's Debug");
    assert_no_secret(&format!("{:?}", node.store()), "RaftStore's Debug");
    node.shutdown().await.unwrap();
}
