//! `demo-app admin`: an operator's client for a running cluster. Shows its
//! status, adds a learner, promotes one, removes a member, through any
//! member's cluster port with the cluster secret (and TLS when the cluster
//! uses it). The work is [`session_raft::admin::call`]'s, the same path a
//! joining node takes to the leader; this module turns flags into a request
//! and its outcome into text and an exit status.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use session_raft::admin::{self, AdminReply, AdminRequest};
use session_raft::{AdminError, CallError, ClusterSecret, ClusterStatus};

use crate::cli::{AdminAction, AdminArgs};
use crate::keys;
use crate::run::cluster_tls;

/// Runs one admin action; an `Err` makes the process exit non-zero.
pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<()> {
    // The secret is read and handed on, never shown: error messages name
    // the file, not its contents.
    let secret = match &args.secret_file {
        Some(path) => Some(ClusterSecret::from(keys::read_hex_file(path, 16)?)),
        None => None,
    };
    let tls = cluster_tls(&args.tls);
    let (request, json) = match &args.action {
        AdminAction::Status { json } => (AdminRequest::Status, *json),
        AdminAction::AddLearner { id, addr } => (
            AdminRequest::AddLearner {
                id: *id,
                addr: addr.clone(),
            },
            false,
        ),
        AdminAction::Promote { id } => (AdminRequest::Promote { id: *id }, false),
        AdminAction::Remove { id } => (AdminRequest::Remove { id: *id }, false),
    };
    let what = describe(&request);
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let reply = admin::call(&args.via, secret.as_ref(), tls.as_ref(), request, timeout)
        .await
        .map_err(|e| explain(e, &what, &args.via, args.secret_file.as_deref(), timeout))?;
    match reply {
        AdminReply::Status(status) if json => {
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        AdminReply::Status(status) => print!("{}", render(&status)),
        AdminReply::Done => println!("{what}: done"),
    }
    Ok(())
}

/// The request in words, for its outcome.
fn describe(request: &AdminRequest) -> String {
    match request {
        AdminRequest::Status => "status".into(),
        AdminRequest::AddLearner { id, addr } => format!("add-learner node {id} at {addr}"),
        AdminRequest::Promote { id } => format!("promote node {id}"),
        AdminRequest::Remove { id } => format!("remove node {id}"),
    }
}

/// An operator-facing message for each way a request fails.
fn explain(
    error: AdminError,
    what: &str,
    via: &str,
    secret_file: Option<&Path>,
    timeout: Duration,
) -> anyhow::Error {
    match error {
        AdminError::SecretRefused { addr } => match secret_file {
            Some(file) => anyhow!(
                "{what}: the cluster secret was refused by {addr}: {} does not hold this \
                 cluster's secret",
                file.display()
            ),
            None => anyhow!(
                "{what}: the cluster secret was refused by {addr}: the cluster requires one; \
                 give --secret-file"
            ),
        },
        AdminError::Unreachable { addr, source } => {
            let reason = match source {
                CallError::Connect { reason, .. } => reason,
                other => other.to_string(),
            };
            anyhow!(
                "{what}: {addr} is unreachable ({reason}); --via must be the cluster address of \
                 a running member"
            )
        }
        AdminError::Refused { reason } => anyhow!("{what}: refused: {reason}"),
        AdminError::Unavailable { last_problem } => anyhow!(
            "{what}: not done within {timeout:?} through {via} (last problem: {last_problem}); \
             a membership change may still complete: check `status`"
        ),
        e @ AdminError::NotAClusterPort { .. } => anyhow!("{what}: refused: {e}"),
        // These say what they are ("refused: ...", "cluster TLS: ...").
        e @ (AdminError::Rejected(_) | AdminError::Tls(_) | AdminError::TlsFiles(_)) => {
            anyhow!("{what}: {e}")
        }
        // A kind added later still says what it is.
        e => anyhow!("{what}: {e}"),
    }
}

/// The status as a short table: who leads, and each member's role and lag.
fn render(status: &ClusterStatus) -> String {
    let mut text = match status.leader_id {
        Some(leader) => format!(
            "leader: node {leader} ({}), term {}, committed index {}\n",
            status.leader_addr.as_deref().unwrap_or("address unknown"),
            status.term,
            index(status.committed_index),
        ),
        // A member answers for itself only when it knows no leader.
        None => format!(
            "no leader known to node {} ({:?}), term {}: the cluster may have lost its majority\n",
            status.node_id, status.role, status.term,
        ),
    };
    text.push_str(&format!(
        "{:>4}  {:<8}  {:<24}  {:>9}  {:>6}\n",
        "id", "role", "cluster address", "matched", "lag"
    ));
    for member in &status.members {
        let role = if Some(member.id) == status.leader_id {
            "leader"
        } else if member.voter {
            "voter"
        } else {
            "learner"
        };
        text.push_str(&format!(
            "{:>4}  {:<8}  {:<24}  {:>9}  {:>6}\n",
            member.id,
            role,
            member.addr,
            index(member.matched_index),
            index(member.lag),
        ));
    }
    text
}

/// An index or count that only the leader knows, `-` when unknown.
fn index(value: Option<u64>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}
