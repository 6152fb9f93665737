//! Stand-ins: answering a pod's requests before the pod runs.
//!
//! A Function scaled to zero has no pod. Its first request would wait for one to be created,
//! scheduled and started — two durable writes and a few watch hops, several milliseconds.
//! Instead the gateway's activator hands that request to a node in its own process together
//! with the pod the Function's controller is about to create, and the node answers it with a
//! *stand-in*: a fresh instance of the pod's HTTP component in the sandbox the pod will have
//! (its args, environment, memory and CPU limits, outbound policy and request timeout), as
//! every request to a running HTTP pod gets anyway. The pod itself starts as usual, and takes
//! the requests from then on.
//!
//! What a stand-in needs (the compiled module, the resolved environment) is prepared once per
//! pod template and kept, so a cold start costs an instantiation. A preparation last checked
//! more than [`REFRESH_AFTER`] ago is prepared again in the background when used, so that a
//! module pushed again under the same tag reaches stand-ins as it reaches new pods.
//!
//! A stand-in has no pod and so no pod log: what the handler prints goes to the node's log
//! (target `flotilla_node::stand_in`, level INFO) with the pod template's namespace and name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use bytes::Bytes;
use k8s_openapi::api::core::v1::{Container, Pod, Service};
use kube::ResourceExt as _;
use kube::runtime::reflector::Store;

use crate::images::{ImageRequest, Resolver};
use crate::pod::PodContext;
use crate::runtime::{OutboundPolicy, PreparedModule, RunSpec, Runtime};
use crate::serving::ServeError;

/// How long a kept preparation is used before it is refreshed.
const REFRESH_AFTER: Duration = Duration::from_secs(10);
/// How many pod templates' preparations are kept; past it the oldest go.
const KEPT_TEMPLATES: usize = 256;
/// How much of a stand-in's output is copied into the node's log.
const MAX_LOGGED_OUTPUT: u64 = 64 << 10;

/// The node's stand-ins: what they run with, and what is prepared for each pod template.
pub(crate) struct StandIns {
    runtime: Runtime,
    images: Resolver,
    client: kube::Client,
    services: Store<Service>,
    gateway: Option<String>,
    prepared: Mutex<HashMap<String, Kept>>,
}

/// A pod template's preparation, and when it was last known to be current.
struct Kept {
    prepared: Arc<Prepared>,
    checked: Instant,
}

/// One pod template, ready to answer requests.
struct Prepared {
    module: PreparedModule,
    container: Container,
    namespace: String,
    /// The pod's name or, for a pod still to be named, its `generateName`.
    pod: String,
    env: Vec<(String, String)>,
    memory_limit: Option<u64>,
    cpu_limit: Option<u64>,
    outbound: Arc<OutboundPolicy>,
    timeout: Duration,
}

impl StandIns {
    pub(crate) fn new(context: &PodContext) -> StandIns {
        StandIns {
            runtime: context.runtime.clone(),
            images: context.images.clone(),
            client: context.client.clone(),
            services: context.services.clone(),
            gateway: context.gateway.clone(),
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Answers `request` as `pod` would, once it runs.
    pub(crate) async fn serve<B>(
        self: &Arc<Self>,
        template: &str,
        pod: impl Fn() -> Pod,
        request: http::Request<B>,
    ) -> Result<Response, ServeError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let prepared = match self.kept(template, &pod) {
            Some(prepared) => prepared,
            None => {
                let prepared = Arc::new(self.prepare(&pod()).await?);
                self.keep(template, prepared.clone());
                prepared
            }
        };
        let output = tempfile::tempfile().map_err(|e| {
            ServeError::CannotStart(format!("could not create a stand-in's output file: {e}"))
        })?;
        let spec = prepared.spec(output.try_clone().map_err(|e| {
            ServeError::CannotStart(format!("could not open a stand-in's output file: {e}"))
        })?);
        let answered = crate::serving::answer(
            &self.runtime,
            &prepared.module,
            spec,
            prepared.timeout,
            request,
        )
        .await;
        prepared.log_output(output);
        answered
    }

    /// What is kept for `template`; refreshed in the background when it was last checked
    /// more than [`REFRESH_AFTER`] ago.
    fn kept(self: &Arc<Self>, template: &str, pod: impl Fn() -> Pod) -> Option<Arc<Prepared>> {
        let mut kept = self.prepared.lock().expect("stand-ins poisoned");
        let entry = kept.get_mut(template)?;
        if entry.checked.elapsed() > REFRESH_AFTER {
            // Marked at once, so that a burst of requests refreshes once.
            entry.checked = Instant::now();
            let (stand_ins, template, pod) = (self.clone(), template.to_string(), pod());
            tokio::spawn(async move {
                match stand_ins.prepare(&pod).await {
                    Ok(prepared) => stand_ins.keep(&template, Arc::new(prepared)),
                    Err(error) => {
                        tracing::debug!(%template, %error, "a stand-in's template no longer prepares");
                        let mut kept = stand_ins.prepared.lock().expect("stand-ins poisoned");
                        kept.remove(&template);
                    }
                }
            });
        }
        Some(entry.prepared.clone())
    }

    fn keep(&self, template: &str, prepared: Arc<Prepared>) {
        let mut kept = self.prepared.lock().expect("stand-ins poisoned");
        if kept.len() >= KEPT_TEMPLATES && !kept.contains_key(template) {
            let oldest = (kept.iter())
                .min_by_key(|(_, entry)| entry.checked)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                kept.remove(&oldest);
            }
        }
        let checked = Instant::now();
        kept.insert(template.to_string(), Kept { prepared, checked });
    }

