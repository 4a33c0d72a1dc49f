//! A minimal HTTP/1 GET for the cluster launcher's readiness polling.

use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// GETs `url`, returning the status code and body text.
pub(crate) async fn get(url: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().context("bad URL")?;
    let response = tokio::time::timeout(timeout, client.get(uri))
        .await
        .context("timed out")??;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .context("timed out")??
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
