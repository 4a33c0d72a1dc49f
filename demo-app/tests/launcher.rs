//! `demo-app cluster`, the local launcher: its nodes share this machine's
//! cores, so each node's runtime gets its share of worker threads (at least
//! one) unless the caller set `TOKIO_WORKER_THREADS`, which then stands.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, BIN, PATIENCE};

/// Three application and three cluster ports, each run consecutive (the
/// launcher numbers nodes from its base ports).
fn consecutive_ports() -> (u16, u16) {
    for _ in 0..20 {
        let p = free_ports(6);
        if p.windows(2).all(|w| w[1] == w[0] + 1) {
            return (p[0], p[3]);
        }
    }
    panic!("no six consecutive free ports");
}

/// The launcher's node processes (its children), once all three run.
fn children_of(launcher: u32) -> Vec<u32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let children: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Field 4 (after the parenthesised name) is the parent.
                let after_name = stat.rsplit(')').next().unwrap_or("");
                after_name.split_whitespace().nth(1) == Some(&launcher.to_string())
            })
            .collect();
        if children.len() == 3 {
            return children;
        }
        assert!(
            Instant::now() < deadline,
            "launcher has {} children",
            children.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Threads named `tokio-rt-worker` in `pid`, once its runtime has started
/// them all (they start when the runtime is built, before the node serves).
fn worker_threads(pid: u32) -> usize {
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|name| name.trim() == "tokio-rt-worker")
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + PATIENCE;
    let mut last = count();
    // Stable for half a second: the runtime has started every worker.
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = count();
        if now == last && now > 0 {
            return now;
        }
        assert!(Instant::now() < deadline, "workers of {pid} never settled");
        last = now;
    }
}

/// The launcher, and the directory its generated secret and key go to.
struct Launcher {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Launcher {
    fn start(workers_env: Option<&str>) -> Self {
        let (base, cluster_base) = consecutive_ports();
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["cluster", "--ephemeral"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--base-port", &base.to_string()])
            .args(["--base-cluster-port", &cluster_base.to_string()])
            .args(["--log", "warn"])
            .env_remove("TOKIO_WORKER_THREADS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(threads) = workers_env {
            command.env("TOKIO_WORKER_THREADS", threads);
        }
        Self {
            child: command.spawn().expect("start demo-app cluster"),
            _dir: dir,
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // SIGTERM: the launcher stops its nodes; then make sure of it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nodes_share_the_cores_unless_the_caller_chose() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let launcher = Launcher::start(None);
    let nodes = children_of(launcher.child.id());
    for pid in &nodes {
        assert_eq!(
            worker_threads(*pid),
            (cores / 3).max(1),
            "node process {pid} on {cores} cores"
        );
    }
    drop(launcher);

    let launcher = Launcher::start(Some("3"));
    for pid in children_of(launcher.child.id()) {
        assert_eq!(worker_threads(pid), 3, "the caller's choice stands");
    }
}
