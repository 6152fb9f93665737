//! flotilla-node: the node agent — flotilla's kubelet.
//!
//! It registers a Node, keeps it Ready with heartbeats, renews its Lease in `kube-node-lease`
//! (what the node lifecycle controller watches to tell a dead node), watches the pods bound to
//! it (one list+watch filtered by `spec.nodeName`), and gives each pod a supervisor task that
//! resolves its modules (files, URLs, modules pushed to the cluster, OCI artifacts; kept on
//! disk by digest and pulled as `imagePullPolicy` says), runs every container in wasmtime ([`runtime`]; WASI preview 1 modules
//! and WASI 0.2 components, compiled once and cached in the data directory) with only its
//! declared args and env, restarts them as `restartPolicy` says, and reports status through the API. What
//! the guests write to stdout and stderr goes to per-container log files, one timestamped record
//! per line ([`log_file`]), that the apiserver reads through this agent's log endpoint
//! (`/containerLogs/...`), as it does from a kubelet. With a manifest directory it also runs
//! static pods, with or without an apiserver, and mirrors them into the API ([`static_pods`]).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! let config = flotilla_node::NodeConfig::new("node-1", "/var/lib/flotilla/node-1".into());
//! flotilla_node::NodeAgent::new(client, config).run(std::future::pending()).await
//! # }
//! ```

mod config_data;
mod images;
mod lease;
pub mod log_file;
mod logs;
mod pod;
pub mod quantity;
mod registration;
pub mod static_pods;
mod stats;
pub use pod::BackoffPolicy;
pub use registration::Resources;
pub mod runtime;
pub mod serving;
mod stand_in;
mod volumes;

use anyhow::{Context, Result};
use flotilla_client::events::EventType;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a node agent is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Node's name.
    pub name: String,
    /// Where logs and other per-pod state live.
    pub data_dir: PathBuf,
    /// Directories where bare image names (`hello`, `hello:latest`) are found as `NAME.wasm`.
    pub module_dirs: Vec<PathBuf>,
    /// Address of the log endpoint; port 0 picks a free one.
    pub listen: SocketAddr,
    /// How often the Node's Ready condition is renewed.
    pub heartbeat: Duration,
    /// How often the node's Lease is renewed: a quarter of its 40 s duration by default, as the
    /// kubelet does. Keep it well under the cluster's node grace period.
    pub lease_renew_interval: Duration,
    /// Node-wide caps on what any one pod may take: memory, module size, log size.
    pub limits: runtime::Limits,
    /// What the node offers the scheduler (capacity and allocatable in its status).
    pub resources: registration::Resources,
    /// How container restarts and image pull retries back off.
    pub restart_backoff: pod::BackoffPolicy,
    /// OCI registries (`host[:port]`) pulled from over plain HTTP although they are not on
    /// loopback, as containerd's and Docker's "insecure registries".
    pub insecure_registries: Vec<String>,
    /// PEM files of certificate authorities trusted for `https://` images, besides Mozilla's
    /// roots.
    pub image_cas: Vec<PathBuf>,
    /// A directory of Pod manifests the node runs by itself, with or without an apiserver
    /// (the kubelet's `--pod-manifest-path`; see [`static_pods`]).
    pub pod_manifest_path: Option<PathBuf>,
    /// The node's HTTP pods, shared with whoever else routes requests to them in process
    /// (the gateway of `flotilla up`).
    pub http_pods: serving::HttpPods,
    /// The gateway (`host:port`) that guests' outgoing requests to Services are sent to.
    pub gateway: Option<String>,
}

impl NodeConfig {
    pub fn new(name: impl Into<String>, data_dir: PathBuf) -> Self {
        NodeConfig {
            name: name.into(),
            data_dir,
            module_dirs: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            heartbeat: Duration::from_secs(10),
            lease_renew_interval: Duration::from_secs(10),
            limits: runtime::Limits::default(),
            resources: registration::Resources::of_machine(),
            restart_backoff: pod::BackoffPolicy::default(),
            insecure_registries: Vec::new(),
            image_cas: Vec::new(),
            pod_manifest_path: None,
            http_pods: serving::HttpPods::default(),
            gateway: None,
        }
    }
}

pub struct NodeAgent {
    client: Client,
    config: NodeConfig,
}

impl NodeAgent {
    pub fn new(client: Client, config: NodeConfig) -> Self {
        NodeAgent { client, config }
    }

