//! Serverless Functions: the controller that runs their instances as pods
//! ([`controller`]), the autoscaler that decides how many ([`autoscaler`]), and the request
//! path with its activator ([`serve`]): a request for a Function with no ready instance is
//! held until one is ready and then answered — except that for a Function scaled to zero,
//! a node in this process answers it at once with a *stand-in* instance of the pod being
//! started (see `flotilla_node::serving::HttpPods::serve_stand_in`), which is what keeps a
//! cold start within a millisecond.

mod autoscaler;
mod controller;
mod failures;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use flotilla_api::function::{FUNCTION_LABEL, Function};
use flotilla_controllers::expectations::Expectations;
use flotilla_controllers::informer::{Change, ObjectKey};
use flotilla_controllers::queue::WorkQueue;
use flotilla_controllers::worker::run_workers;
use flotilla_node::serving::ServeError;
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::cache::Cache;
use crate::metrics::{Kind, Metrics};
use crate::proxy::{Refusal, error, forward, read_body, refuse};
use crate::upstream::Backend;
use crate::{Gateway, GatewayConfig};

pub(crate) struct Functions {
    client: kube::Client,
    config: Arc<GatewayConfig>,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    autoscaler: autoscaler::Autoscaler,
    failures: failures::Failures,
    expectations: Expectations,
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl Functions {
    pub(crate) fn new(
        client: kube::Client,
        config: Arc<GatewayConfig>,
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
    ) -> Arc<Functions> {
        let queue = WorkQueue::new();
        cache.functions.enqueue_changes(&queue);
        cache.function_pods.on_change({
            let queue = queue.clone();
            move |change: &Change<'_, Pod>| {
                let pods: Vec<&Pod> = match change {
                    Change::Applied { old, new } => old.iter().copied().chain([*new]).collect(),
                    Change::Deleted(old) => vec![*old],
                    Change::Resynced => Vec::new(),
                };
                for pod in pods {
                    if let Some(name) = pod.labels().get(FUNCTION_LABEL) {
                        queue.add(ObjectKey::new(pod.namespace().unwrap_or_default(), name));
                    }
                }
            }
        });
        Arc::new(Functions {
            client,
            config,
            cache,
            metrics,
            autoscaler: autoscaler::Autoscaler::default(),
            failures: failures::Failures::default(),
            expectations: Expectations::default(),
            queue,
        })
    }

    /// Runs the controller's workers and the autoscaler until `shutdown` completes.
    pub(crate) async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        self.cache.functions.synced().await;
        self.cache.function_pods.synced().await;
        tracing::info!("function controller and autoscaler started");
        let workers = {
            let functions = self.clone();
            run_workers("function-controller", self.queue.clone(), 2, move |key| {
                let functions = functions.clone();
                async move { functions.reconcile(&key).await }
            })
        };
        let autoscale = async {
            let mut ticks = tokio::time::interval(self.config.autoscale_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let changed = self.autoscaler.tick(self.config.scale_down_delay, |key| {
                    let function = self.cache.functions.get(Some(&key.namespace), &key.name)?;
                    Some(function.spec.clone())
                });
                for key in changed {
                    self.queue.add(key);
                }
            }
        };
        tokio::select! {
            _ = workers => {}
            _ = autoscale => {}
            _ = shutdown => {}
        }
        self.queue.shut_down();
    }

    /// The live pods of a Function, from the cache.
    fn function_pods(&self, namespace: &str, name: &str) -> Vec<Arc<Pod>> {
        self.cache.pods_by_function.pods(namespace, name)
    }

    /// The Function's instances that can take a request now: Ready pods, and pods already
    /// serving on a node in this process (which need not wait for their Ready status to
    /// travel through the API).
    fn ready_backends(&self, gateway: &Gateway, namespace: &str, name: &str) -> Vec<Backend> {
        self.function_pods(namespace, name)
            .into_iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter_map(|pod| {
                let node = pod.spec.as_ref()?.node_name.clone()?;
                let pod_name = pod.name_any();
                let ready = flotilla_controllers::pods::is_ready(&pod)
                    || gateway
                        .upstreams
                        .serving_locally(&node, namespace, &pod_name);
                ready.then(|| Backend {
                    node,
                    namespace: namespace.to_string(),
                    pod: pod_name,
                    port: None,
                })
            })
            .collect()
    }
}

/// Answers a request for a Function: at once when an instance is ready, otherwise after the
/// activator has had one started (a cold start), or with the reason none can start.
pub(crate) async fn serve(
    gateway: &Gateway,
    namespace: &str,
    name: &str,
    path: String,
    request: Request,
) -> Response {
    let started = Instant::now();
    let mut response = serve_inner(gateway, namespace, name, path, request).await;
    let key = ObjectKey::new(namespace, name);
    if gateway.cache.functions.get(Some(namespace), name).is_some()
        && gateway.functions.failures.record(&key, &response)
    {
        // A new kind of failure: the controller puts it in the Function's status.
        gateway.functions.queue.add(key);
    }
    gateway.metrics.finish(
        Kind::Function,
        namespace,
        name,
        &mut response,
        started.elapsed(),
    );
    response
}

