//! `demo-app cluster`: a local cluster in one command.
//!
//! Each node runs as its own OS process (this same binary, `node` subcommand)
//! so that any one of them can be killed to watch the others carry on. The
//! launcher generates the cluster secret and cookie key on first start, waits
//! until a leader is known, prints where everything is, and on Ctrl-C or
//! SIGTERM asks every node to stop (SIGTERM), waiting for each to drain.
//!
//! With `--meshes M` the nodes are split into M meshes (Raft groups) named
//! m1..mM of `--nodes-per-mesh` nodes each: node ids run 1..M×K in mesh
//! order, every node gets its own mesh's members as peers and the directory
//! of all meshes, so it can serve (by forwarding) sessions of other meshes.
//! Without `--meshes` the launcher starts one untagged group, as it always did.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::cli::{ClusterArgs, ReadModeArg};
use crate::{http_client, keys};

/// One mesh of the launch plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MeshPlan {
    /// Mesh tag; `None` for the single untagged group (no `--meshes`).
    tag: Option<String>,
    /// Node ids in this mesh (1-based, contiguous).
    ids: Vec<u16>,
}

/// Turns `--nodes`, `--meshes` and `--nodes-per-mesh` into meshes of node ids.
///
/// Without `--meshes`: one untagged group of `--nodes` (or, as a synonym,
/// `--nodes-per-mesh`) nodes, default 3, exactly as before meshes existed.
/// With `--meshes M`: M meshes m1..mM of K nodes, where K is
/// `--nodes-per-mesh` (default 3) or `--nodes` / M; giving both flags is
/// fine when they agree (`--nodes` = M × K).
fn plan(args: &ClusterArgs) -> anyhow::Result<Vec<MeshPlan>> {
    let (meshes, per_mesh, tagged) = match (args.meshes, args.nodes, args.nodes_per_mesh) {
        (None, Some(n), Some(k)) if n != k => {
            bail!("--nodes {n} and --nodes-per-mesh {k} disagree (without --meshes they mean the same)")
        }
        (None, nodes, per_mesh) => (1, nodes.or(per_mesh).unwrap_or(3), false),
        (Some(0), _, _) => bail!("--meshes must be at least 1"),
        (Some(m), None, k) => (m, k.unwrap_or(3), true),
        (Some(m), Some(n), None) => {
            if n % m != 0 {
                bail!("--nodes {n} does not split into {m} meshes of equal size");
            }
            (m, n / m, true)
        }
        (Some(m), Some(n), Some(k)) => {
            if u32::from(m) * u32::from(k) != u32::from(n) {
                bail!("--nodes {n} is not --meshes {m} x --nodes-per-mesh {k}");
            }
            (m, k, true)
        }
    };
    if per_mesh == 0 {
        bail!("a mesh needs at least 1 node");
    }
    let total = u32::from(meshes) * u32::from(per_mesh);
    let last_port = u32::from(args.base_port.max(args.base_cluster_port)) + total - 1;
    if last_port > u32::from(u16::MAX) {
        bail!("{total} nodes do not fit in the port range from the base ports");
    }
    Ok((0..meshes)
        .map(|m| MeshPlan {
            tag: tagged.then(|| format!("m{}", m + 1)),
            ids: (1..=per_mesh).map(|i| m * per_mesh + i).collect(),
        })
        .collect())
}

/// One launched node.
struct Member {
    /// Node id (1-based).
    id: u64,
    /// Index of its mesh in the plan.
    mesh: usize,
    /// Application URL.
    url: String,
    /// The child process.
    child: Child,
}