    /// Fetches and compiles the pod's first container's module and resolves its environment.
    async fn prepare(&self, pod: &Pod) -> Result<Prepared, ServeError> {
        let unable = |why: &str| ServeError::NoSuchPod(format!("no stand-in for this pod: {why}"));
        let spec = pod.spec.as_ref().ok_or_else(|| unable("it has no spec"))?;
        // Volumes are set up by a pod's worker, which a stand-in does not have.
        if spec.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(unable("it has volumes"));
        }
        let container = spec
            .containers
            .first()
            .ok_or_else(|| unable("it has no container"))?;
        let image = container.image.clone().unwrap_or_default();
        let bytes = self
            .images
            .fetch(&ImageRequest::of(pod, container))
            .await
            .map_err(|e| ServeError::CannotStart(format!("{}: {e}", e.reason())))?;
        let module =
            self.runtime.prepare(bytes).await.map_err(|e| {
                ServeError::CannotStart(format!("module {image:?} cannot run: {e}"))
            })?;
        if !module.can_serve_http() {
            return Err(ServeError::CannotStart(crate::pod::cannot_serve_http(
                &image,
            )));
        }
        let env = crate::pod::env::resolve(&self.client, &self.services, pod, container)
            .await
            .map_err(ServeError::CannotStart)?;
        let (memory_limit, cpu_limit) = crate::pod::limits(container);
        Ok(Prepared {
            module,
            container: container.clone(),
            namespace: pod.namespace().unwrap_or_default(),
            pod: (pod.metadata.name.clone())
                .or_else(|| pod.metadata.generate_name.clone())
                .unwrap_or_default(),
            env,
            memory_limit,
            cpu_limit,
            outbound: Arc::new(crate::pod::outbound_policy(pod, self.gateway.clone())),
            timeout: crate::serving::request_timeout(pod),
        })
    }
}

impl Prepared {
    fn spec(&self, output: std::fs::File) -> RunSpec {
        RunSpec {
            program_name: self.container.name.clone(),
            args: crate::pod::arguments(&self.container),
            env: self.env.clone(),
            stdout: output,
            memory_limit_bytes: self.memory_limit,
            preopens: Vec::new(),
            working_dir: self.container.working_dir.clone(),
            cpu_limit_millicores: self.cpu_limit,
            usage: Default::default(),
            outbound: self.outbound.clone(),
        }
    }

    /// Copies what the handler printed into the node's log, a line an event.
    fn log_output(&self, mut output: std::fs::File) {
        let text = crate::log_file::read_back(&mut output, MAX_LOGGED_OUTPUT);
        for line in String::from_utf8_lossy(&text).lines() {
            tracing::info!(
                namespace = %self.namespace,
                pod = %self.pod,
                container = %self.container.name,
                "{line}"
            );
        }
    }
}
