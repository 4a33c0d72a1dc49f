//! Membership changes and cluster status from outside the cluster, for
//! operator tools (`demo-app admin`) that run no Raft node themselves.
//!
//! [`call`] sends one [`AdminRequest`] to any member's cluster port with the
//! cluster secret (and TLS, when the cluster uses it) and follows the
//! member's redirects to the leader. It is the same loop a joining node and
//! [`crate::RaftNode::add_learner`], [`crate::RaftNode::promote`] and
//! [`crate::RaftNode::remove_member`] run ([`run`] below), so an operator's
//! request reaches the leader exactly as a join does.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use session_raft::admin::{self, AdminReply, AdminRequest};
//! use session_raft::ClusterSecret;
//!
//! let secret = ClusterSecret::new(std::env::var("CLUSTER_SECRET")?);
//! let via = "10.0.0.2:7000"; // any member's cluster address
//! let promote = AdminRequest::Promote { id: 4 };
//! admin::call(via, Some(&secret), None, promote, Duration::from_secs(60)).await?;
//! let status = AdminRequest::Status;
//! if let AdminReply::Status(status) =
//!     admin::call(via, Some(&secret), None, status, Duration::from_secs(10)).await?
//! {
//!     println!("leader {:?}, {} members", status.leader_id, status.members.len());
//! }
//! # Ok(())
//! # }
//! ```

pub(crate) mod leader;

use std::cell::Cell;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::error::AdminError;
use crate::replica::{retry_until, Attempt, Pause, Replica};
use crate::rpc::call_error::CallError;
use crate::rpc::client::{ClusterClient, Pool};
use crate::rpc::tls::ClusterTls;
use crate::rpc::{Request, Response};
use crate::secret::ClusterSecret;
use crate::status::ClusterStatus;
use crate::types::NodeId;

/// What an operator asks of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// The cluster as its leader sees it (members, roles, replication lag);
    /// with no leader known, as the member asked sees it.
    Status,
    /// Add a member as a non-voting learner. Done once the change is
    /// committed and the leader counts the learner as caught up (within
    /// openraft's replication lag threshold, which a short log always is,
    /// even for a learner that is not running: check its lag before
    /// promoting it).
    AddLearner {
        /// The new member's id.
        id: NodeId,
        /// Its cluster address, as the other members will reach it.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Remove a member (voter or learner).
    Remove {
        /// The member.
        id: NodeId,
    },
}

/// The answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminReply {
    /// The membership change is committed.
    Done,
    /// The answer to [`AdminRequest::Status`].
    Status(Box<ClusterStatus>),
}

/// Sends `request` to the member at `via` (its cluster address) and follows
/// redirects to the leader until the request is done or `timeout` passes.
///
/// `secret` is the cluster secret (`None` for an insecure cluster); `tls` the
/// cluster's TLS settings, whose certificate this client presents (it must be
/// one the members accept as a client certificate, e.g. a member's own).
///
/// Fails at once, without retrying, when `via` cannot be connected to
/// ([`AdminError::Unreachable`]), when a member refuses the secret
/// ([`AdminError::SecretRefused`]) or TLS fails ([`AdminError::Tls`]), and
/// when the leader refuses the change, e.g. for an id that is not a member
/// ([`AdminError::Refused`]). Leader changes and a leader that is briefly
/// unreachable are retried until `timeout` ([`AdminError::Unavailable`]).
pub async fn call(
    via: &str,
    secret: Option<&ClusterSecret>,
    tls: Option<&ClusterTls>,
    request: AdminRequest,
    timeout: Duration,
) -> Result<AdminReply, AdminError> {
    let tls = tls
        .map(ClusterTls::load)
        .transpose()
        .map_err(AdminError::TlsFiles)?;
    let client = ClusterClient::new(
        secret.map(|s| &**s),
        None,
        // A member that does not accept a connection within this is down or
        // not there; the operator hears so now rather than after `timeout`.
        CONNECT_TIMEOUT.min(timeout),
        MAX_ANSWER_BYTES,
        tls.as_ref(),
    );
    let request = match request {
        AdminRequest::Status => Request::Status,
        AdminRequest::AddLearner { id, addr } => Request::AddLearner { id, addr },
        AdminRequest::Promote { id } => Request::Promote { id },
        AdminRequest::Remove { id } => Request::Remove { id },
    };
    let response = run(
        &client,
        None,
        &request,
        Some(via.to_owned()),
        timeout,
        FirstContact::MustAnswer,
    )
    .await?;
    match response {
        Response::Status(status) => Ok(AdminReply::Status(status)),
        _ => Ok(AdminReply::Done),
    }
}

/// Admin calls of a member wait this long: adding a learner waits for it to
/// catch up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs an admin request of this member on the leader, following
/// redirects, starting at `first` (or at the leader it knows of); see
/// [`run`].
pub(crate) async fn through_leader(
    replica: &Replica,
    request: Request,
    first: Option<String>,
) -> Result<(), AdminError> {
    run(
        &replica.client,
        Some(replica),
        &request,
        first,
        ADMIN_TIMEOUT,
        FirstContact::Retry,
    )
    .await
    .map(drop)
}

