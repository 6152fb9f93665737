//! flotilla-apiserver: the Kubernetes REST API over the flotilla store.
//!
//! Every client — kubectl, the flotilla CLI, the scheduler, node agents, controllers — reads and
//! writes cluster state through this router; nothing reaches the store behind its back. Objects
//! are handled as JSON for every kind alike: the path names a [`ResourceType`], the body is
//! decoded, defaulted and validated, and the store gives it a revision that becomes its
//! `resourceVersion`. Watches replay the store's history from the requested revision and then
//! stream live, one JSON event per line. The bytes of pushed modules (the `Module` kind) are
//! the one thing kept outside the store: content-addressed files uploaded and served under
//! `modules/{name}/blobs/sha256:{hex}` (see `blobs.rs` for why and how they are made durable).
//! The same router serves the browser dashboard at `/` (see `dashboard.rs`), and a Function's
//! `proxy` and `metrics` subresources, through which the dashboard invokes and charts
//! Functions (see `functions.rs`).
//!
//! ```no_run
//! # async fn demo(store: flotilla_store::Store) -> std::io::Result<()> {
//! let state = flotilla_apiserver::ApiState::new(store, Some("secret-token".into()));
//! let router = flotilla_apiserver::router(state);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6443").await?;
//! axum::serve(listener, router).await
//! # }
//! ```
//!
//! [`ResourceType`]: flotilla_api::resource::ResourceType

mod auth;
mod blobs;
mod body;
mod dashboard;
mod discovery;
mod error;
mod field_validation;
mod functions;
mod logs;
mod node_proxy;
mod objects;
mod openapi;
mod patching;
mod path;
mod propagation;
mod protobuf_body;
mod rest;
mod scale;
mod table;
mod watch;

use axum::Router;
use axum::routing::{any, get};
use flotilla_store::Store;
use std::sync::Arc;

pub use error::ApiError;

/// Shared state of the router: the store and the credentials it accepts.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    token: Option<String>,
    http: logs::NodeClient,
    /// How often a watch that allows bookmarks gets one (Kubernetes: about a minute).
    bookmark_interval: std::time::Duration,
    /// Where pushed modules' bytes live; `None` refuses module uploads.
    blobs: Option<blobs::BlobStore>,
}

impl ApiState {
    /// `token`: the bearer token every request (other than health checks) must carry; `None`
    /// disables authentication.
    pub fn new(store: Store, token: Option<String>) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                store,
                token,
                http: logs::NodeClient::new(),
                bookmark_interval: std::time::Duration::from_secs(60),
                blobs: None,
            }),
        }
    }

    /// Sets how often watches that allow bookmarks get one; call before serving.
    pub fn with_bookmark_interval(mut self, every: std::time::Duration) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("the state is configured before it is shared")
            .bookmark_interval = every;
        self
    }

    /// Keeps pushed modules' bytes in `dir` (content-addressed files, see the `blobs`
    /// module), refusing uploads over `max_size` bytes with 413; call before serving.
    pub fn with_module_blobs(
        mut self,
        dir: std::path::PathBuf,
        max_size: u64,
    ) -> std::io::Result<Self> {
        let blobs = blobs::BlobStore::new(dir, max_size)?;
        Arc::get_mut(&mut self.inner)
            .expect("the state is configured before it is shared")
            .blobs = Some(blobs);
        Ok(self)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// The whole API as an axum router, separate from serving so tests and in-process clients can
/// call it as a `tower::Service`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/livez", get(discovery::healthy))
        .route("/readyz", get(discovery::healthy))
        .route("/healthz", get(discovery::healthy))
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_index))
        .route("/openapi/v3/{*path}", get(openapi::v3_group_version))
        .route(
            blobs::ROUTE,
            get(blobs::get).put(blobs::put).head(blobs::head),
        )
        .route(node_proxy::ROUTE, get(node_proxy::get))
        .route(functions::PROXY, any(functions::proxy))
        .route(functions::PROXY_SLASH, any(functions::proxy))
        .route(functions::PROXY_PATH, any(functions::proxy))
        .route(functions::METRICS, any(functions::metrics))
        // Other methods on `/` get the same 404 Status as any path that names nothing.
        .route("/", get(dashboard::index).fallback(rest::dispatch))
        .route("/ui/{*file}", get(dashboard::file))
        .fallback(rest::dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs every request at debug level with its outcome and duration.
async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// Namespaces every cluster starts with, as Kubernetes creates them.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces if missing, so a new cluster can take objects at once.
pub async fn bootstrap(state: &ApiState) -> Result<(), ApiError> {
    for name in SYSTEM_NAMESPACES {
        objects::ensure_namespace(state, name).await?;
    }
    Ok(())
}
