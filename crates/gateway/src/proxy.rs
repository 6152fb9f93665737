//! The gateway's request path: find the target, read the body (413 past the limit), pick a
//! ready backend, send, and try another backend when one turns out to be gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full, Limited};

use crate::routes::{self, Target};
use crate::services::{self, PortRef};
use crate::upstream::Backend;
use crate::{Gateway, metrics};

/// Where round-robin balancing starts next; shared by every target, which spreads each
/// target's requests evenly enough.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// At most this many backends are tried for one request.
const MAX_ATTEMPTS: usize = 3;

pub(crate) fn router(gateway: Gateway) -> Router {
    Router::new().fallback(handle).with_state(gateway)
}

/// An error answer of the gateway itself: a status, and a message that says what to do.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}

pub(crate) fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// [`refuse`] as a response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    refuse(status, message).into_response()
}

async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    match routes::target(&path_and_query, host.as_deref()) {
        Some(Target::Function {
            namespace,
            name,
            path,
        }) => crate::functions::serve(&gateway, &namespace, &name, path, request).await,
        Some(Target::Service {
            namespace,
            name,
            port,
            path,
        }) => {
            let port = port.map_or(PortRef::First, PortRef::Number);
            serve_service(&gateway, &namespace, &name, port, path, request).await
        }
        None => match request.uri().path() {
            "/metrics" => gateway.metrics.render(),
            "/healthz" => "ok\n".into_response(),
            _ => {
                let host = host.unwrap_or_default();
                match services::ingress_route(&gateway.cache, &host, request.uri().path()) {
                    Some(route) => {
                        serve_service(
                            &gateway,
                            &route.namespace,
                            &route.service,
                            route.port,
                            path_and_query,
                            request,
                        )
                        .await
                    }
                    None => error(
                        StatusCode::NOT_FOUND,
                        format!(
                            "nothing is served at http://{host}{path_and_query}: Functions answer \
                             at /function/NAME (or NAME.NAMESPACE), Services at \
                             /service/NAME.NAMESPACE or as Host NAME.NAMESPACE.svc, and \
                             Ingress rules by host and path"
                        ),
                    ),
                }
            }
        },
    }
}

async fn serve_service(
    gateway: &Gateway,
    namespace: &str,
    name: &str,
    port: PortRef,
    path: String,
    request: Request,
) -> Response {
    let started = Instant::now();
    let mut response = match services::backends(&gateway.cache, namespace, name, &port) {
        Ok(backends) => match read_body(gateway, request).await {
            Ok((parts, body)) => {
                let what = format!("Service {name} in namespace {namespace}");
                forward(gateway, &what, &backends, parts, body, &path).await
            }
            Err(refusal) => refusal.into_response(),
        },
        Err(refusal) => refusal.into_response(),
    };
    gateway.metrics.finish(
        metrics::Kind::Service,
        namespace,
        name,
        &mut response,
        started.elapsed(),
    );
    response
}

/// Reads the whole request body, refusing one over the gateway's limit with 413.
pub(crate) async fn read_body(
    gateway: &Gateway,
    request: Request,
) -> Result<(http::request::Parts, Bytes), Refusal> {
    let limit = gateway.config.max_body_bytes;
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over this gateway's limit of {limit} bytes"),
        )
    };
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {error}"),
        )),
    }
}

/// Sends the request to one of `backends`, starting at the next in turn and moving on to the
/// following one when a backend turns out to be unreachable (nothing reached a handler, so
/// the request can be sent again whatever its method).
pub(crate) async fn forward(
    gateway: &Gateway,
    what: &str,
    backends: &[Backend],
    parts: http::request::Parts,
    body: Bytes,
    path: &str,
) -> Response {
    if backends.is_empty() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} has no ready endpoints: check that its pods are Running and Ready"),
        );
    }
    let uri: http::Uri = match path.parse() {
        Ok(uri) => uri,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad path {path:?}: {e}")),
    };
    let start = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut failures = Vec::new();
    for attempt in 0..backends.len().min(MAX_ATTEMPTS) {
        let backend = &backends[(start + attempt) % backends.len()];
        let mut request = http::Request::new(Full::new(body.clone()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = parts.headers.clone();
        match gateway.upstreams.send(backend, request).await {
            Ok(response) => return response,
            Err(unreachable) => {
                tracing::debug!(%what, pod = %backend.pod, %unreachable, "endpoint unreachable; trying another");
                failures.push(unreachable.to_string());
            }
        }
    }
    error(
        StatusCode::BAD_GATEWAY,
        format!(
            "no endpoint of {what} could be reached: {}",
            failures.join("; ")
        ),
    )
}
