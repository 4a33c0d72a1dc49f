//! The axum extractor for [`Session`] (feature `axum`).

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::StatusCode;

use crate::session::Session;

impl<S: Send + Sync> FromRequestParts<S> for Session {
    /// 500 with a message: a missing layer is a programming error in the app.
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "Session extractor used on a route without SessionLayer; add .layer(SessionLayer::new(..))",
        ))
    }
}
