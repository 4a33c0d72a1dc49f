//! Runs one process: a cluster member, a standalone node, or the ceiling.
//!
//! Lifecycle of a member: bind the application port, start the Raft node
//! (which binds the cluster port), serve until SIGTERM or Ctrl-C, stop
//! accepting, let in-flight requests finish, hand leadership over if this node
//! leads, then exit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::Router;
use session_core::{Key, MemoryStore, MemoryStoreConfig, MeshTag, SessionLayer, SessionStore};
use session_raft::{ClusterTls, MeshDirectory, NodeConfig, RaftNode, ReadMode};
use tokio::net::TcpListener;

use crate::app::{self, AppState, Backend};
use crate::cli::{CommonArgs, NodeArgs, ReadModeArg, StandaloneArgs, TlsArgs};
use crate::keys;
use crate::telemetry;

/// `demo-app node`.
pub(crate) async fn node(args: NodeArgs) -> anyhow::Result<()> {
    let peers = parse_peers(&args.peers)?;
    let secret = match &args.secret_file {
        Some(path) => Some(keys::read_hex_file(path, 16)?),
        None => None,
    };
    let data_dir = match (&args.data_dir, args.ephemeral) {
        (Some(dir), false) => Some(dir.clone()),
        (None, true) => None,
        (Some(_), true) => bail!("--data-dir and --ephemeral exclude each other"),
        (None, false) => bail!("give --data-dir, or --ephemeral to keep everything in memory"),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let mut config = NodeConfig::new(args.id, args.cluster_listen);
    config.advertise_addr = args.advertise.clone();
    config.peers = peers;
    config.join = args.join.clone();
    config.data_dir = data_dir;
    config.ephemeral_cluster = args.ephemeral_cluster;
    config.secret = secret.map(session_raft::ClusterSecret::from);
    config.insecure = args.insecure;
    if let Some(tls) = cluster_tls(&args.tls) {
        config = config.with_tls(tls);
    }
    if let Some(mesh) = &args.mesh {
        let tag = MeshTag::new(mesh.trim()).map_err(|e| {
            anyhow::anyhow!("--mesh {mesh:?}: {e} (1-15 characters of a-z, 0-9, -)")
        })?;
        config = config.with_mesh(tag);
    }
    if let Some(text) = &args.mesh_directory {
        config = config.with_mesh_directory(parse_mesh_directory(text)?);
    }
    config.max_sessions = args.common.max_sessions;
    config.read_mode = match args.common.read_mode {
        ReadModeArg::Session => ReadMode::Session,
        ReadModeArg::Linearizable => ReadMode::Linearizable,
        ReadModeArg::Local => ReadMode::Local,
    };
    // Before the node starts, so that what it records from its first moment
    // (the first elections, the first applies) reaches /metrics.
    let metrics = telemetry::init_metrics();
    let node = Arc::new(
        RaftNode::start(config)
            .await
            .with_context(|| format!("starting Raft node {}", args.id))?,
    );
    let store: Arc<dyn SessionStore> = Arc::new(node.store());
    let state = Arc::new(AppState::new(
        format!("node-{}", args.id),
        Backend::Raft(node.clone()),
        metrics,
        args.public_status,
    ));
    let router = app::routes(state).layer(session_layer(store, &args.common)?);
    tracing::info!(
        node = args.id,
        mesh = args.mesh.as_deref().unwrap_or("-"),
        app = %args.listen,
        cluster = %args.cluster_listen,
        "serving"
    );
    serve(listener, router).await?;
    tracing::info!(node = args.id, "HTTP server drained; stopping Raft node");
    match Arc::try_unwrap(node) {
        Ok(node) => node.shutdown().await.context("stopping Raft node")?,
        Err(_) => tracing::warn!("Raft node still referenced at exit; not handing over"),
    }
    Ok(())
}

/// The cluster TLS settings the flags describe, if any.
pub(crate) fn cluster_tls(args: &TlsArgs) -> Option<ClusterTls> {
    // clap makes the three TLS files come together or not at all.
    let (Some(cert), Some(key), Some(ca)) = (&args.tls_cert, &args.tls_key, &args.tls_ca) else {
        return None;
    };
    let tls = ClusterTls::from_pem_files(cert, key, ca);
    Some(match &args.tls_server_name {
        Some(name) => tls.with_server_name(name),
        None => tls,
    })
}

/// `demo-app standalone`.
pub(crate) async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(MemoryStoreConfig {
        max_sessions: args
            .common
            .max_sessions
            .map(|max| usize::try_from(max).unwrap_or(usize::MAX)),
        ..MemoryStoreConfig::default()
    }));
    // Nothing to hide (`public_status`): one process, no members.
    let state = Arc::new(AppState::new(
        "standalone".into(),
        Backend::Memory,
        telemetry::init_metrics(),
        true,
    ));
    let router = app::routes(state).layer(session_layer(store, &args.common)?);
    tracing::info!(app = %args.listen, "serving (standalone, in-memory store)");
    serve(listener, router).await
}

