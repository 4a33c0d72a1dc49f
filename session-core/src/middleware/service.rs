//! [`SessionManager`]: the service the layer produces.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use crate::session::{self, retry_after_secs, Session, SessionError};
use crate::store::StoreError;
use crate::transport::Transport;

/// Middleware that gives each request a [`Session`] and saves it after the
/// inner service answers. Built by [`SessionLayer`](super::SessionLayer).
#[derive(Clone)]
pub struct SessionManager<Svc> {
    /// The wrapped service.
    inner: Svc,
    /// Store, clock, expiry and size rules.
    context: Arc<session::Context>,
    /// Cookie and header settings.
    transport: Arc<Transport>,
}

impl<Svc: std::fmt::Debug> std::fmt::Debug for SessionManager<Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("inner", &self.inner)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl<Svc> SessionManager<Svc> {
    pub(super) fn new(
        inner: Svc,
        context: Arc<session::Context>,
        transport: Arc<Transport>,
    ) -> Self {
        Self {
            inner,
            context,
            transport,
        }
    }
}

/// The response that replaces the handler's when the final save failed.
fn failure_response<B: Default>(error: &SessionError) -> Response<B> {
    let status = error.status();
    match error {
        SessionError::Store(StoreError::Backend(_)) => {
            tracing::error!(%error, "session not saved: store fault")
        }
        _ => tracing::warn!(%error, %status, "session not saved"),
    }
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    if let Some(wait) = match error {
        SessionError::Store(StoreError::Unavailable { retry_after, .. }) => Some(*retry_after),
        _ => None,
    } {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(wait)),
        );
    }
    response
}

impl<Svc, ReqBody, ResBody> Service<Request<ReqBody>> for SessionManager<Svc>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    Svc::Future: Send + 'static,
    Svc::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Svc::Error;
    type Future = ResponseFuture<ResBody, Svc::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let (incoming, via) = self.transport.read(request.headers());
        let session = Session::new(self.context.clone(), incoming);
        request.extensions_mut().insert(session.clone());
        // The clone that was driven to readiness serves this call; the fresh
        // clone stays for the next one (the usual Tower idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(request);
        let transport = self.transport.clone();
        let clock = self.context.clock.clone();
        ResponseFuture::new(async move {
            let mut response = call.await?;
            let finish = session.finish(response.status().is_server_error()).await;
            if let Some(error) = &finish.error {
                response = failure_response(error);
            }
            transport.write(response.headers_mut(), finish.update, via, clock.now());
            Ok(response)
        })
    }
}
