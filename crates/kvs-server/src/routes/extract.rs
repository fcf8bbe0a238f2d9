//! Extractors whose rejections answer in the API's error format.

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;

use crate::error::ApiError;

/// Path parameters; a malformed path is a 400 problem.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub T);

/// Query parameters; a malformed query is a 400 problem.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// The raw request body; one over the size limit is a 413 problem.
pub(crate) struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body, ApiError> {
        Ok(Body(Bytes::from_request(req, state).await?))
    }
}