async fn serve_inner(
    gateway: &Gateway,
    namespace: &str,
    name: &str,
    path: String,
    request: Request,
) -> Response {
    let functions = &gateway.functions;
    let Some(function) = gateway.cache.functions.get(Some(namespace), name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "there is no Function {name} in namespace {namespace} (kubectl get functions -n \
                 {namespace})"
            ),
        );
    };
    let (parts, body) = match read_body(gateway, request).await {
        Ok(read) => read,
        Err(refusal) => return refusal.into_response(),
    };
    let key = ObjectKey::new(namespace, name);
    let initial = current_desired(&function);
    let (_in_flight, raised) = functions.autoscaler.arrive(&key, &function.spec, initial);
    let what = format!("Function {name} in namespace {namespace}");
    let backends = functions.ready_backends(gateway, namespace, name);
    if !backends.is_empty() {
        if raised {
            functions.queue.add(key);
        }
        return forward(gateway, &what, &backends, parts, body, &path).await;
    }
    gateway.metrics.cold_start(namespace, name);
    if gateway.config.stand_ins && function.spec.min_scale() == 0 {
        let answered = stand_in(gateway, &function, &parts, body.clone(), &path).await;
        // The instance is started once this request is answered: on a small machine,
        // starting it alongside would slow down the answer the stand-in is there to speed up.
        if raised {
            functions.queue.add(key);
        }
        if let StandIn::Answered(response) = answered {
            return response;
        }
    } else if raised {
        functions.queue.add(key);
    }
    match activate(gateway, &function, namespace, name).await {
        Ok(ready) => forward(gateway, &what, &ready, parts, body, &path).await,
        Err(refusal) => refusal.into_response(),
    }
}

enum StandIn {
    Answered(Response),
    /// No node here takes stand-ins: the request waits for the pod.
    Unavailable,
}

/// Answers a cold request at once with a stand-in — an instance of the pod the controller
/// is starting, run on a node in this process before that pod exists — so that a Function
/// scaled to zero answers its first request in an instantiation's time rather than a pod
/// start's. The pod still starts, and takes the requests that follow.
async fn stand_in(
    gateway: &Gateway,
    function: &Function,
    parts: &http::request::Parts,
    body: bytes::Bytes,
    path: &str,
) -> StandIn {
    let (namespace, name) = (
        function.namespace().unwrap_or_default(),
        function.name_any(),
    );
    let revision = controller::revision_of(function);
    let pod = || controller::pod_for(function, &revision);
    let uri: http::Uri = match path.parse() {
        Ok(uri) => uri,
        Err(e) => {
            return StandIn::Answered(error(
                StatusCode::BAD_REQUEST,
                format!("bad path {path:?}: {e}"),
            ));
        }
    };
    let mut request = http::Request::new(http_body_util::Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers.clone();
    let template = format!("{namespace}/{name}/{revision}");
    match gateway.upstreams.stand_in(&template, pod, request).await {
        None | Some(Err(ServeError::NoSuchPod(_))) => StandIn::Unavailable,
        Some(Ok(response)) => StandIn::Answered(response),
        Some(Err(ServeError::CannotStart(why))) => StandIn::Answered(error(
            StatusCode::BAD_GATEWAY,
            format!("Function {name} in namespace {namespace} cannot start an instance: {why}"),
        )),
        Some(Err(failure)) => StandIn::Answered(failure.into_response()),
    }
}

/// What the Function's status last said it wanted, or its minimum.
fn current_desired(function: &Function) -> i32 {
    function
        .status
        .as_ref()
        .and_then(|s| s.desired_instances)
        .unwrap_or_else(|| function.spec.min_scale())
}

/// Waits until the Function has a ready instance, for at most the cold-start timeout; fails
/// early when its instances cannot start (a component that does not load or serve).
async fn activate(
    gateway: &Gateway,
    function: &Function,
    namespace: &str,
    name: &str,
) -> Result<Vec<Backend>, Refusal> {
    let functions = &gateway.functions;
    let mut pods_changed = gateway.cache.watch_pods();
    let mut serving_changed = gateway.upstreams.watch_serving();
    let deadline = tokio::time::Instant::now() + gateway.config.cold_start_timeout;
    tracing::debug!(%namespace, function = %name, "cold start: waiting for an instance");
    loop {
        let backends = functions.ready_backends(gateway, namespace, name);
        if !backends.is_empty() {
            return Ok(backends);
        }
        if function.spec.max_scale() < 1 {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Function {name} has maxScale 0"),
            ));
        }
        let pods = functions.function_pods(namespace, name);
        if let Some((reason, message)) = controller::image_failure(&pods) {
            return Err(refuse(
                StatusCode::BAD_GATEWAY,
                format!(
                    "Function {name} in namespace {namespace} cannot start an instance: {reason}: \
                     {message}"
                ),
            ));
        }
        tokio::select! {
            _ = pods_changed.changed() => {}
            _ = serving_changed.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(refuse(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "no instance of Function {name} in namespace {namespace} became ready \
                         within {:?}; see kubectl get pods -n {namespace} -l \
                         {FUNCTION_LABEL}={name}",
                        gateway.config.cold_start_timeout
                    ),
                ));
            }
        }
    }
}
