//! The node's HTTP pods: containers whose component exports `wasi:http/incoming-handler`
//! serve requests here instead of running to an end.
//!
//! While such a container is running, its pod worker keeps a [`Server`] registered in the
//! node's [`HttpPods`]; each request then gets a fresh instance of the component
//! ([`Runtime::handle_request`]). Requests reach a pod in one of two ways:
//!
//! - over HTTP, at the node's endpoint: `ANY /http/{namespace}/{pod}/{path…}` is handled as
//!   `ANY /{path…}` by that pod (the `flotilla-target-port` header picks the container when
//!   the pod has several HTTP containers). This is how the gateway reaches a node elsewhere.
//! - in process, through [`HttpPods::serve`], which the gateway calls for the nodes that
//!   share its process in `flotilla up`, skipping a TCP hop.
//!
//! A request for a pod that is not serving here gets 404 with the header
//! `flotilla-error: no-such-pod`, so that the gateway knows the request never reached a
//! handler and may safely try another endpoint.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http_body_util::BodyExt as _;

use crate::runtime::{HttpFailure, PreparedModule, RunSpec, Runtime};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The header that picks which of a pod's HTTP containers serves a request, by container port.
pub const TARGET_PORT_HEADER: &str = "flotilla-target-port";
/// The header on a node's own error answers (not the handler's), saying what went wrong:
/// `no-such-pod`, `handler-failed`, `no-response`, `timeout` or `cannot-start`.
pub const ERROR_HEADER: &str = "flotilla-error";
/// The pod annotation with the time, in seconds, a request may take (a Function's
/// `timeoutSeconds`); [`DEFAULT_REQUEST_TIMEOUT`] without it.
pub const REQUEST_TIMEOUT_ANNOTATION: &str = "flotilla.dev/request-timeout-seconds";
/// The pod annotation (`http`) saying the pod exists to serve HTTP, as a Function's pods do:
/// a module that is not an HTTP component then fails to pull with that reason, rather than
/// being run as a command.
pub const SERVE_ANNOTATION: &str = "flotilla.dev/serve";
/// How long a request to an HTTP pod may take when its pod does not say.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The HTTP containers of each pod (by namespace and name) that serve here.
type ServerTable = HashMap<(String, String), Vec<Arc<Server>>>;

/// The HTTP containers running on this node, by pod. Cheap to clone: clones share the table.
#[derive(Clone, Default)]
pub struct HttpPods {
    servers: Arc<RwLock<ServerTable>>,
    /// Bumped whenever a server comes or goes, for whoever waits for a pod to serve.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Set once the node runs: what answers for pods that do not run yet.
    stand_ins: Arc<std::sync::OnceLock<Arc<crate::stand_in::StandIns>>>,
}

impl std::fmt::Debug for HttpPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers = self.servers.read().expect("http pods poisoned");
        f.debug_struct("HttpPods")
            .field("pods", &servers.len())
            .finish()
    }
}

/// One running HTTP container: what each of its requests is started from.
pub struct Server {
    pub(crate) container: String,
    /// The container's declared ports, which a request's target port is matched against.
    pub(crate) ports: Vec<i32>,
    pub(crate) runtime: Runtime,
    pub(crate) module: PreparedModule,
    /// The sandbox of every request: args, env, mounts, limits and the container's log file.
    pub(crate) spec: RunSpec,
    pub(crate) timeout: Duration,
}

/// Why a request could not be handed to a handler, or what the handler did wrong.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No HTTP container of that pod runs on this node (any more, or yet).
    #[error("pod {0} serves no HTTP on this node")]
    NoSuchPod(String),
    /// The handler failed, gave no valid response or took too long.
    #[error(transparent)]
    Handler(#[from] HttpFailure),
    /// A stand-in could not be started: its module cannot be fetched, does not load or does
    /// not serve HTTP, or its environment names what does not exist.
    #[error("{0}")]
    CannotStart(String),
}

