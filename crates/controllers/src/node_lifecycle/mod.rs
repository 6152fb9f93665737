//! Node lifecycle: notices node agents that stopped renewing their Lease, marks their Nodes
//! NotReady and tainted, and evicts their pods so controllers replace them elsewhere. It also
//! garbage-collects pods bound to nodes that no longer exist (Kubernetes' PodGC).
//!
//! As in Kubernetes, liveness is judged on this controller's own clock: it remembers when it
//! last *saw* a node's Lease renewal (or Ready heartbeat) change, never the timestamps' values,
//! so clock skew between machines cannot make a node look dead or alive. A node first seen
//! (also every node when the controller starts) gets a full grace period.
//!
//! The node agent owns `Ready=True` and this controller only writes `Ready=Unknown` while the
//! node is silent, so the two never fight: once the agent is back and posts `Ready=True`, the
//! controller lifts the `node.kubernetes.io/unreachable` taints.
//!
//! This module holds the configuration and the loop; each pass asks `liveness` which nodes are
//! silent, has `node_status` write their Ready condition and taints, `eviction` mark their pods
//! not ready and evict them, and `pod_gc` delete the pods whose node is gone.

mod eviction;
mod liveness;
mod node_status;
mod pod_gc;

use flotilla_client::events::{EventType, Recorder};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use liveness::{Health, Probe};
use node_status::plan;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The taint key of a node whose agent has gone silent.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// Where node agents keep their Leases, one per node, named after it.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How long a node may stay silent, and how long its pods wait before eviction.
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// A node whose Lease has not been renewed for this long becomes NotReady (Kubernetes'
    /// `--node-monitor-grace-period`, 40 s by default).
    pub grace_period: Duration,
    /// How long pods stay on a NotReady node before they are deleted (Kubernetes' default
    /// toleration of 300 s; flotilla defaults to 60 s).
    pub pod_eviction_timeout: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(60),
        }
    }
}

impl NodeLifecycleConfig {
    /// How often node health is checked (Kubernetes' `--node-monitor-period`, 5 s there): every
    /// second, or five times per grace period if that is shorter, but not more than 5 times a
    /// second.
    pub fn monitor_period(&self) -> Duration {
        (self.grace_period / 5)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(200))
    }
}

/// Watches Nodes, Leases and Pods until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: NodeLifecycleConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let nodes_api: Api<Node> = Api::all(client.clone());
    let leases_api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let pods_api: Api<Pod> = Api::all(client.clone());
    let (nodes, nodes_writer) = reflector::store();
    let (leases, leases_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store();
    let node_events =
        reflector::reflector(nodes_writer, watcher(nodes_api, watcher::Config::default()))
            .default_backoff();
    let lease_events = reflector::reflector(
        leases_writer,
        watcher(leases_api, watcher::Config::default()),
    )
    .default_backoff();
    let pod_events =
        reflector::reflector(pods_writer, watcher(pods_api, watcher::Config::default()))
            .default_backoff();
    futures::pin_mut!(node_events, lease_events, pod_events, shutdown);

    let mut controller = Controller::new(client, config);
    let mut tick = tokio::time::interval(controller.config.monitor_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        grace_period = ?controller.config.grace_period,
        pod_eviction_timeout = ?controller.config.pod_eviction_timeout,
        "node lifecycle controller started"
    );
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            event = node_events.next() => match event {
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "node watch failed; retrying"),
                None => break,
            },
            event = lease_events.next() => match event {
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "lease watch failed; retrying"),
                None => break,
            },
            event = pod_events.next() => match event {
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
                None => break,
            },
            _ = tick.tick() => {
                // Decisions on half-listed caches would see nodes without Leases and pods
                // without nodes.
                if synced(&nodes) && synced(&leases) && synced(&pods) {
                    controller.monitor(&nodes, &leases, &pods, Instant::now()).await;
                }
            }
        }
    }
    tracing::info!("node lifecycle controller stopped");
    Ok(())
}

fn synced<K>(store: &Store<K>) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn uid(pod: &Pod) -> String {
    pod.uid().unwrap_or_else(|| pod.name_any())
}

struct Controller {
    client: Client,
    config: NodeLifecycleConfig,
    nodes_events: Recorder,
    eviction_events: Recorder,
    gc_events: Recorder,
    health: HashMap<String, Health>,
    /// Orphaned pods already deleted, until they leave the cache.
    collected: HashSet<String>,
    /// Whether every node was silent at the last pass (evictions paused).
    full_disruption: bool,
}

impl Controller {
    fn new(client: Client, config: NodeLifecycleConfig) -> Controller {
        Controller {
            nodes_events: Recorder::new(client.clone(), "node-controller", None),
            eviction_events: Recorder::new(client.clone(), "taint-eviction-controller", None),
            gc_events: Recorder::new(client.clone(), "pod-garbage-collector", None),
            client,
            config,
            health: HashMap::new(),
            collected: HashSet::new(),
            full_disruption: false,
        }
    }

