//! Bearer-token authentication: the token in `kubeconfig` is the cluster's one credential.

use crate::ApiState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flotilla_api::ApiStatus;

/// Paths that answer without credentials: health checks, as Kubernetes allows, and the
/// dashboard's page (`/`), which holds no cluster data and asks the user for the token.
const PUBLIC_PATHS: &[&str] = &["/livez", "/readyz", "/healthz", "/version", "/"];

/// The dashboard's other files (scripts, styles, images), public like its page.
const PUBLIC_PREFIX: &str = "/ui/";

pub async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.inner.token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if PUBLIC_PATHS.contains(&path) || path.starts_with(PUBLIC_PREFIX) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError(ApiStatus::unauthorized(
            "Unauthorized: present the bearer token from flotilla-data/kubeconfig",
        ))
        .into_response(),
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
