//! A Function's `proxy` and `metrics` subresources, which the dashboard uses to invoke a
//! Function and chart it through the API — same origin, same bearer token — rather than by
//! talking to the gateway itself.
//!
//! - `/apis/flotilla.dev/v1/namespaces/{ns}/functions/{name}/proxy[/{path}]`, any method: the
//!   request (method, query, body up to 16 MiB, `Content-Type` and `Accept`) goes to
//!   `{status.url}/{path}`, as Kubernetes' `services/{name}/proxy` goes to a Service. The
//!   answer's status, `Content-Type`, `Server-Timing` and body come back streamed. The
//!   caller's `Authorization` is not passed on: the cluster's token is not the Function's.
//! - `GET .../functions/{name}/metrics`: the gateway's `/metrics` (at the origin of
//!   `status.url`), cut down to the metadata lines and the samples labelled with this
//!   Function.
//!
//! `status.url` is the gateway's address for the Function, which the gateway writes once it
//! serves it; until then both answer 503.

use crate::ApiState;
use crate::error::{ApiError, Result};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::{ApiStatus, meta, resource};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use serde::Deserialize;

pub const PROXY: &str = "/apis/flotilla.dev/v1/namespaces/{namespace}/functions/{name}/proxy";
/// `.../proxy/` (a catch-all route does not match an empty rest).
pub const PROXY_SLASH: &str =
    "/apis/flotilla.dev/v1/namespaces/{namespace}/functions/{name}/proxy/";
pub const PROXY_PATH: &str =
    "/apis/flotilla.dev/v1/namespaces/{namespace}/functions/{name}/proxy/{*path}";
pub const METRICS: &str = "/apis/flotilla.dev/v1/namespaces/{namespace}/functions/{name}/metrics";

/// The largest request body passed on; the gateway's own default limit is 10 MiB.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The largest `/metrics` answer read from the gateway.
const MAX_METRICS_BYTES: usize = 64 << 20;

/// Request headers passed on to the Function.
const FORWARDED_REQUEST_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::ACCEPT];

#[derive(Deserialize)]
pub struct FunctionName {
    namespace: String,
    name: String,
}