impl ServeError {
    /// The status a client gets for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            ServeError::NoSuchPod(_) => http::StatusCode::NOT_FOUND,
            ServeError::Handler(failure) => failure.status(),
            ServeError::CannotStart(_) => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The value of [`ERROR_HEADER`] for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::NoSuchPod(_) => "no-such-pod",
            ServeError::Handler(HttpFailure::Timeout(_)) => "timeout",
            ServeError::Handler(HttpFailure::NoResponse(_)) => "no-response",
            ServeError::Handler(_) => "handler-failed",
            ServeError::CannotStart(_) => "cannot-start",
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), format!("{self}\n")).into_response();
        response
            .headers_mut()
            .insert(ERROR_HEADER, http::HeaderValue::from_static(self.code()));
        response
    }
}

/// Keeps a server registered while it lives.
pub(crate) struct Registration {
    pods: HttpPods,
    key: (String, String),
    server: Arc<Server>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut servers = self.pods.servers.write().expect("http pods poisoned");
        if let Some(list) = servers.get_mut(&self.key) {
            list.retain(|s| !Arc::ptr_eq(s, &self.server));
            if list.is_empty() {
                servers.remove(&self.key);
            }
        }
        drop(servers);
        self.pods.changes.send_modify(|n| *n += 1);
    }
}

impl HttpPods {
    /// Serves `namespace/pod`'s requests with `server` until the returned guard is dropped.
    pub(crate) fn register(&self, namespace: &str, pod: &str, server: Server) -> Registration {
        let key = (namespace.to_string(), pod.to_string());
        let server = Arc::new(server);
        self.servers
            .write()
            .expect("http pods poisoned")
            .entry(key.clone())
            .or_default()
            .push(server.clone());
        self.changes.send_modify(|n| *n += 1);
        tracing::debug!(%namespace, %pod, container = %server.container, "serving HTTP");
        Registration {
            pods: self.clone(),
            key,
            server,
        }
    }

    /// A receiver that sees every later change of which pods serve here.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether any container of the pod serves HTTP here now.
    pub fn is_serving(&self, namespace: &str, pod: &str) -> bool {
        let servers = self.servers.read().expect("http pods poisoned");
        servers.contains_key(&(namespace.to_string(), pod.to_string()))
    }

    /// Handles `request` with the pod's HTTP container: the one declaring `port` when given
    /// and declared, else the first. The request's URI is what the handler sees.
    pub async fn serve<B>(
        &self,
        namespace: &str,
        pod: &str,
        port: Option<u16>,
        request: http::Request<B>,
    ) -> Result<Response, ServeError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let server = {
            let servers = self.servers.read().expect("http pods poisoned");
            let list = servers
                .get(&(namespace.to_string(), pod.to_string()))
                .filter(|list| !list.is_empty())
                .ok_or_else(|| ServeError::NoSuchPod(format!("{namespace}/{pod}")))?;
            port.and_then(|port| {
                list.iter()
                    .find(|s| s.ports.contains(&i32::from(port)))
                    .cloned()
            })
            .unwrap_or_else(|| list[0].clone())
        };
        let spec = server.spec.try_clone().map_err(|e| {
            ServeError::Handler(HttpFailure::Setup(format!(
                "could not open the container log: {e}"
            )))
        })?;
        answer(
            &server.runtime,
            &server.module,
            spec,
            server.timeout,
            request,
        )
        .await
    }

    /// Lets this node answer requests with stand-ins ([`stand_in`](crate::stand_in)).
    pub(crate) fn enable_stand_ins(&self, stand_ins: crate::stand_in::StandIns) {
        let _ = self.stand_ins.set(Arc::new(stand_ins));
    }

    /// Handles `request` with a stand-in for `pod`, a pod about to be created that is not
    /// running yet: a fresh instance of its HTTP component in the sandbox the pod will have.
    /// `template` names the pod's template (a Function's revision, say): what a stand-in
    /// needs is prepared once per template, and `pod` is only called to make the pod when
    /// it is (again). [`ServeError::NoSuchPod`] when this node has no
    /// stand-ins (it has not started yet) or cannot stand in for such a pod.
    pub async fn serve_stand_in<B>(
        &self,
        template: &str,
        pod: impl Fn() -> k8s_openapi::api::core::v1::Pod,
        request: http::Request<B>,
    ) -> Result<Response, ServeError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let stand_ins = self.stand_ins.get().ok_or_else(|| {
            ServeError::NoSuchPod("this node takes no stand-in requests (yet)".into())
        })?;
        stand_ins.serve(template, pod, request).await
    }
}

