//! The stop signal: a `watch` channel that turns `true` when a member shuts
//! down, which the RPC server and every background task select on.

use tokio::sync::watch;

/// Resolves once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