/// `demo-app ceiling`: the same handlers' shape with no session layer.
pub(crate) async fn ceiling(args: StandaloneArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    // Nothing to hide (`public_status`): one process, no members.
    let state = Arc::new(AppState::new(
        "ceiling".into(),
        Backend::Memory,
        telemetry::init_metrics(),
        true,
    ));
    tracing::info!(app = %args.listen, "serving (ceiling: no session layer)");
    serve(listener, app::ceiling_routes(state)).await
}

fn session_layer(
    store: Arc<dyn SessionStore>,
    common: &CommonArgs,
) -> anyhow::Result<SessionLayer<Arc<dyn SessionStore>>> {
    let key_material = match &common.cookie_key_file {
        Some(path) => keys::read_hex_file(path, 64)?,
        None => {
            tracing::warn!(
                "no --cookie-key-file: using a random key; cookies die with this process"
            );
            keys::random_bytes(64)?
        }
    };
    Ok(SessionLayer::new(store, Key::from(&key_material))
        .with_secure(!common.insecure_cookies)
        .with_idle_timeout(Duration::from_secs(common.idle_timeout_secs)))
}

async fn serve(listener: TcpListener, router: Router) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server")
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

/// `--mesh-directory`: the text form itself, or `@path` to read it from a file
/// (the same syntax an operator would put in `RS_MESH_DIRECTORY`).
fn parse_mesh_directory(text: &str) -> anyhow::Result<MeshDirectory> {
    let directory = match text.trim().strip_prefix('@') {
        Some(path) => MeshDirectory::from_file(path)?,
        None => MeshDirectory::parse(text)?,
    };
    if directory.is_empty() {
        bail!("--mesh-directory lists no mesh");
    }
    Ok(directory)
}

/// Parses `id=host:port` items.
fn parse_peers(items: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    items
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (id, addr) = item
                .split_once('=')
                .with_context(|| format!("peer {item:?} is not id=host:port"))?;
            let id: u64 = id
                .trim()
                .parse()
                .with_context(|| format!("peer id in {item:?} is not a number"))?;
            addr.trim()
                .parse::<SocketAddr>()
                .map(|_| ())
                .or_else(|_| {
                    // Host names are fine too; only insist on host:port.
                    addr.rsplit_once(':')
                        .and_then(|(_, p)| p.parse::<u16>().ok())
                        .map(|_| ())
                        .context("no port")
                })
                .with_context(|| format!("peer address in {item:?} is not host:port"))?;
            Ok((id, addr.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject_garbage() {
        let peers = parse_peers(&["1=127.0.0.1:7001".into(), "2=node2:7002".into()]).unwrap();
        assert_eq!(peers[&1], "127.0.0.1:7001");
        assert_eq!(peers[&2], "node2:7002");
        assert!(parse_peers(&["x=127.0.0.1:1".into()]).is_err());
        assert!(parse_peers(&["1=nohost".into()]).is_err());
        assert!(parse_peers(&["127.0.0.1:7001".into()]).is_err());
    }

    #[test]
    fn mesh_directory_from_text_or_file() {
        let inline = parse_mesh_directory("m1=127.0.0.1:7001;m2=127.0.0.1:7002").unwrap();
        assert_eq!(inline.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meshes");
        std::fs::write(&path, "m1 127.0.0.1:7001\nm2 127.0.0.1:7002\n").unwrap();
        let from_file = parse_mesh_directory(&format!("@{}", path.display())).unwrap();
        assert_eq!(from_file, inline);
        assert!(parse_mesh_directory("").is_err());
        assert!(parse_mesh_directory("@/nonexistent/meshes").is_err());
    }
}
