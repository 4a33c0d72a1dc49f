//! The client side of the cluster RPC: pooled HTTP/1 clients that carry
//! [`crate::rpc`] messages to other members, and openraft's network traits on
//! top of them.
//!
//! Three independent connection pools keep traffic classes from blocking each
//! other (HTTP/1.1 runs one request per connection at a time):
//!
//! - `replication`: append entries, votes, forwarded writes/reads, admin calls;
//! - `heartbeat`: the leader's liveness probes, so that a big append batch
//!   never delays them past a follower's election timeout;
//! - `snapshot`: full snapshot transfers, which can take seconds.
//!
//! Each pool opens more connections when all are busy, so concurrent forwarded
//! writes do not queue behind one another either. A failure to connect, or a
//! peer that answers "unavailable", is reported to openraft as
//! [`Unreachable`], which makes it back off instead of hammering a dead peer.

mod call_error;
mod client;
mod raft;

pub(crate) use call_error::CallError;
pub(crate) use client::{authorization_value, ClusterClient, Pool};
pub(crate) use raft::NetworkFactory;
