//! `pods/{name}/log`: the apiserver finds the pod's node and streams the container's log from
//! that node agent's log endpoint, as the Kubernetes apiserver proxies to the kubelet.

use crate::ApiState;
use crate::error::{ApiError, Result};
use crate::path::ResourceRequest;
use crate::rest::Query;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_api::resource;
use flotilla_api::{ApiStatus, meta};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// HTTP client for node agents' log endpoints.
#[derive(Clone)]
pub struct NodeClient(Client<HttpConnector, Empty<Bytes>>);

impl NodeClient {
    pub fn new() -> Self {
        NodeClient(Client::builder(TokioExecutor::new()).build_http())
    }
}

pub async fn serve(state: &ApiState, request: &ResourceRequest, query: &Query) -> Result<Response> {
    let namespace = request.key_namespace();
    let name = request.name.as_deref().unwrap_or_default();
    let pod = state
        .store()
        .get(&request.key())
        .await?
        .ok_or_else(|| ApiError(ApiStatus::not_found("", "pods", name)))?;
    let container = choose_container(&pod, query.get("container").map(String::as_str))?;
    let node_name = meta::str_at(&pod, &["spec", "nodeName"]).ok_or_else(|| {
        ApiError(ApiStatus::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: the pod is not scheduled to a node yet"
        )))
    })?;
    let nodes = resource::lookup("", "v1", "nodes").expect("served");
    let node = state
        .store()
        .get(&nodes.key("", node_name))
        .await?
        .ok_or_else(|| ApiError(ApiStatus::not_found("", "nodes", node_name)))?;
    let endpoint = log_endpoint(&node).ok_or_else(|| {
        ApiError(ApiStatus::service_unavailable(format!(
            "node {node_name} publishes no log endpoint (status.addresses / daemonEndpoints); is its node agent running?"
        )))
    })?;
    let mut forwarded: Vec<String> = Vec::new();
    for key in [
        "follow",
        "tailLines",
        "timestamps",
        "previous",
        "limitBytes",
        "sinceSeconds",
    ] {
        if let Some(value) = query.get(key) {
            forwarded.push(format!("{key}={}", urlencode(value)));
        }
    }
    let uri = format!(
        "http://{endpoint}/containerLogs/{namespace}/{name}/{container}?{}",
        forwarded.join("&")
    );
    let uri: axum::http::Uri = uri.parse().map_err(|_| {
        ApiError(ApiStatus::bad_request(
            "the log request names an invalid container or pod",
        ))
    })?;
    let response = state.inner.http.0.get(uri).await.map_err(|error| {
        tracing::warn!(%error, node = node_name, "log proxy failed");
        ApiError(ApiStatus::service_unavailable(format!(
            "could not reach the node agent of {node_name} at {endpoint} for logs: {error}"
        )))
    })?;
    let status = response.status();
    let body = response.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(ApiError(match status.as_u16() {
            404 => ApiStatus::bad_request(message),
            _ => ApiStatus::internal(format!("the node agent answered {status}: {message}")),
        }));
    }
    let stream = body.into_data_stream();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn choose_container(pod: &Value, requested: Option<&str>) -> Result<String> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let pod_name = meta::name(pod).unwrap_or_default();
    match requested {
        Some(name) if names.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(ApiError(ApiStatus::bad_request(format!(
            "container {name} is not valid for pod {pod_name}; choose one of: {names:?}"
        )))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError(ApiStatus::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: {names:?}"
        )))),
    }
}

/// `host:port` of a node agent, from its Node's InternalIP and kubelet endpoint port.
fn log_endpoint(node: &Value) -> Option<String> {
    let address = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    Some(format!("{address}:{port}"))
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
