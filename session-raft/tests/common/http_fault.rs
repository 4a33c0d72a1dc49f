//! An HTTP proxy in front of one node's cluster port that passes every call
//! through, except forwarded session writes, which it can answer itself
//! after passing them on (`502`, as a load balancer or sidecar does when the
//! upstream answer is lost) or hold without answering (a stalled path).
//!
//! It tells calls apart with `session_raft::internals::decode_cluster_request`, the
//! node's own decoder.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::TcpListener;

/// What the proxy does with forwarded writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// Pass them through.
    None,
    /// Pass them on, drop the node's answer and say `502 Bad Gateway`.
    PassThenBadGateway,
    /// Hold them without passing them on or answering (bounded: a minute).
    Stall,
}

pub struct HttpFaultProxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<WriteFault>>,
    /// Forwarded writes that reached the node.
    passed: Arc<AtomicUsize>,
    /// Forwarded writes held by [`WriteFault::Stall`].
    stalled: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpFaultProxy {
    /// A proxy to the cluster port at `target`, passing everything for now.
    pub async fn start(target: SocketAddr) -> HttpFaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(WriteFault::None));
        let passed = Arc::new(AtomicUsize::new(0));
        let stalled = Arc::new(AtomicUsize::new(0));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let (task_fault, task_passed, task_stalled) =
            (fault.clone(), passed.clone(), stalled.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (fault, passed, stalled, client) = (
                    task_fault.clone(),
                    task_passed.clone(),
                    task_stalled.clone(),
                    client.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<Incoming>| {
                        let (fault, passed, stalled, client) = (
                            fault.clone(),
                            passed.clone(),
                            stalled.clone(),
                            client.clone(),
                        );
                        async move {
                            let fault = *fault.lock();
                            Ok::<_, Infallible>(
                                relay(request, target, &client, fault, &passed, &stalled).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpFaultProxy {
            addr,
            fault,
            passed,
            stalled,
            task,
        }
    }

    pub fn set(&self, fault: WriteFault) {
        *self.fault.lock() = fault;
    }

    /// Forwarded writes that reached the node so far.
    pub fn writes_passed(&self) -> usize {
        self.passed.load(Ordering::SeqCst)
    }

    /// Forwarded writes held so far.
    pub fn writes_stalled(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }
}

async fn relay(
    request: http::Request<Incoming>,
    target: SocketAddr,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    fault: WriteFault,
    passed: &AtomicUsize,
    stalled: &AtomicUsize,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let is_write = session_raft::internals::decode_cluster_request(&body) == Ok("write");
    if is_write && fault == WriteFault::Stall {
        stalled.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        return status(http::StatusCode::GATEWAY_TIMEOUT);
    }
    let mut upstream = http::Request::builder()
        .method(parts.method)
        .uri(format!("http://{target}{}", parts.uri.path()));
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let upstream = upstream.body(Full::new(body)).unwrap();
    let Ok(answer) = client.request(upstream).await else {
        return status(http::StatusCode::BAD_GATEWAY);
    };
    if is_write {
        passed.fetch_add(1, Ordering::SeqCst);
    }
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if is_write && fault == WriteFault::PassThenBadGateway {
        return status(http::StatusCode::BAD_GATEWAY);
    }
    http::Response::from_parts(parts, Full::new(body))
}

fn status(status: http::StatusCode) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from_static(b"proxy says no")));
    *response.status_mut() = status;
    response
}