    /// Runs the node until `shutdown` completes. Pods keep their last reported status; a
    /// restarted agent picks them up again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let NodeAgent { client, config } = self;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "creating the node data directory {}",
                config.data_dir.display()
            )
        })?;
        // Compiled code outlives the agent, so a restart (or the next replica of an image this
        // node has run before) loads machine code rather than compiling again.
        let compiled = config.data_dir.join("compiled");
        let runtime = runtime::Runtime::configured(config.limits, Some(&compiled))
            .context("starting the wasmtime engine")?;
        let log_store = logs::LogStore::new(config.data_dir.join("pods"));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the node log endpoint on {}", config.listen))?;
        let log_address = listener.local_addr()?;
        let stats = stats::Stats::new(&config.name);
        // The kubelet's endpoint: container logs and the stats summary; and the pods' HTTP.
        let endpoint = logs::router(log_store.clone())
            .merge(stats::router(stats.clone()))
            .merge(serving::router(config.http_pods.clone()));
        let log_server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, endpoint).await {
                tracing::error!(%error, "node endpoint failed");
            }
        });
        let _log_server = AbortOnDrop(log_server);
        // Services, for the variables Kubernetes gives containers; one watch for the node.
        let (services, services_writer) = kube::runtime::reflector::store();
        let services_watch = tokio::spawn({
            let api: Api<k8s_openapi::api::core::v1::Service> = Api::all(client.clone());
            async move {
                let stream = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(services_writer)
                    .applied_objects();
                futures::pin_mut!(stream);
                while stream.next().await.is_some() {}
            }
        });
        let _services_watch = AbortOnDrop(services_watch);
        let context = pod::PodContext {
            client: client.clone(),
            runtime,
            // Pushed and registry modules are kept by digest in the data directory, so a
            // restarted agent runs what it has without fetching it again.
            images: images::Resolver::new(
                config.module_dirs.clone(),
                config.limits.max_module_size,
            )
            .with_cluster(client.clone())
            .with_cache(config.data_dir.join("images"))
            .with_insecure_registries(config.insecure_registries.clone())
            .with_image_cas(&config.image_cas)
            .map_err(anyhow::Error::msg)
            .context("loading --image-ca certificates")?,
            logs: log_store,
            recorder: flotilla_client::events::Recorder::new(
                client.clone(),
                "kubelet",
                Some(config.name.clone()),
            ),
            backoff: config.restart_backoff,
            volumes_root: config.data_dir.join("volumes"),
            stats,
            http_pods: config.http_pods.clone(),
            gateway: config.gateway.clone(),
            services,
        };
        config
            .http_pods
            .enable_stand_ins(stand_in::StandIns::new(&context));
        let identity = registration::Identity {
            name: config.name.clone(),
            log_address,
            ready_since: jiff::Timestamp::now(),
            resources: config.resources.clone(),
        };
        // Static pods run from the start, whether the apiserver answers or not; the rest of
        // the node waits for its registration.
        let (stop_static_pods, static_pods_stopped) = tokio::sync::oneshot::channel::<()>();
        let static_pods = config.pod_manifest_path.clone().map(|dir| {
            tokio::spawn(static_pods::run(
                context.clone(),
                dir,
                config.name.clone(),
                async {
                    let _ = static_pods_stopped.await;
                },
            ))
        });
        futures::pin_mut!(shutdown);
        let node = tokio::select! {
            _ = &mut shutdown => None,
            node = register_until_done(&client, &identity) => Some(node),
        };
        let result = match node {
            Some(node) => run_registered(client, &config, context, identity, node, shutdown).await,
            None => Ok(()),
        };
        let _ = stop_static_pods.send(());
        if let Some(static_pods) = static_pods {
            let _ = static_pods.await;
        }
        result
    }
}