    /// One pass over every node: Kubernetes' `monitorNodeHealth`, taint eviction and PodGC.
    async fn monitor(
        &mut self,
        nodes: &Store<Node>,
        leases: &Store<Lease>,
        pods: &Store<Pod>,
        now: Instant,
    ) {
        let nodes = nodes.state();
        let pods = pods.state();
        let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        self.health.retain(|name, _| names.contains(name));
        let mut by_node: HashMap<&str, Vec<&Arc<Pod>>> = HashMap::new();
        for pod in &pods {
            if let Some(node) = node_of(pod) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        let mut silent_nodes = Vec::new();
        for node in &nodes {
            let name = node.name_any();
            let lease = leases.get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
            let probe = Probe::of(node, lease.as_deref());
            let grace = self.config.grace_period;
            let silent = self
                .health
                .entry(name.clone())
                .or_insert_with(|| Health::new(probe.clone(), now))
                .observe(probe, now, grace);
            silent_nodes.push(silent);
        }
        // Every node silent at once says more about the control plane's view (a partition, an
        // apiserver that was down) than about the nodes, and evicted pods would have nowhere
        // to go: Kubernetes' "full disruption" mode stops evictions then, and so do we.
        let full_disruption = silent_nodes.iter().all(|silent| *silent);
        if full_disruption && !nodes.is_empty() && !self.full_disruption {
            tracing::warn!("every node is silent: marking them NotReady but evicting no pods");
        }
        self.full_disruption = full_disruption;
        for (node, silent) in nodes.iter().zip(silent_nodes) {
            let name = node.name_any();
            if silent {
                let on_node = by_node.get(name.as_str()).map_or(&[][..], Vec::as_slice);
                self.unreachable(node, on_node, now, !full_disruption).await;
            } else {
                self.reachable(node).await;
            }
        }
        self.collect_orphans(&names, &pods).await;
    }

    async fn unreachable(&mut self, node: &Node, pods: &[&Arc<Pod>], now: Instant, evict: bool) {
        let name = node.name_any();
        let plan = plan(node, true);
        // The taints are written on top of the status write, not the cached node it replaced.
        let mut latest: Option<Node> = None;
        if plan.mark_unknown {
            match self.mark_unknown(node).await {
                Ok(written) => {
                    latest = Some(written);
                    tracing::info!(node = %name, grace_period = ?self.config.grace_period, "node stopped renewing its lease: NotReady");
                    self.nodes_events
                        .record(
                            node,
                            EventType::Normal,
                            "NodeNotReady",
                            format!("Node {name} status is now: NodeNotReady"),
                        )
                        .await;
                }
                Err(error) => report("marking the node NotReady", &name, error),
            }
        }
        if !plan.add_taints.is_empty() {
            match self
                .add_taints(latest.as_ref().unwrap_or(node), &plan.add_taints)
                .await
            {
                Ok(()) => {
                    tracing::info!(node = %name, effects = ?plan.add_taints, "tainted the node unreachable")
                }
                Err(error) => report("tainting the node", &name, error),
            }
        }
        self.mark_pods_not_ready(&name, pods).await;
        if evict {
            self.evict(&name, pods, now).await;
        }
    }

    async fn reachable(&mut self, node: &Node) {
        let name = node.name_any();
        if !plan(node, false).lift_taints {
            return;
        }
        match self.lift_taints(node).await {
            Ok(()) => {
                tracing::info!(node = %name, "node renews its lease again: Ready");
                self.nodes_events
                    .record(
                        node,
                        EventType::Normal,
                        "NodeReady",
                        format!("Node {name} status is now: NodeReady"),
                    )
                    .await;
            }
            Err(error) => report("lifting the unreachable taints", &name, error),
        }
    }
}

/// A write that failed; a conflict only means the cache was behind, and the next pass retries.
fn report(what: &str, object: &str, error: kube::Error) {
    match &error {
        kube::Error::Api(status) if status.code == 409 => {
            tracing::debug!(object, %error, "{what}: conflict; will retry")
        }
        _ => tracing::warn!(object, %error, "{what} failed; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_runs_at_most_every_second_and_at_least_every_200ms() {
        let config = |grace| NodeLifecycleConfig {
            grace_period: Duration::from_millis(grace),
            ..NodeLifecycleConfig::default()
        };
        assert_eq!(config(40_000).monitor_period(), Duration::from_secs(1));
        assert_eq!(config(3_000).monitor_period(), Duration::from_millis(600));
        assert_eq!(config(500).monitor_period(), Duration::from_millis(200));
    }
}
