//! Flags of `demo-app node` that decide what is safe:
//!
//! - `--ephemeral` as a member of a multi-node cluster is refused at start
//!   with the reason, unless `--ephemeral-cluster` says it is on purpose: a
//!   restarted in-memory member has forgotten its vote and log;
//! - `/cluster/status` (member addresses, roles, lag) is not served on the
//!   application port unless `--public-status` asks for it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_demo-app");

fn node_command(dir: &std::path::Path, extra: &[&str]) -> Command {
    let secret = dir.join("cluster.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let key = dir.join("cookie.key");
    std::fs::write(&key, "ab".repeat(64)).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["node", "--id", "1", "--ephemeral"])
        .args(["--listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0"])
        .args(["--peers", "1=127.0.0.1:1,2=127.0.0.1:2"])
        .arg("--secret-file")
        .arg(&secret)
        .arg("--cookie-key-file")
        .arg(&key)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` for at most `bound`; `None` if it was still running.
fn run_bounded(mut command: Command, bound: Duration) -> Option<std::process::Output> {
    let mut child = command.spawn().expect("run demo-app");
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn ephemeral_member_of_a_cluster_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_bounded(node_command(dir.path(), &[]), Duration::from_secs(20))
        .expect("an in-memory cluster member must not start");
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "must refuse to start:\n{text}");
    assert!(text.contains("forgets its vote"), "reason missing:\n{text}");
}

#[test]
fn ephemeral_cluster_flag_allows_it_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    // It starts (and waits for its peer, which never comes): still running
    // after a moment means the configuration was accepted.
    let command = node_command(dir.path(), &["--ephemeral-cluster"]);
    if let Some(output) = run_bounded(command, Duration::from_secs(2)) {
        panic!(
            "exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn help_says_why() {
    let output = Command::new(BIN).args(["node", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--ephemeral-cluster"), "{help}");
    assert!(help.contains("forgotten its vote"), "{help}");
}

/// A one-node in-memory cluster serving its application port on `port`.
fn single_node(dir: &std::path::Path, port: u16, cluster_port: u16, extra: &[&str]) -> Command {
    let key = dir.join("cookie.key");
    std::fs::write(&key, "ab".repeat(64)).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["node", "--id", "1", "--ephemeral"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--cluster-listen")
        .arg(format!("127.0.0.1:{cluster_port}"))
        .arg("--cookie-key-file")
        .arg(&key)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Kills the child when dropped, so a failed assertion leaves no process.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_stays_off_the_application_port_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    for (extra, expected) in [(&[][..], 404), (&["--public-status"][..], 200)] {
        let ports = common::free_ports(2);
        let _node = Running(
            single_node(dir.path(), ports[0], ports[1], extra)
                .spawn()
                .unwrap(),
        );
        let url = format!("http://127.0.0.1:{}", ports[0]);
        let ready = common::eventually("the node is ready", || async {
            let response = http.get(format!("{url}/readyz")).send().await.ok()?;
            (response.status() == 200).then_some(())
        });
        ready.await;
        let status = http
            .get(format!("{url}/cluster/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(status.status().as_u16(), expected, "with {extra:?}");
        if expected == 200 {
            let body: serde_json::Value = status.json().await.unwrap();
            assert_eq!(body["members"].as_array().map(Vec::len), Some(1), "{body}");
        }
        // Metrics and health stay on the application port either way.
        let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
    }
}
