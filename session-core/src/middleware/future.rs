//! The response future of [`SessionManager`](super::SessionManager).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Boxed, because after the inner service answers it still awaits the store
/// (the final save), which no hand-written state machine makes simpler.
type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Response future of [`SessionManager`](super::SessionManager): the inner
/// service's response, after the session was saved.
pub struct ResponseFuture<ResBody, E> {
    /// Inner call followed by the final save.
    inner: Boxed<Result<http::Response<ResBody>, E>>,
}

impl<ResBody, E> ResponseFuture<ResBody, E> {
    pub(super) fn new(
        future: impl Future<Output = Result<http::Response<ResBody>, E>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl<ResBody, E> Future for ResponseFuture<ResBody, E> {
    type Output = Result<http::Response<ResBody>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<ResBody, E> fmt::Debug for ResponseFuture<ResBody, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
