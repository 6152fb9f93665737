//! flotilla-gateway: the cluster's HTTP front door, flotilla's kube-proxy, ingress controller
//! and serverless activator in one.
//!
//! It sits at the end of the pipeline, beside the node agents: it watches Services,
//! Endpoints, Ingresses, Functions, Nodes and the Functions' pods through the API, and sends
//! each request to a ready pod on whichever node runs it — in process for the nodes that share
//! its process (`flotilla up`), over HTTP to the node's endpoint for the others.
//!
//! What it answers:
//!
//! - `/function/NAME/…` (namespace `default`) and `/function/NAME.NAMESPACE/…`: a Function;
//!   the handler sees the rest of the path and the query. A Function scaled to zero has its
//!   first requests answered by stand-ins on a node in this process while its pod starts, or
//!   held by the activator until an instance is ready when no such node can. Every answer
//!   says the gateway's time in a `Server-Timing` header.
//! - `/service/NAME.NAMESPACE/…` (`NAME.NAMESPACE:PORT` for another port than the first),
//!   and any request whose `Host` is `NAME.NAMESPACE.svc` (or `.svc.cluster.local`): a
//!   Service, balanced over its ready endpoints. This is also how pods reach Services
//!   (`flotilla-node`'s outbound policy sends them here).
//! - Otherwise the Ingress rules (networking.k8s.io/v1) by host and path.
//! - `/metrics`: requests, errors and latency per Function and Service, and instances per
//!   Function, in the Prometheus text format; `/healthz`.
//!
//! A request that cannot reach an endpoint because the endpoint went away (its pod is no
//! longer served by its node, or the node cannot be connected to) is sent to another one:
//! nothing reached a handler, so retrying is safe whatever the method. Request bodies are
//! read in full first (up to `max_body_bytes`, 413 beyond), which is what makes that retry
//! possible.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! let config = flotilla_gateway::GatewayConfig::new("http://127.0.0.1:8080");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! flotilla_gateway::run(client, config, listener, std::future::pending()).await
//! # }
//! ```

mod cache;
mod functions;
mod metrics;
mod pod_index;
mod proxy;
mod routes;
mod services;
mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use flotilla_node::serving::HttpPods;

pub use routes::Target;

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's own URL as clients reach it, for Functions' `status.url`.
    pub public_url: String,
    /// The largest request body taken; larger ones get 413.
    pub max_body_bytes: usize,
    /// Node agents in this process, by node name, reached without a network hop.
    pub local_nodes: HashMap<String, HttpPods>,
    /// How long a Function stays scaled up after its load drops (and at its last instance
    /// before going to zero, when idle).
    pub scale_down_delay: Duration,
    /// How often the autoscaler samples in-flight requests and decides.
    pub autoscale_interval: Duration,
    /// The longest a request waits for a Function instance to become ready (cold start).
    pub cold_start_timeout: Duration,
    /// Whether a request for a Function scaled to zero is answered at once by a stand-in on
    /// a local node while the Function's pod starts (see `flotilla_node::serving`), rather
    /// than held until the pod serves.
    pub stand_ins: bool,
}

impl GatewayConfig {
    /// Defaults: 10 MiB bodies, 30 s scale-down delay, 60 s cold-start limit, stand-ins, no
    /// local nodes.
    pub fn new(public_url: impl Into<String>) -> Self {
        GatewayConfig {
            public_url: public_url.into().trim_end_matches('/').to_string(),
            max_body_bytes: 10 << 20,
            local_nodes: HashMap::new(),
            scale_down_delay: Duration::from_secs(30),
            autoscale_interval: Duration::from_millis(200),
            cold_start_timeout: Duration::from_secs(60),
            stand_ins: true,
        }
    }
}

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) cache: Arc<cache::Cache>,
    pub(crate) upstreams: Arc<upstream::Upstreams>,
    pub(crate) functions: Arc<functions::Functions>,
    pub(crate) metrics: Arc<metrics::Metrics>,
}

/// Serves the gateway on `listener`, and runs its caches, the Function controller and the
/// autoscaler, until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let cache = Arc::new(cache::Cache::new(&client));
    let metrics = Arc::new(metrics::Metrics::default());
    let functions = functions::Functions::new(
        client.clone(),
        config.clone(),
        cache.clone(),
        metrics.clone(),
    );
    let gateway = Gateway {
        upstreams: Arc::new(upstream::Upstreams::new(
            config.local_nodes.clone(),
            cache.clone(),
        )),
        config,
        cache: cache.clone(),
        functions: functions.clone(),
        metrics,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let cache = cache.clone();
        let shutdown = until_stopped();
        async move { cache.run(shutdown).await }
    });
    tasks.spawn({
        let shutdown = until_stopped();
        async move { functions.run(shutdown).await }
    });
    let router = proxy::router(gateway);
    let address = listener.local_addr()?;
    tracing::info!(%address, "gateway serving");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the gateway");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    served
}
