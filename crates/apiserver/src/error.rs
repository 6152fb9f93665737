//! The one error type of every handler: a Kubernetes `Status`, rendered with its HTTP code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_api::ApiStatus;

/// An API failure, answered as a `Status` object.
#[derive(Debug)]
pub struct ApiError(pub ApiStatus);

impl From<ApiStatus> for ApiError {
    fn from(status: ApiStatus) -> Self {
        ApiError(status)
    }
}

impl From<flotilla_store::Error> for ApiError {
    fn from(error: flotilla_store::Error) -> Self {
        use flotilla_store::Error;
        match error {
            Error::Rejected(inner) => match inner.downcast::<ApiStatus>() {
                Ok(status) => ApiError(*status),
                Err(other) => internal(&*other),
            },
            Error::Compacted { requested, oldest } => ApiError(ApiStatus::gone(format!(
                "too old resource version: {requested} ({oldest})"
            ))),
            Error::Closed => ApiError(ApiStatus::service_unavailable(
                "the store is shutting down; retry against a running server",
            )),
            other => internal(&other),
        }
    }
}

/// Logs the detail and answers without it: internals stay out of responses.
fn internal(error: &dyn std::error::Error) -> ApiError {
    tracing::error!(%error, "store failure");
    ApiError(ApiStatus::internal(
        "the store could not complete the request; see the server log",
    ))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(self.0.to_json())).into_response();
        if let Some(seconds) = self.0.retry_after_seconds {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().expect("digits"));
        }
        response
    }
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;
