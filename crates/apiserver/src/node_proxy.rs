//! `GET /api/v1/nodes/{name}/proxy/{path}`: the apiserver forwards a read to the node agent's
//! endpoint, as Kubernetes proxies to the kubelet. It is how `kubectl get --raw
//! /api/v1/nodes/NODE/proxy/stats/summary` reads what a node's pods use.

use crate::ApiState;
use crate::error::{ApiError, Result};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::ApiStatus;
use http_body_util::BodyExt as _;

pub const ROUTE: &str = "/api/v1/nodes/{name}/proxy/{*path}";

pub async fn get(
    State(state): State<ApiState>,
    Path((name, path)): Path<(String, String)>,
) -> Response {
    forward(&state, &name, &path)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward(state: &ApiState, name: &str, path: &str) -> Result<Response> {
    let endpoint = crate::logs::node_endpoint(state, name).await?;
    let uri: axum::http::Uri = format!("http://{endpoint}/{path}").parse().map_err(|_| {
        ApiError(ApiStatus::bad_request(format!(
            "invalid proxy path {path:?}"
        )))
    })?;
    let response = state.inner.http.0.get(uri).await.map_err(|error| {
        ApiError(ApiStatus::service_unavailable(format!(
            "could not reach the node agent of {name} at {endpoint}: {error}"
        )))
    })?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static("application/octet-stream"));
    Ok((
        status,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(response.into_body().into_data_stream()),
    )
        .into_response())
}
