//! `demo-app cluster`: a local cluster in one command.
//!
//! Each node runs as its own OS process (this same binary, `node` subcommand)
//! so that any one of them can be killed to watch the others carry on. The
//! launcher generates the cluster secret and cookie key on first start, waits
//! until a leader is known, prints where everything is, and on Ctrl-C or
//! SIGTERM asks every node to stop (SIGTERM), waiting for each to drain.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::cli::{ClusterArgs, ReadModeArg};
use crate::{http_client, keys};

/// One launched node.
struct Member {
    /// Node id (1-based).
    id: u64,
    /// Application URL.
    url: String,
    /// The child process.
    child: Child,
}

/// Runs the launcher until Ctrl-C / SIGTERM.
pub(crate) async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let secret_file = args
        .secret_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("cluster.secret"));
    keys::ensure_hex_file(&secret_file, 32)?;
    let cookie_key_file = match &args.common.cookie_key_file {
        Some(path) => path.clone(),
        None => {
            let path = args.data_dir.join("cookie.key");
            keys::ensure_hex_file(&path, 64)?;
            path
        }
    };
    let peers: Vec<String> = (1..=args.nodes)
        .map(|i| format!("{i}={}:{}", args.host, args.base_cluster_port + i - 1))
        .collect();
    let exe = std::env::current_exe().context("locating own executable")?;

    let mut members = Vec::new();
    for i in 1..=args.nodes {
        let child = spawn_node(&exe, &args, i, &peers, &secret_file, &cookie_key_file)?;
        members.push(Member {
            id: u64::from(i),
            url: format!("http://{}:{}", args.host, args.base_port + i - 1),
            child,
        });
    }

    match wait_for_leader(&members, Duration::from_secs(30)).await {
        Ok(leader) => print_summary(&members, leader, &args, &secret_file),
        Err(e) => {
            eprintln!("cluster did not become ready: {e:#}");
            stop_all(&mut members).await;
            return Err(e);
        }
    }

    supervise(&mut members).await;
    stop_all(&mut members).await;
    Ok(())
}

fn spawn_node(
    exe: &Path,
    args: &ClusterArgs,
    i: u16,
    peers: &[String],
    secret_file: &Path,
    cookie_key_file: &Path,
) -> anyhow::Result<Child> {
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--id")
        .arg(i.to_string())
        .arg("--listen")
        .arg(format!("{}:{}", args.host, args.base_port + i - 1))
        .arg("--cluster-listen")
        .arg(format!("{}:{}", args.host, args.base_cluster_port + i - 1))
        .arg("--peers")
        .arg(peers.join(","))
        .arg("--secret-file")
        .arg(secret_file)
        .arg("--cookie-key-file")
        .arg(cookie_key_file)
        .arg("--log")
        .arg(&args.common.log)
        .arg("--idle-timeout-secs")
        .arg(args.common.idle_timeout_secs.to_string())
        .arg("--read-mode")
        .arg(match args.common.read_mode {
            ReadModeArg::Session => "session",
            ReadModeArg::Linearizable => "linearizable",
            ReadModeArg::Local => "local",
        })
        // Plain http on loopback: a Secure cookie would not come back from curl.
        .arg("--insecure-cookies")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if args.ephemeral {
        command.arg("--ephemeral");
    } else {
        let dir: PathBuf = args.data_dir.join(format!("node-{i}"));
        command.arg("--data-dir").arg(dir);
    }
    // Children must not inherit cluster-level variables meant for the launcher.
    for var in [
        "RS_NODES",
        "RS_BASE_PORT",
        "RS_BASE_CLUSTER_PORT",
        "RS_HOST",
    ] {
        command.env_remove(var);
    }
    command
        .spawn()
        .with_context(|| format!("starting node {i}"))
}

async fn wait_for_leader(members: &[Member], timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut ready = 0;
        let mut leader = None;
        for m in members {
            if let Ok((200, body)) =
                http_client::get(&format!("{}/cluster/status", m.url), Duration::from_secs(2)).await
            {
                let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(id) = status.get("leader_id").and_then(|v| v.as_u64()) {
                    leader = Some(id);
                    ready += 1;
                }
            }
        }
        if let (Some(leader), true) = (leader, ready == members.len()) {
            return Ok(leader);
        }
        if Instant::now() > deadline {
            bail!("no leader known by every node within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_summary(members: &[Member], leader: u64, args: &ClusterArgs, secret: &Path) {
    println!();
    println!("raft-sessions demo cluster is up ({} nodes)", members.len());
    for m in members {
        let role = if m.id == leader { "leader" } else { "follower" };
        let pid = m.child.id().map(|p| p.to_string()).unwrap_or_default();
        println!("  node-{}  {}  pid {pid}  ({role})", m.id, m.url);
    }
    println!();
    if args.ephemeral {
        println!("  state: in memory only (--ephemeral)");
    } else {
        println!("  data: {}", args.data_dir.display());
    }
    println!("  cluster secret: {}", secret.display());
    println!(
        "  open {} in a browser; Ctrl-C stops all nodes",
        members[0].url
    );
    println!();
}

/// Waits for Ctrl-C / SIGTERM, reporting nodes that exit meanwhile (killing
/// one is part of the demo, so the launcher keeps going).
async fn supervise(members: &mut [Member]) {
    let signal = crate::run::shutdown_signal();
    tokio::pin!(signal);
    let mut reported = vec![false; members.len()];
    loop {
        tokio::select! {
            _ = &mut signal => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (m, done) in members.iter_mut().zip(reported.iter_mut()) {
                    if !*done {
                        if let Ok(Some(status)) = m.child.try_wait() {
                            println!("node-{} exited ({status})", m.id);
                            *done = true;
                        }
                    }
                }
            }
        }
    }
}

/// SIGTERM every node, wait for each to drain, SIGKILL stragglers.
async fn stop_all(members: &mut [Member]) {
    for m in members.iter() {
        if let Some(pid) = m.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for m in members.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(15), m.child.wait()).await {
            Ok(Ok(status)) => println!("node-{} stopped ({status})", m.id),
            _ => {
                let _ = m.child.kill().await;
                println!("node-{} killed after 15 s", m.id);
            }
        }
    }
}