/// Registers the Node, retrying until the apiserver takes it: a node that starts before its
/// control plane (or without one, for its static pods) waits for it, as the kubelet does.
async fn register_until_done(
    client: &Client,
    identity: &registration::Identity,
) -> k8s_openapi::api::core::v1::Node {
    let mut delay = Duration::from_millis(200);
    loop {
        match registration::register(client, identity).await {
            Ok(node) => return node,
            Err(error) => {
                tracing::warn!(node = %identity.name, error = %format!("{error:#}"), "could not register the node; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The node once registered: Lease, heartbeats and the pods the API binds to it, until
/// `shutdown` completes.
async fn run_registered(
    client: Client,
    config: &NodeConfig,
    context: pod::PodContext,
    identity: registration::Identity,
    node: k8s_openapi::api::core::v1::Node,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let log_address = identity.log_address;
    let lease = tokio::spawn(lease::keep_renewed(
        client.clone(),
        config.name.clone(),
        node.metadata.uid,
        config.lease_renew_interval,
    ));
    let _lease = AbortOnDrop(lease);
    let heartbeat = tokio::spawn(registration::heartbeat(
        client.clone(),
        identity,
        config.heartbeat,
    ));
    let _heartbeat = AbortOnDrop(heartbeat);
    tracing::info!(node = %config.name, logs = %log_address, "node agent ready");

    let mut supervisor = Supervisor {
        context,
        workers: HashMap::new(),
        seen_in_relist: HashSet::new(),
        terminating: Arc::default(),
    };
    let pods: Api<Pod> = Api::all(client.clone());
    let selector = format!("spec.nodeName={}", config.name);
    let events = watcher(pods, watcher::Config::default().fields(&selector)).default_backoff();
    futures::pin_mut!(events, shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            event = events.next() => match event {
                Some(Ok(event)) => supervisor.handle(event).await,
                Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
                None => break,
            },
        }
    }
    tracing::info!(node = %config.name, "node agent stopping");
    supervisor.stop_all().await;
    Ok(())
}

/// Aborts a background task when the agent stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps one worker per pod bound to this node, in step with the watch.
struct Supervisor {
    context: pod::PodContext,
    workers: HashMap<String, pod::Worker>,
    seen_in_relist: HashSet<String>,
    /// Pods being stopped for deletion, by uid: their grace period runs in a task of its
    /// own, so one slow pod does not hold up the others.
    terminating: Arc<Mutex<HashSet<String>>>,
}

impl Supervisor {
    async fn handle(&mut self, event: watcher::Event<Pod>) {
        let pod = match &event {
            watcher::Event::Apply(pod)
            | watcher::Event::Delete(pod)
            | watcher::Event::InitApply(pod) => Some(pod),
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        if pod.is_some_and(static_pods::is_mirror) {
            // A static pod's mirror: the pod runs from its manifest (`static_pods`), and
            // deleting the mirror must not stop it.
            return;
        }
        match event {
            watcher::Event::Apply(pod) => self.apply(pod).await,
            watcher::Event::Delete(pod) => {
                // Gone from the API (deleted with no grace, or its deletion finished): stop
                // whatever still runs at once.
                self.stop(&uid(&pod)).await;
                forget(&self.context, &pod);
            }
            watcher::Event::Init => self.seen_in_relist.clear(),
            watcher::Event::InitApply(pod) => {
                self.seen_in_relist.insert(uid(&pod));
                self.apply(pod).await;
            }
            watcher::Event::InitDone => {
                // Pods deleted while the watch was down get no Delete event: drop their workers.
                let gone: Vec<String> = self
                    .workers
                    .keys()
                    .filter(|uid| !self.seen_in_relist.contains(*uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.stop(&uid).await;
                }
            }
        }
    }

    async fn apply(&mut self, pod: Pod) {
        let uid = uid(&pod);
        if pod.metadata.deletion_timestamp.is_some() {
            // Never start a pod that is being deleted, even one this agent has not run yet (it
            // was evicted while the node was away, and its replacement may run elsewhere).
            self.terminate(pod);
            return;
        }
        if self.workers.contains_key(&uid) || pod::is_finished(&pod) {
            return;
        }
        tracing::info!(pod = %pod.name_any(), namespace = %pod.namespace().unwrap_or_default(), "starting pod");
        let worker = pod::Worker::start(self.context.clone(), pod);
        self.workers.insert(uid, worker);
    }

    async fn stop(&mut self, uid: &str) {
        if let Some(worker) = self.workers.remove(uid) {
            worker.stop().await;
        }
    }

    /// Stops a pod that is being deleted, within its grace period, and then removes it for
    /// good, as the kubelet does once a graceful deletion has run its course.
    fn terminate(&mut self, pod: Pod) {
        let uid = uid(&pod);
        if !self
            .terminating
            .lock()
            .expect("terminating set poisoned")
            .insert(uid.clone())
        {
            return; // already under way
        }
        let worker = self.workers.remove(&uid);
        let context = self.context.clone();
        let terminating = self.terminating.clone();
        tokio::spawn(async move {
            if let Some(worker) = worker.filter(pod::Worker::is_running) {
                let grace = grace_period(&pod);
                tracing::info!(pod = %pod.name_any(), namespace = %pod.namespace().unwrap_or_default(), grace = ?grace, "stopping pod for deletion");
                for container in pod.spec.iter().flat_map(|s| &s.containers) {
                    context
                        .recorder
                        .record(
                            &pod,
                            EventType::Normal,
                            "Killing",
                            format!("Stopping container {}", container.name),
                        )
                        .await;
                }
                worker.terminate(grace).await;
            }
            finish_deletion(&context, &pod).await;
            terminating
                .lock()
                .expect("terminating set poisoned")
                .remove(&uid);
        });
    }

    async fn stop_all(&mut self) {
        for (_, worker) in self.workers.drain() {
            worker.stop().await;
        }
    }
}

/// How long a deleted pod's containers get to stop: what the deletion asked for, else the
/// pod's `terminationGracePeriodSeconds`.
fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod.metadata.deletion_grace_period_seconds.or_else(|| {
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
    });
    Duration::from_secs(seconds.and_then(|s| u64::try_from(s).ok()).unwrap_or(30))
}

/// The pod's containers are stopped: delete it for good.
async fn finish_deletion(context: &pod::PodContext, pod: &Pod) {
    let api: Api<Pod> =
        Api::namespaced(context.client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => tracing::info!(pod = %pod.name_any(), "pod stopped and deleted"),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => {
            tracing::warn!(pod = %pod.name_any(), %error, "could not finish deleting the pod")
        }
    }
    forget(context, pod);
}

/// Removes what the node kept for a pod that is gone: its logs and its volumes.
fn forget(context: &pod::PodContext, pod: &Pod) {
    context.logs.forget_pod(&uid(pod));
    context.stats.forget(&uid(pod));
    volumes::remove(&context.volumes_root, &uid(pod));
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_else(|| pod.name_any())
}