/// Any method on `.../functions/{name}/proxy` and `.../proxy/{*path}`.
pub async fn proxy(
    State(state): State<ApiState>,
    Path(function): Path<FunctionName>,
    request: Request,
) -> Response {
    forward(&state, &function, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET .../functions/{name}/metrics`.
pub async fn metrics(
    State(state): State<ApiState>,
    Path(function): Path<FunctionName>,
    method: Method,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError(ApiStatus::method_not_allowed(format!(
            "{method} is not supported on the metrics of functions \"{}\"; use GET",
            function.name
        )))
        .into_response();
    }
    function_metrics(&state, &function)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward(state: &ApiState, function: &FunctionName, request: Request) -> Result<Response> {
    let base = function_url(state, function).await?;
    let (parts, body) = request.into_parts();
    // The path after `/proxy/`, as the client encoded it: `namespaces`, `{ns}`, `functions`,
    // `{name}` and `proxy` are plain segments, so it is whatever follows the ninth slash.
    let rest = parts.uri.path().splitn(10, '/').nth(9).unwrap_or_default();
    let query = parts.uri.query().map_or(String::new(), |q| format!("?{q}"));
    let uri: Uri = format!("{}/{rest}{query}", base.trim_end_matches('/'))
        .parse()
        .map_err(|_| {
            ApiError(ApiStatus::bad_request(format!(
                "invalid proxy path {rest:?} for functions \"{}\"",
                function.name
            )))
        })?;

    let too_large = || {
        ApiError(ApiStatus::too_large(format!(
            "the request body is over the {MAX_BODY_BYTES} bytes a Function proxy request may carry"
        )))
    };
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|size| size > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            return Err(ApiError(ApiStatus::bad_request(format!(
                "reading the request body failed: {error}"
            ))));
        }
    };

    let mut outgoing = hyper::Request::builder()
        .method(parts.method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|error| ApiError(ApiStatus::bad_request(error.to_string())))?;
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            outgoing.headers_mut().insert(name, value.clone());
        }
    }
    let response = state
        .inner
        .http
        .0
        .request(outgoing)
        .await
        .map_err(|error| unreachable_gateway(function, &base, &error))?;

    let mut answer = Response::builder().status(response.status());
    for name in [
        header::CONTENT_TYPE,
        header::HeaderName::from_static("server-timing"),
    ] {
        for value in response.headers().get_all(&name) {
            answer = answer.header(&name, value);
        }
    }
    // The answer is served from the API's origin, where the dashboard keeps the token: a page
    // a Function returns must not run there as if it were the dashboard.
    answer = answer
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    answer
        .body(Body::from_stream(response.into_body().into_data_stream()))
        .map_err(|error| {
            tracing::error!(%error, "building a proxied response");
            ApiError(ApiStatus::internal(
                "the proxied response could not be built",
            ))
        })
}

async fn function_metrics(state: &ApiState, function: &FunctionName) -> Result<Response> {
    let url = function_url(state, function).await?;
    let origin = origin_of(&url).ok_or_else(|| {
        ApiError(ApiStatus::service_unavailable(format!(
            "functions \"{}\" has status.url {url:?}, which is not an http:// URL of the gateway",
            function.name
        )))
    })?;
    let uri: Uri = format!("{origin}/metrics")
        .parse()
        .expect("an origin and a path make a URI");
    let response = state
        .inner
        .http
        .0
        .get(uri)
        .await
        .map_err(|error| unreachable_gateway(function, &origin, &error))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    let text = Limited::new(response.into_body(), MAX_METRICS_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|error| {
            ApiError(ApiStatus::service_unavailable(format!(
                "reading the gateway's metrics at {origin}/metrics failed: {error}"
            )))
        })?;
    if !status.is_success() {
        return Err(ApiError(ApiStatus::service_unavailable(format!(
            "the gateway at {origin} answered {status} for /metrics: {}",
            String::from_utf8_lossy(&text).trim()
        ))));
    }
    let text = String::from_utf8_lossy(&text);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        only_function(&text, &function.namespace, &function.name),
    )
        .into_response())
}

/// The Function's `status.url`: 404 if there is no such Function, 503 until the gateway has
/// published one.
async fn function_url(state: &ApiState, function: &FunctionName) -> Result<String> {
    let functions = resource::lookup("flotilla.dev", "v1", "functions").expect("served");
    let object = state
        .store()
        .get(&functions.key(&function.namespace, &function.name))
        .await?
        .ok_or_else(|| {
            ApiError(ApiStatus::not_found(
                "flotilla.dev",
                "functions",
                &function.name,
            ))
        })?;
    meta::str_at(&object, &["status", "url"])
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError(ApiStatus::service_unavailable(format!(
                "functions \"{}\" in namespace \"{}\" has no status.url yet: the gateway sets it \
                 once it serves the Function. Is the gateway running (flotilla up starts one)?",
                function.name, function.namespace
            )))
        })
}

fn unreachable_gateway(
    function: &FunctionName,
    address: &str,
    error: &(dyn std::error::Error + 'static),
) -> ApiError {
    // The client's own message is terse ("client error (Connect)"); its sources say why.
    let mut why = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        why.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    tracing::warn!(function = %function.name, namespace = %function.namespace, %address, error = %why, "function proxy failed");
    ApiError(ApiStatus::service_unavailable(format!(
        "could not reach the gateway at {address} for functions \"{}\": {why}. Is the gateway running?",
        function.name
    )))
}

/// `scheme://authority` of an `http://` URL.
fn origin_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    (scheme == "http").then(|| format!("{scheme}://{authority}"))
}

/// The metadata lines of a Prometheus or OpenMetrics text exposition, and the samples
/// labelled `namespace` and `name` of this Function (and `kind="function"` where a sample
/// has a `kind`).
fn only_function(text: &str, namespace: &str, name: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let keep = if line.starts_with('#') {
            ["# HELP ", "# TYPE ", "# UNIT ", "# EOF"]
                .iter()
                .any(|prefix| line.starts_with(prefix))
        } else {
            labels(line).is_some_and(|labels| {
                let value = |key: &str| {
                    labels
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                value("namespace") == Some(namespace)
                    && value("name") == Some(name)
                    && value("kind").is_none_or(|kind| kind == "function")
            })
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The label set of a sample line (`name{a="x",b="y"} 1`), values unescaped; `None` if it is
/// not one.
fn labels(line: &str) -> Option<Vec<(String, String)>> {
    let open = line.find(['{', ' '])?;
    if !line[open..].starts_with('{') {
        return Some(Vec::new());
    }
    let mut rest = &line[open + 1..];
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.starts_with('}') {
            return Some(labels);
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()? {
                    (_, 'n') => value.push('\n'),
                    (_, escaped) => value.push(escaped),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP flotilla_gateway_requests Requests answered, by target and HTTP status code.
# TYPE flotilla_gateway_requests counter
flotilla_gateway_requests_total{kind="function",namespace="default",name="hello",code="200"} 3
flotilla_gateway_requests_total{kind="function",namespace="default",name="hello2",code="200"} 1
flotilla_gateway_requests_total{kind="function",namespace="shop",name="hello",code="200"} 1
flotilla_gateway_requests_total{kind="service",namespace="default",name="hello",code="200"} 7
# HELP flotilla_gateway_request_duration_seconds Time to the response head.
# TYPE flotilla_gateway_request_duration_seconds histogram
flotilla_gateway_request_duration_seconds_bucket{kind="function",namespace="default",name="hello",le="0.0001"} 0
flotilla_gateway_request_duration_seconds_bucket{kind="function",namespace="default",name="a\"b,c=\\",le="0.0001"} 0
flotilla_gateway_request_duration_seconds_count{namespace="default",name="hello"} 3
unlabelled 1
# EOF
"#;

    #[test]
    fn metrics_keep_metadata_and_this_functions_samples() {
        let kept = only_function(EXPOSITION, "default", "hello");
        assert_eq!(
            kept,
            r#"# HELP flotilla_gateway_requests Requests answered, by target and HTTP status code.
# TYPE flotilla_gateway_requests counter
flotilla_gateway_requests_total{kind="function",namespace="default",name="hello",code="200"} 3
# HELP flotilla_gateway_request_duration_seconds Time to the response head.
# TYPE flotilla_gateway_request_duration_seconds histogram
flotilla_gateway_request_duration_seconds_bucket{kind="function",namespace="default",name="hello",le="0.0001"} 0
flotilla_gateway_request_duration_seconds_count{namespace="default",name="hello"} 3
# EOF
"#
        );
        let odd = only_function(EXPOSITION, "default", "a\"b,c=\\");
        assert!(odd.contains("le=\"0.0001\"} 0"), "{odd}");
        assert_eq!(odd.lines().filter(|l| !l.starts_with('#')).count(), 1);
    }

    #[test]
    fn label_sets_are_parsed_with_escapes() {
        assert_eq!(
            labels(r#"m{a="x\"y",b="\\",c="line\n"} 1"#).unwrap(),
            [
                ("a".to_string(), "x\"y".to_string()),
                ("b".into(), "\\".into()),
                ("c".into(), "line\n".into())
            ]
        );
        assert_eq!(labels("m 1").unwrap(), []);
        assert_eq!(labels(r#"m{a="unterminated} 1"#), None);
    }

    #[test]
    fn the_metrics_origin_is_the_gateways() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/function/hello").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("https://example.test/function/x"), None);
        assert_eq!(origin_of("not a url"), None);
    }
}
