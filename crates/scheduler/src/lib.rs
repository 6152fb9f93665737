//! flotilla-scheduler: gives every new pod a node.
//!
//! It keeps informer caches of pods and nodes (one list+watch each, no polling of the API),
//! and for each pod without `spec.nodeName` it filters the nodes that can take it (Ready,
//! schedulable, not tainted NoSchedule/NoExecute) and scores them by how few pods they already
//! run, then binds the pod through `pods/{name}/binding` as the Kubernetes scheduler does.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! flotilla_scheduler::Scheduler::new(client).run(std::future::pending()).await
//! # }
//! ```

mod pick;

use anyhow::Result;
use flotilla_client::events::{EventType, Recorder};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The scheduler name pods ask for by default.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How often pods that found no node are tried again even if nothing changed.
const RETRY_UNSCHEDULABLE: Duration = Duration::from_secs(2);

/// Binds in flight at once: each is a durable write, so binding one pod at a time would cap
/// scheduling at one fsync per pod.
const CONCURRENT_BINDS: usize = 64;

pub struct Scheduler {
    client: Client,
    recorder: Recorder,
    /// Pods bound (or being bound) that the cache does not show bound yet: uid → node.
    assumed: Arc<Mutex<HashMap<String, String>>>,
    binds: Arc<Semaphore>,
}

impl Scheduler {
    pub fn new(client: Client) -> Self {
        let recorder = Recorder::new(client.clone(), SCHEDULER_NAME, None);
        Scheduler {
            client,
            recorder,
            assumed: Arc::default(),
            binds: Arc::new(Semaphore::new(CONCURRENT_BINDS)),
        }
    }

    /// Schedules pods until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        let (pods, pods_writer) = reflector::store();
        let (nodes, nodes_writer) = reflector::store();
        let pod_events =
            reflector::reflector(pods_writer, watcher(pods_api, watcher::Config::default()))
                .default_backoff()
                .touched_objects();
        let node_events =
            reflector::reflector(nodes_writer, watcher(nodes_api, watcher::Config::default()))
                .default_backoff()
                .touched_objects();
        futures::pin_mut!(pod_events, node_events, shutdown);
        let mut retry = tokio::time::interval(RETRY_UNSCHEDULABLE);
        tracing::info!("scheduler started");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = pod_events.next() => match event {
                    Some(Ok(pod)) => {
                        if needs_node(&pod) {
                            self.schedule(&pod, &pods, &nodes);
                        } else if let Some(uid) = pod.uid() {
                            self.assumed.lock().expect("assumed lock").remove(&uid);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
                    None => break,
                },
                event = node_events.next() => match event {
                    // A node that appears or becomes Ready may fit pods that waited.
                    Some(Ok(_)) => self.schedule_waiting(&pods, &nodes),
                    Some(Err(error)) => tracing::warn!(%error, "node watch failed; retrying"),
                    None => break,
                },
                _ = retry.tick() => {
                    self.forget_settled(&pods);
                    self.schedule_waiting(&pods, &nodes);
                }
            }
        }
        tracing::info!("scheduler stopped");
        Ok(())
    }

    fn schedule_waiting(&self, pods: &Store<Pod>, nodes: &Store<Node>) {
        for pod in pods.state().iter().filter(|p| needs_node(p)) {
            self.schedule(pod, pods, nodes);
        }
    }

    /// Drops assumptions about pods the cache shows bound or deleted.
    fn forget_settled(&self, pods: &Store<Pod>) {
        let waiting: std::collections::HashSet<String> = pods
            .state()
            .iter()
            .filter(|p| needs_node(p))
            .filter_map(|p| p.uid())
            .collect();
        self.assumed
            .lock()
            .expect("assumed lock")
            .retain(|uid, _| waiting.contains(uid));
    }

    /// Picks a node and binds the pod to it in the background.
    fn schedule(&self, pod: &Pod, pods: &Store<Pod>, nodes: &Store<Node>) {
        let uid = pod.uid().unwrap_or_default();
        let node = {
            let mut assumed = self.assumed.lock().expect("assumed lock");
            if assumed.contains_key(&uid) {
                return;
            }
            let nodes = nodes.state();
            // Checked before the pods are gathered: that costs O(pods) per pod, so a pass over
            // 10,000 pods waiting with no node to go to (`--nodes 0`, or every node NotReady)
            // kept a core busy every RETRY_UNSCHEDULABLE.
            if !nodes.iter().any(|n| pick::schedulable(n)) {
                tracing::debug!(pod = %pod.name_any(), "no node can take the pod yet");
                return;
            }
            let all_pods = pods.state();
            let Some(node) =
                pick::best_node(&nodes, &all_pods, assumed.values().map(String::as_str))
            else {
                tracing::debug!(pod = %pod.name_any(), "no node can take the pod yet");
                return;
            };
            assumed.insert(uid.clone(), node.clone());
            node
        };
        let pod = pod.clone();
        let client = self.client.clone();
        let recorder = self.recorder.clone();
        let assumed = self.assumed.clone();
        let binds = self.binds.clone();
        tokio::spawn(async move {
            let _permit = binds.acquire_owned().await;
            if !bind(&client, &recorder, &pod, &node).await {
                // Let the next pass try again.
                assumed.lock().expect("assumed lock").remove(&uid);
            }
        });
    }
}

/// Binds `pod` to `node` through the binding subresource; false if it should be retried.
async fn bind(client: &Client, recorder: &Recorder, pod: &Pod, node: &str) -> bool {
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<_, Status>(
            "binding",
            &pod.name_any(),
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %pod.name_any(), %namespace, %node, "bound pod");
            let message = format!(
                "Successfully assigned {namespace}/{} to {node}",
                pod.name_any()
            );
            recorder
                .record(pod, EventType::Normal, "Scheduled", message)
                .await;
            true
        }
        // Already bound, or deleted meanwhile: nothing to retry.
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
            tracing::debug!(pod = %pod.name_any(), reason = %status.message, "pod no longer needs binding");
            true
        }
        Err(error) => {
            tracing::warn!(pod = %pod.name_any(), %error, "binding failed; will retry");
            false
        }
    }
}

/// Whether the pod waits for this scheduler to give it a node.
fn needs_node(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && spec.is_some_and(|s| s.node_name.as_deref().is_none_or(str::is_empty))
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|name| name == SCHEDULER_NAME)
}