/// Handles one request in a new instance of `module` and settles the start of its response:
/// an HTTP component's handler, or a WASI preview 1 program run CGI style (WAGI).
pub(crate) async fn answer<B>(
    runtime: &Runtime,
    module: &PreparedModule,
    spec: RunSpec,
    timeout: Duration,
    request: http::Request<B>,
) -> Result<Response, ServeError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    if !module.serves_http() {
        return Ok(runtime.handle_cgi(module, spec, timeout, request).await?);
    }
    let started = std::time::Instant::now();
    let response = runtime
        .handle_request(module, spec, timeout, request)
        .await?;
    let (parts, body) = response.into_parts();
    let body = settle(body).await.map_err(|failure| {
        if started.elapsed() >= timeout {
            HttpFailure::Timeout(timeout)
        } else {
            failure
        }
    })?;
    Ok(Response::from_parts(parts, body))
}

/// Response bodies up to this size are read whole before the response head goes out.
const SETTLED_BODY_MAX: usize = 256 << 10;

/// Reads a response body up to [`SETTLED_BODY_MAX`] before its head is sent, so that a
/// handler whose body fails — it traps halfway, or sends fewer bytes than its
/// `content-length` — gets a clean 502 instead of a connection cut with no answer, and small
/// answers go out in one piece with their length. A longer body streams on after its first
/// [`SETTLED_BODY_MAX`] bytes (trailers are dropped).
async fn settle(mut body: HyperOutgoingBody) -> Result<Body, HttpFailure> {
    let mut head = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(Body::from(head.freeze())),
            Some(Err(error)) => {
                return Err(HttpFailure::NoResponse(format!(
                    "its response body failed: {error}"
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
                if head.len() > SETTLED_BODY_MAX {
                    let first = futures::stream::once(std::future::ready(Ok(
                        http_body::Frame::data(head.freeze()),
                    )));
                    let rest = http_body_util::BodyStream::new(body);
                    use futures::StreamExt as _;
                    return Ok(Body::new(http_body_util::StreamBody::new(
                        first.chain(rest),
                    )));
                }
            }
        }
    }
}

/// The node endpoint's routes for HTTP pods: `ANY /http/{namespace}/{pod}/{path…}`.
pub fn router(pods: HttpPods) -> axum::Router {
    axum::Router::new()
        .route("/http/{namespace}/{pod}", any(serve_root))
        .route("/http/{namespace}/{pod}/{*path}", any(serve_path))
        .with_state(pods)
}

async fn serve_root(
    State(pods): State<HttpPods>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
    forward(pods, namespace, pod, String::new(), request).await
}

async fn serve_path(
    State(pods): State<HttpPods>,
    Path((namespace, pod, path)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    forward(pods, namespace, pod, path, request).await
}

async fn forward(
    pods: HttpPods,
    namespace: String,
    pod: String,
    path: String,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut uri = format!("/{path}");
    if let Some(query) = parts.uri.query() {
        uri.push('?');
        uri.push_str(query);
    }
    parts.uri = match uri.parse() {
        Ok(uri) => uri,
        Err(error) => {
            return (
                http::StatusCode::BAD_REQUEST,
                format!("bad path: {error}\n"),
            )
                .into_response();
        }
    };
    let port = parts
        .headers
        .remove(TARGET_PORT_HEADER)
        .and_then(|value| value.to_str().ok()?.parse().ok());
    let body = body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())));
    let request = http::Request::from_parts(parts, body);
    match pods.serve(&namespace, &pod, port, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%namespace, %pod, %error, "request not served");
            error.into_response()
        }
    }
}

/// How long a request to `pod` may take: its [`REQUEST_TIMEOUT_ANNOTATION`], or the default.
pub fn request_timeout(pod: &k8s_openapi::api::core::v1::Pod) -> Duration {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUEST_TIMEOUT_ANNOTATION))
        .and_then(|seconds| seconds.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs_f64)
}