/// Bound on connecting to a member from [`call`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest answer [`call`] accepts: a status lists every member, a few
/// hundred bytes each.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// What [`run`] does when the first address it was given cannot be
/// connected to before any member has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstContact {
    /// Keep trying until the deadline: a joining node may well start before
    /// the member it joins through is listening.
    Retry,
    /// Fail at once: for an operator, an address that does not answer is a
    /// typo or a member that is down, and waiting out the timeout helps no one.
    MustAnswer,
}

/// Runs an admin request on the leader, following redirects: the one loop
/// behind joins, [`crate::RaftNode`]'s admin methods and [`call`].
///
/// Starts at `first`, else at the leader `local` knows of. With `local` (a
/// running member) the request runs in place when that member leads; without
/// it every attempt is a call, to the leader last named or else to `first`,
/// which is what a joining node that knows no member does too.
///
/// Returns the final answer: [`Response::Done`], or [`Response::Status`].
pub(crate) async fn run(
    client: &ClusterClient,
    local: Option<&Replica>,
    request: &Request,
    first: Option<String>,
    timeout: Duration,
    first_contact: FirstContact,
) -> Result<Response, AdminError> {
    let deadline = Instant::now() + timeout;
    // A caller that knows no leader keeps asking the member it was given
    // until redirected.
    let fallback = first.clone();
    let target = Cell::new(first);
    // Whether any member has been connected to yet (see `FirstContact`).
    let connected = Cell::new(false);
    let attempt = |remaining| {
        let (target, connected, fallback) = (&target, &connected, &fallback);
        async move {
            let addr = match target.take() {
                Some(addr) => Some(addr),
                None => match (local, local.and_then(Replica::leader), fallback) {
                    (Some(local), Some((id, _)), _) if id == local.node_id => None,
                    (_, Some((_, Some(addr))), _) => Some(addr),
                    (_, _, Some(fallback)) => Some(fallback.clone()),
                    (Some(local), _, None) => {
                        local
                            .wait_leader_change(None, deadline, Duration::from_millis(200))
                            .await;
                        return Attempt::Wait;
                    }
                    // `call` always gives an address; nothing else to ask.
                    (None, _, None) => return Attempt::Done(Err(None)),
                },
            };
            let response = match (addr, local) {
                (None, Some(local)) => leader::serve(local, request).await,
                (None, None) => return Attempt::Done(Err(None)),
                (Some(addr), _) => {
                    match client
                        .call(Pool::Replication, &addr, request, remaining)
                        .await
                    {
                        Ok(response) => response,
                        Err(CallError::Connect { addr, reason })
                            if !connected.get() && first_contact == FirstContact::MustAnswer =>
                        {
                            let source = CallError::Connect {
                                addr: addr.clone(),
                                reason,
                            };
                            return Attempt::Done(Err(Some(AdminError::Unreachable {
                                addr,
                                source,
                            })));
                        }
                        Err(e) => match final_call_error(e) {
                            Ok(unavailable) => Response::Unavailable(unavailable),
                            Err(error) => return Attempt::Done(Err(Some(error))),
                        },
                    }
                }
            };
            connected.set(true);
            match response {
                Response::Done | Response::Status(_) => Attempt::Done(Ok(response)),
                Response::Refused(reason) => {
                    Attempt::Done(Err(Some(AdminError::Refused { reason })))
                }
                Response::NotLeader { addr, leader } => {
                    target.set(addr);
                    Attempt::Again(format!("redirected to leader {leader:?}"))
                }
                Response::Unavailable(reason) => Attempt::Again(reason),
                other => Attempt::Again(format!("unexpected answer {other:?}")),
            }
        }
    };
    let pause = Pause::For(Duration::from_millis(100));
    let unavailable = |last_problem| AdminError::Unavailable { last_problem };
    match retry_until(deadline, pause, "no leader known".into(), attempt).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(Some(error))) => Err(error),
        Ok(Err(None)) => Err(unavailable("no leader known".into())),
        Err(last_problem) => Err(unavailable(last_problem)),
    }
}

/// Sorts a failed call: `Ok` with a reason for a passing fault worth
/// retrying, `Err` for one that does not fix itself (a certificate or
/// protocol mismatch, a wrong secret, a refused request), which the caller
/// hears at once instead of after the deadline.
fn final_call_error(error: CallError) -> Result<String, AdminError> {
    match error {
        e @ CallError::Tls { .. } => Err(AdminError::Tls(e)),
        CallError::Refused { addr, status, .. } if status == StatusCode::UNAUTHORIZED => {
            Err(AdminError::SecretRefused { addr })
        }
        // A cluster port knows the admin path: a 404 comes from something
        // else, most likely a member's application port.
        CallError::Refused { addr, status, .. } | CallError::BadStatus { addr, status, .. }
            if status == StatusCode::NOT_FOUND =>
        {
            Err(AdminError::NotAClusterPort { addr })
        }
        e @ CallError::Refused { .. } => Err(AdminError::Rejected(e)),
        // Admin calls are idempotent (adding a learner twice, promoting a
        // voter), so an unknown outcome is retried like any passing fault; a
        // client error is not.
        e @ CallError::BadStatus { status, .. } if status.is_client_error() => {
            Err(AdminError::Rejected(e))
        }
        e => Ok(e.to_string()),
    }
}
