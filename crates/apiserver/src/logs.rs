//! `pods/{name}/log`: the apiserver finds the pod's node and streams the container's log from
//! that node agent's log endpoint, as the Kubernetes apiserver proxies to the kubelet.
//!
//! The `PodLogOptions` query parameters are checked here, so that a bad value is a 400 Status
//! naming the parameter, and forwarded to the node in a form it need not check again.

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
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// HTTP client for what the apiserver proxies to: node agents' log and stats endpoints, and
/// the gateway (Functions' `proxy` and `metrics`). Request bodies are read in full first.
#[derive(Clone)]
pub struct NodeClient(pub(crate) Client<HttpConnector, Full<Bytes>>);

impl NodeClient {
    pub fn new() -> Self {
        NodeClient(Client::builder(TokioExecutor::new()).build_http())
    }
}

pub async fn serve(state: &ApiState, request: &ResourceRequest, query: &Query) -> Result<Response> {
    let namespace = request.key_namespace();
    let name = request.name.as_deref().unwrap_or_default();
    let options = log_options(query, name)?;
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
    let endpoint = node_endpoint(state, node_name).await?;
    let forwarded: Vec<String> = options
        .iter()
        .map(|(key, value)| format!("{key}={}", urlencode(value)))
        .collect();
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
            // 400: the node agent refused a value `log_options` let through; it is still the
            // caller's value, not a server fault.
            400 | 404 => ApiStatus::bad_request(message),
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

/// Checks the log options in `query` as Kubernetes checks `PodLogOptions`, and returns them as
/// the node agent takes them (booleans as `true`/`false`, `sinceTime` in UTC). Clients spell
/// booleans as Go parses them: the Python client sends `True`.
fn log_options(query: &Query, pod: &str) -> Result<Vec<(&'static str, String)>> {
    let invalid = |message: String| {
        ApiError(ApiStatus::bad_request(format!(
            "PodLogOptions \"{pod}\" is invalid: {message}"
        )))
    };
    let mut options = Vec::new();
    for key in ["follow", "previous", "timestamps"] {
        if let Some(value) = query.get(key) {
            let flag = parse_bool(value).ok_or_else(|| {
                invalid(format!(
                    "{key}: Invalid value: {value:?}: must be true or false"
                ))
            })?;
            options.push((key, flag.to_string()));
        }
    }
    // (parameter, smallest allowed value)
    for (key, min) in [("tailLines", 0), ("limitBytes", 1), ("sinceSeconds", 1)] {
        if let Some(value) = query.get(key) {
            let number: i64 = value.parse().map_err(|_| {
                invalid(format!(
                    "{key}: Invalid value: {value:?}: must be a whole number"
                ))
            })?;
            if number < min {
                let bound = if min == 0 {
                    "greater than or equal to 0"
                } else {
                    "greater than 0"
                };
                return Err(invalid(format!(
                    "{key}: Invalid value: {number}: must be {bound}"
                )));
            }
            options.push((key, number.to_string()));
        }
    }
    if let Some(value) = query.get("sinceTime") {
        if query.contains_key("sinceSeconds") {
            return Err(invalid(
                "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            ));
        }
        let time: jiff::Timestamp = value.parse().map_err(|_| {
            invalid(format!(
                "sinceTime: Invalid value: {value:?}: must be an RFC 3339 time such as \
                 2026-11-23T16:07:40Z"
            ))
        })?;
        options.push(("sinceTime", time.to_string()));
    }
    Ok(options)
}

/// A boolean query parameter, spelled as Go's `strconv.ParseBool` accepts it (Kubernetes
/// decodes query parameters with it).
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The container whose log is asked for: the one named (a container or an init container),
/// else the pod's only container, else the one its `kubectl.kubernetes.io/default-container`
/// annotation names, as Kubernetes does.
fn choose_container(pod: &Value, requested: Option<&str>) -> Result<String> {
    let names_in = |list: &str| -> Vec<&str> {
        pod["spec"][list]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default()
    };
    let (names, init_names) = (names_in("containers"), names_in("initContainers"));
    let pod_name = meta::name(pod).unwrap_or_default();
    // Go's `%v` of a string slice, which is what kubectl users are used to reading.
    let choices = || {
        let mut text = format!("[{}]", names.join(" "));
        if !init_names.is_empty() {
            text.push_str(&format!(
                " or one of the init containers: [{}]",
                init_names.join(" ")
            ));
        }
        text
    };
    let default = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
        .as_str()
        .filter(|name| names.contains(name));
    match requested.or(default) {
        Some(name) if names.contains(&name) || init_names.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(ApiError(ApiStatus::bad_request(format!(
            "container {name} is not valid for pod {pod_name}; choose one of: {}",
            choices()
        )))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError(ApiStatus::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: {}",
            choices()
        )))),
    }
}

/// `host:port` of the named node's agent (its logs and stats endpoint).
pub(crate) async fn node_endpoint(state: &ApiState, node_name: &str) -> Result<String> {
    let nodes = resource::lookup("", "v1", "nodes").expect("served");
    let node = state
        .store()
        .get(&nodes.key("", node_name))
        .await?
        .ok_or_else(|| ApiError(ApiStatus::not_found("", "nodes", node_name)))?;
    log_endpoint(&node).ok_or_else(|| {
        ApiError(ApiStatus::service_unavailable(format!(
            "node {node_name} publishes no endpoint (status.addresses / daemonEndpoints); is its node agent running?"
        )))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Result<Vec<(&'static str, String)>> {
        let query: Query = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        log_options(&query, "hello")
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        match options(pairs) {
            Ok(options) => panic!("{pairs:?} was accepted as {options:?}"),
            Err(ApiError(status)) => {
                let status = status.to_json();
                assert_eq!(status["code"], 400, "{status}");
                assert_eq!(status["reason"], "BadRequest", "{status}");
                status["message"].as_str().unwrap().to_string()
            }
        }
    }

    #[test]
    fn log_options_are_checked_and_normalised_for_the_node() {
        let mut forwarded = options(&[
            ("follow", "1"),
            ("timestamps", "True"),
            ("tailLines", "0"),
            ("limitBytes", "100"),
            ("sinceTime", "2026-11-23T17:07:40+01:00"),
            ("container", "c"),
        ])
        .unwrap();
        forwarded.sort();
        assert_eq!(
            forwarded,
            [
                ("follow", "true".to_string()),
                ("limitBytes", "100".into()),
                ("sinceTime", "2026-11-23T16:07:40Z".into()),
                ("tailLines", "0".into()),
                ("timestamps", "true".into()),
            ]
        );
        assert_eq!(
            options(&[("sinceSeconds", "3600")]).unwrap(),
            [("sinceSeconds", "3600".to_string())]
        );
    }

    #[test]
    fn bad_log_options_are_400_naming_the_parameter() {
        assert_eq!(
            refusal(&[("sinceSeconds", "0")]),
            "PodLogOptions \"hello\" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0"
        );
        assert!(refusal(&[("tailLines", "-1")]).contains("tailLines: Invalid value: -1"));
        assert!(refusal(&[("limitBytes", "lots")]).contains("limitBytes: Invalid value: \"lots\""));
        assert!(refusal(&[("timestamps", "yes")]).contains("timestamps"));
        assert!(refusal(&[("sinceTime", "yesterday")]).contains("RFC 3339"));
        assert!(
            refusal(&[("sinceTime", "2026-11-23T16:07:40Z"), ("sinceSeconds", "5")])
                .contains("at most one of")
        );
    }
}