/// Runs the launcher until Ctrl-C / SIGTERM.
pub(crate) async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let plan = plan(&args)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    // One secret for all meshes: cross-mesh forwards present it like any
    // other cluster call.
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
    let cluster_addr = |i: u16| format!("{}:{}", args.host, args.base_cluster_port + i - 1);
    let directory: Option<String> = plan[0].tag.is_some().then(|| {
        plan.iter()
            .map(|mesh| {
                let addrs: Vec<String> = mesh.ids.iter().map(|&i| cluster_addr(i)).collect();
                format!(
                    "{}={}",
                    mesh.tag.as_deref().unwrap_or_default(),
                    addrs.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    });
    let exe = std::env::current_exe().context("locating own executable")?;

    let mut members = Vec::new();
    for (index, mesh) in plan.iter().enumerate() {
        // Peers are the node's own Raft group only; other meshes are reached
        // through the directory.
        let peers: Vec<String> = mesh
            .ids
            .iter()
            .map(|&i| format!("{i}={}", cluster_addr(i)))
            .collect();
        let mesh_flags = mesh.tag.as_deref().zip(directory.as_deref());
        for &i in &mesh.ids {
            let child = spawn_node(
                &exe,
                &args,
                i,
                &peers,
                mesh_flags,
                &secret_file,
                &cookie_key_file,
            )?;
            members.push(Member {
                id: u64::from(i),
                mesh: index,
                url: format!("http://{}:{}", args.host, args.base_port + i - 1),
                child,
            });
        }
    }

    match wait_for_leaders(&members, plan.len(), Duration::from_secs(30)).await {
        Ok(leaders) => print_summary(&members, &plan, &leaders, &args, &secret_file),
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
    mesh: Option<(&str, &str)>,
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
        // The demo page shows the members; loopback only.
        .arg("--public-status")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(max) = args.common.max_sessions {
        command.arg("--max-sessions").arg(max.to_string());
    }
    if let Some((tag, directory)) = mesh {
        command
            .arg("--mesh")
            .arg(tag)
            .arg("--mesh-directory")
            .arg(directory);
    }
    if args.ephemeral {
        // Three throw-away members on one machine: on purpose.
        command.arg("--ephemeral").arg("--ephemeral-cluster");
    } else {
        let dir: PathBuf = args.data_dir.join(format!("node-{i}"));
        command.arg("--data-dir").arg(dir);
    }
    // Children must not inherit cluster-level variables meant for the launcher.
    // The mesh variables too: an RS_MESH meant for something else must not
    // tag the nodes of an untagged cluster.
    for var in [
        "RS_NODES",
        "RS_MESHES",
        "RS_NODES_PER_MESH",
        "RS_BASE_PORT",
        "RS_BASE_CLUSTER_PORT",
        "RS_HOST",
        "RS_MESH",
        "RS_MESH_DIRECTORY",
    ] {
        command.env_remove(var);
    }
    command
        .spawn()
        .with_context(|| format!("starting node {i}"))
}

/// Waits until every node answers and knows a leader of its own mesh;
/// returns each mesh's leader id.
async fn wait_for_leaders(
    members: &[Member],
    meshes: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<u64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut ready = 0;
        let mut leaders: Vec<Option<u64>> = vec![None; meshes];
        for m in members {
            if let Ok((200, body)) =
                http_client::get(&format!("{}/cluster/status", m.url), Duration::from_secs(2)).await
            {
                let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(id) = status.get("leader_id").and_then(|v| v.as_u64()) {
                    leaders[m.mesh] = Some(id);
                    ready += 1;
                }
            }
        }
        if ready == members.len() {
            if let Some(leaders) = leaders.into_iter().collect::<Option<Vec<u64>>>() {
                return Ok(leaders);
            }
        }
        if Instant::now() > deadline {
            bail!("no leader known by every node within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_summary(
    members: &[Member],
    plan: &[MeshPlan],
    leaders: &[u64],
    args: &ClusterArgs,
    secret: &Path,
) {
    println!();
    let tagged = plan[0].tag.is_some();
    if tagged {
        println!(
            "raft-sessions demo cluster is up ({} nodes in {} meshes of {})",
            members.len(),
            plan.len(),
            plan[0].ids.len()
        );
    } else {
        println!("raft-sessions demo cluster is up ({} nodes)", members.len());
    }
    for (index, mesh) in plan.iter().enumerate() {
        let leader = leaders[index];
        if let Some(tag) = &mesh.tag {
            println!("  mesh {tag}: leader node-{leader}");
        }
        let indent = if tagged { "    " } else { "  " };
        for m in members.iter().filter(|m| m.mesh == index) {
            let role = if m.id == leader { "leader" } else { "follower" };
            let pid = m.child.id().map(|p| p.to_string()).unwrap_or_default();
            println!("{indent}node-{}  {}  pid {pid}  ({role})", m.id, m.url);
        }
    }
    println!();
    if args.ephemeral {
        println!("  state: in memory only (--ephemeral)");
    } else {
        println!("  data: {}", args.data_dir.display());
    }
    println!("  cluster secret: {}", secret.display());
    if tagged {
        println!("  a session lives in the mesh of the node that created it; any node serves it");
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn plan_of(flags: &[&str]) -> anyhow::Result<Vec<MeshPlan>> {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ClusterArgs,
        }
        let argv = std::iter::once("demo-app").chain(flags.iter().copied());
        plan(&Only::try_parse_from(argv)?.args)
    }

    fn mesh(tag: Option<&str>, ids: std::ops::RangeInclusive<u16>) -> MeshPlan {
        MeshPlan {
            tag: tag.map(str::to_owned),
            ids: ids.collect(),
        }
    }

    #[test]
    fn without_meshes_one_untagged_group_as_before() {
        assert_eq!(plan_of(&[]).unwrap(), [mesh(None, 1..=3)]);
        assert_eq!(plan_of(&["--nodes", "5"]).unwrap(), [mesh(None, 1..=5)]);
        assert_eq!(
            plan_of(&["--nodes-per-mesh", "5"]).unwrap(),
            [mesh(None, 1..=5)]
        );
        assert!(plan_of(&["--nodes", "3", "--nodes-per-mesh", "5"]).is_err());
        assert!(plan_of(&["--nodes", "0"]).is_err());
    }

    #[test]
    fn meshes_split_ids_in_order() {
        let two_by_three = [mesh(Some("m1"), 1..=3), mesh(Some("m2"), 4..=6)];
        assert_eq!(
            plan_of(&["--meshes", "2", "--nodes-per-mesh", "3"]).unwrap(),
            two_by_three
        );
        assert_eq!(plan_of(&["--meshes", "2"]).unwrap(), two_by_three);
        assert_eq!(
            plan_of(&["--meshes", "2", "--nodes", "6"]).unwrap(),
            two_by_three
        );
        assert_eq!(
            plan_of(&["--meshes", "2", "--nodes", "6", "--nodes-per-mesh", "3"]).unwrap(),
            two_by_three
        );
        // One tagged mesh is not the same as no --meshes: ids carry "m1".
        assert_eq!(
            plan_of(&["--meshes", "1"]).unwrap(),
            [mesh(Some("m1"), 1..=3)]
        );
        assert!(plan_of(&["--meshes", "2", "--nodes", "5"]).is_err());
        assert!(plan_of(&["--meshes", "2", "--nodes", "8", "--nodes-per-mesh", "3"]).is_err());
        assert!(plan_of(&["--meshes", "0"]).is_err());
        assert!(plan_of(&["--meshes", "2", "--base-port", "65534"]).is_err());
    }
}
