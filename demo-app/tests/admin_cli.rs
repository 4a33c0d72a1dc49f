//! `demo-app admin` against real processes: a fourth node started with an
//! empty data directory is added as a learner, promoted and removed again
//! through the CLI (each request sent to a follower and redirected to the
//! leader), and every member's `/cluster/status` follows. A wrong secret, an
//! unknown node id and an unreachable member each end in a non-zero exit and
//! a message that says which it was, and no secret is ever printed.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{free_ports, write_hex, ProcessCluster, BIN, PATIENCE};
use serde_json::Value;

/// Bound on one `demo-app admin` run; its own `--timeout` is shorter.
const RUN_BOUND: Duration = Duration::from_secs(90);

/// Runs `demo-app admin <args>` with `env` set and no inherited `RS_*`
/// variable (a developer's environment must not change what is asked).
async fn admin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command.arg("admin").args(args).kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("RS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    tokio::time::timeout(RUN_BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("demo-app admin {args:?} still running after {RUN_BOUND:?}"))
        .expect("run demo-app admin")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a run succeeded, showing its output if not; returns its stdout.
fn succeeded(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Asserts a run failed with a message containing `needle`; returns stderr.
fn failed_saying(what: &str, output: &Output, needle: &str) -> String {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "{what} should fail:\nstdout: {}\nstderr: {stderr}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains(needle),
        "{what}: expected {needle:?} in stderr: {stderr}"
    );
    stderr
}

/// Voter and member ids in a status (the CLI's `--json` and
/// `/cluster/status` have the same shape).
fn ids(status: &Value) -> (Vec<u64>, Vec<u64>) {
    let members = status["members"].as_array().cloned().unwrap_or_default();
    let id = |m: &Value| m["id"].as_u64();
    let voters = members
        .iter()
        .filter(|m| m["voter"] == true)
        .filter_map(id)
        .collect();
    (voters, members.iter().filter_map(id).collect())
}

/// Polls every given node's `/cluster/status` until each reports exactly
/// `voters` as voters and `members` as members.
async fn wait_for_membership(urls: &[String], voters: &[u64], members: &[u64]) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut last = Vec::new();
    loop {
        last.clear();
        for url in urls {
            let status = match http.get(format!("{url}/cluster/status")).send().await {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            last.push(status.as_ref().map(ids));
        }
        let wanted = (voters.to_vec(), members.to_vec());
        if last.iter().all(|seen| seen.as_ref() == Some(&wanted)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "membership not {voters:?} voters of {members:?} on {urls:?} within {PATIENCE:?}; \
             last seen (voters, members): {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_adds_promotes_and_removes_a_member() {
    let mut cluster = ProcessCluster::start(3).await;
    let secret_file = cluster.dir.path().join("cluster.secret");
    let secret = secret_file.display().to_string();
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let cluster_addr =
        |cluster: &mut ProcessCluster, id| format!("127.0.0.1:{}", cluster.node(id).cluster_port);
    // Through followers, so that every request takes the redirect.
    let via = cluster_addr(&mut cluster, followers[0]);
    let via_other = cluster_addr(&mut cluster, followers[1]);

    let new = cluster.spawn_waiting_node().await;
    let new_id = new.to_string();
    let new_addr = cluster_addr(&mut cluster, new);
    let out = admin(
        &[
            "--via",
            &via,
            "--secret-file",
            &secret,
            "--timeout",
            "30",
            "add-learner",
            "--id",
            &new_id,
            "--addr",
            &new_addr,
        ],
        &[],
    )
    .await;
    let stdout = succeeded("add-learner", &out);
    assert!(stdout.contains("done"), "{stdout}");

    // The learner is there (add-learner returns once it is committed).
    let out = admin(
        &["--via", &via, "--secret-file", &secret, "status", "--json"],
        &[],
    )
    .await;
    let status: Value = serde_json::from_str(&succeeded("status --json", &out)).unwrap();
    assert_eq!(
        ids(&status),
        (vec![1, 2, 3], vec![1, 2, 3, new]),
        "{status}"
    );
    assert!(status["leader_id"].is_u64(), "{status}");
    assert_eq!(
        status["node_id"], status["leader_id"],
        "answered by the leader"
    );
    assert!(status["members"][3]["lag"].is_u64(), "lag known: {status}");

    // Promote, every option from the environment this time.
    let out = admin(
        &["promote"],
        &[
            ("RS_ADMIN_VIA", via_other.as_str()),
            ("RS_SECRET_FILE", secret.as_str()),
            ("RS_ADMIN_ID", new_id.as_str()),
            ("RS_ADMIN_TIMEOUT", "30"),
        ],
    )
    .await;
    succeeded("promote (from the environment)", &out);
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    wait_for_membership(&urls, &[1, 2, 3, new], &[1, 2, 3, new]).await;

    // The text status names the new voter.
    let out = admin(&["--via", &via, "--secret-file", &secret, "status"], &[]).await;
    let table = succeeded("status", &out);
    assert!(table.starts_with("leader: node "), "{table}");
    let row = table
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{new} ")))
        .unwrap_or_else(|| panic!("no row for node {new}: {table}"));
    assert!(row.contains("voter") || row.contains("leader"), "{row}");

    // A wrong secret: refused, said so, non-zero, and no secret printed.
    let wrong_file = cluster.dir.path().join("wrong.secret");
    write_hex(&wrong_file, 32);
    let wrong = wrong_file.display().to_string();
    for action in [&["status"][..], &["remove", "--id", new_id.as_str()][..]] {
        let mut args = vec!["--via", via.as_str(), "--secret-file", wrong.as_str()];
        args.extend_from_slice(action);
        let out = admin(&args, &[]).await;
        let stderr = failed_saying("a wrong secret", &out, "secret was refused");
        let shown = format!("{stderr}{}", text(&out.stdout));
        for file in [&wrong_file, &secret_file] {
            let hex = std::fs::read_to_string(file).unwrap();
            assert!(!shown.contains(hex.trim()), "a secret was printed: {shown}");
        }
    }
    // Nothing changed.
    wait_for_membership(&urls, &[1, 2, 3, new], &[1, 2, 3, new]).await;

    // Unknown ids are named as such.
    for action in ["remove", "promote"] {
        let out = admin(
            &[
                "--via",
                &via,
                "--secret-file",
                &secret,
                action,
                "--id",
                "99",
            ],
            &[],
        )
        .await;
        failed_saying(action, &out, "node 99 is not a member");
    }

    // Remove the new member again.
    let out = admin(
        &[
            "--via",
            &via_other,
            "--secret-file",
            &secret,
            "--timeout",
            "30",
            "remove",
            "--id",
            &new_id,
        ],
        &[],
    )
    .await;
    succeeded("remove", &out);
    wait_for_membership(&urls[..3], &[1, 2, 3], &[1, 2, 3]).await;
    cluster.node(new).kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_says_when_the_member_is_unreachable() {
    // A port nothing listens on: the CLI fails at once, not after --timeout.
    let port = free_ports(1)[0];
    let via = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = admin(&["--via", &via, "--timeout", "60", "status"], &[]).await;
    let stderr = failed_saying("an unreachable member", &out, "unreachable");
    assert!(stderr.contains(&via), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}: an unreachable member was retried",
        started.elapsed()
    );
}
