//! `demo-app`: an axum app whose sessions are replicated by Raft, and a CLI to
//! run one member (`node`), a whole local cluster (`cluster`, the default), a
//! single in-memory node (`standalone`) or the no-session benchmark ceiling
//! (`ceiling`), and to administer a running cluster (`admin`).

mod admin;
mod app;
mod cli;
mod cluster;
mod http_client;
mod keys;
mod run;
mod telemetry;

use clap::Parser;

use crate::cli::{Cli, ClusterArgs, Command};

/// mimalloc instead of glibc's malloc: a session write allocates on one
/// runtime thread and frees on another (the log writer, the state machine,
/// another worker), and glibc then takes the owning arena's lock. Measured
/// on the bench cluster (POST through a follower, 64 connections): glibc's
/// lock wake-ups were 46% of the front node's futex calls; mimalloc cut
/// those calls from 0.67 to 0.20 per write and that node's CPU per write by
/// about 10%, for about 17 more resident bytes per session (README,
/// "Benchmarks", has the group's A/B pairs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Cluster(ClusterArgs::parse_defaults()));
    let log = match &command {
        Command::Cluster(a) => a.common.log.clone(),
        Command::Node(a) => a.common.log.clone(),
        Command::Standalone(a) | Command::Ceiling(a) => a.common.log.clone(),
        // A one-shot client: its outcome is what it prints, not a log.
        Command::Admin(_) => "warn".into(),
    };
    telemetry::init_logging(&log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let admin = matches!(command, Command::Admin(_));
    let result = runtime.block_on(async move {
        match command {
            Command::Cluster(args) => cluster::run(args).await,
            Command::Node(args) => run::node(*args).await,
            Command::Standalone(args) => run::standalone(args).await,
            Command::Ceiling(args) => run::ceiling(args).await,
            Command::Admin(args) => admin::run(args).await,
        }
    });
    match result {
        // An operator reads one line with the reason, not `anyhow`'s debug
        // form (which adds a backtrace when RUST_BACKTRACE is set).
        Err(e) if admin => {
            drop(runtime);
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        other => other,
    }
}
