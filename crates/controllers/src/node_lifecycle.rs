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

use flotilla_client::events::{EventType, Recorder};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The taint key of a node whose agent has gone silent.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// Where node agents keep their Leases, one per node, named after it.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The effects of the unreachable taints: no new pods, and running ones evicted.
const UNREACHABLE_EFFECTS: [&str; 2] = ["NoSchedule", "NoExecute"];

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

/// The signs of life a node posts: its Lease renewal and its Ready heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Probe {
    lease_renewed: Option<jiff::Timestamp>,
    heartbeat: Option<jiff::Timestamp>,
}

impl Probe {
    fn of(node: &Node, lease: Option<&Lease>) -> Probe {
        Probe {
            lease_renewed: lease
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0),
            heartbeat: ready_condition(node)
                .and_then(|c| c.last_heartbeat_time.as_ref())
                .map(|t| t.0),
        }
    }

    /// Whether `self` shows the node did something since `seen`. A Lease that disappears
    /// (e.g. garbage-collected) is no sign of life.
    fn is_newer_than(&self, seen: &Probe) -> bool {
        self.lease_renewed > seen.lease_renewed || self.heartbeat > seen.heartbeat
    }
}

/// What the controller knows of one node, on its own clock.
#[derive(Debug)]
struct Health {
    probe: Probe,
    /// When `probe` last changed, as this controller saw it.
    observed_at: Instant,
    /// Since when the node has been silent beyond the grace period.
    unreachable_since: Option<Instant>,
    /// Pods whose Ready condition was set to False for this outage.
    marked_not_ready: HashSet<String>,
    /// Pods deleted for this outage (until the cache shows their deletionTimestamp).
    evicted: HashSet<String>,
}

impl Health {
    fn new(probe: Probe, now: Instant) -> Health {
        Health {
            probe,
            observed_at: now,
            unreachable_since: None,
            marked_not_ready: HashSet::new(),
            evicted: HashSet::new(),
        }
    }

    /// Records what the node last posted; returns whether it has been silent for longer than
    /// `grace`.
    fn observe(&mut self, probe: Probe, now: Instant, grace: Duration) -> bool {
        if probe.is_newer_than(&self.probe) {
            self.probe = probe;
            self.observed_at = now;
        }
        let silent = now.saturating_duration_since(self.observed_at) > grace;
        if silent {
            self.unreachable_since.get_or_insert(now);
        } else {
            self.unreachable_since = None;
            self.marked_not_ready.clear();
            self.evicted.clear();
        }
        silent
    }
}

/// What to change on a Node, given whether it is silent.
#[derive(Debug, Default, PartialEq, Eq)]
struct NodePlan {
    /// Set the Ready condition to Unknown (a transition: record NodeNotReady).
    mark_unknown: bool,
    /// Unreachable taint effects to add.
    add_taints: Vec<&'static str>,
    /// Lift the unreachable taints (record NodeReady).
    lift_taints: bool,
}

fn plan(node: &Node, silent: bool) -> NodePlan {
    let ready = ready_condition(node).map(|c| c.status.as_str());
    let present: Vec<&str> = taints(node)
        .iter()
        .filter(|t| t.key == UNREACHABLE_TAINT)
        .map(|t| t.effect.as_str())
        .collect();
    if silent {
        NodePlan {
            mark_unknown: ready != Some("Unknown"),
            add_taints: UNREACHABLE_EFFECTS
                .into_iter()
                .filter(|e| !present.contains(e))
                .collect(),
            lift_taints: false,
        }
    } else {
        NodePlan {
            // Until the agent says Ready=True itself, the taints keep new pods away.
            lift_taints: ready == Some("True") && !present.is_empty(),
            ..NodePlan::default()
        }
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// How a pod takes its node becoming unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tolerance {
    /// No toleration: evicted after the cluster's pod eviction timeout.
    None,
    /// Tolerates it for this long, then is evicted.
    For(Duration),
    /// Stays bound however long the node is away (e.g. DaemonSet pods).
    Forever,
}

/// Whether a toleration matches the `node.kubernetes.io/unreachable:NoExecute` taint.
fn tolerates_unreachable(toleration: &Toleration) -> bool {
    let effect_matches = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoExecute");
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    let key_matches = match operator {
        "Exists" => key.is_empty() || key == UNREACHABLE_TAINT,
        // The unreachable taint has no value.
        "Equal" => key == UNREACHABLE_TAINT && toleration.value.as_deref().unwrap_or("").is_empty(),
        _ => false,
    };
    effect_matches && key_matches
}

/// The longest toleration of the unreachable taint a pod has, as the taint manager reads them.
fn tolerance(pod: &Pod) -> Tolerance {
    let matching = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| tolerates_unreachable(t));
    let mut longest = Tolerance::None;
    for toleration in matching {
        match toleration.toleration_seconds {
            None => return Tolerance::Forever,
            Some(seconds) => {
                let d = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
                longest = match longest {
                    Tolerance::For(current) if current >= d => longest,
                    _ => Tolerance::For(d),
                };
            }
        }
    }
    longest
}

/// Whether a pod on a node unreachable since `since` is due for eviction at `now`.
fn eviction_due(tolerance: Tolerance, default: Duration, since: Instant, now: Instant) -> bool {
    let after = match tolerance {
        Tolerance::Forever => return false,
        Tolerance::For(d) => d,
        Tolerance::None => default,
    };
    now.saturating_duration_since(since) >= after
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
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
            if silent {
                let on_node = by_node.get(name.as_str()).map_or(&[][..], Vec::as_slice);
                self.unreachable(node, on_node, now).await;
            } else {
                self.reachable(node).await;
            }
        }
        self.collect_orphans(&names, &pods).await;
    }

    async fn unreachable(&mut self, node: &Node, pods: &[&Arc<Pod>], now: Instant) {
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
        self.evict(&name, pods, now).await;
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

    /// Ready → Unknown, keeping the last heartbeat: what the agent last said, and when.
    async fn mark_unknown(&self, node: &Node) -> kube::Result<Node> {
        let now = Time(jiff::Timestamp::now());
        let mut conditions: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let unknown = |previous: Option<&NodeCondition>| NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusUnknown".into()),
            message: Some("Kubelet stopped posting node status.".into()),
            last_heartbeat_time: previous.and_then(|c| c.last_heartbeat_time.clone()),
            last_transition_time: Some(now.clone()),
        };
        match conditions.iter_mut().find(|c| c.type_ == "Ready") {
            Some(ready) => *ready = unknown(Some(ready)),
            None => conditions.push(unknown(None)),
        }
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "status": {"conditions": conditions},
        });
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch_status(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
    }

    async fn add_taints(&self, node: &Node, effects: &[&str]) -> kube::Result<()> {
        let now = Time(jiff::Timestamp::now());
        let mut taints = taints(node).to_vec();
        taints.extend(effects.iter().map(|effect| Taint {
            key: UNREACHABLE_TAINT.into(),
            effect: (*effect).into(),
            time_added: Some(now.clone()),
            value: None,
        }));
        self.write_taints(node, taints).await
    }

    async fn lift_taints(&self, node: &Node) -> kube::Result<()> {
        let taints: Vec<Taint> = taints(node)
            .iter()
            .filter(|t| t.key != UNREACHABLE_TAINT)
            .cloned()
            .collect();
        self.write_taints(node, taints).await
    }

    /// Replaces `spec.taints`, failing with 409 if the node changed since it was cached (the
    /// next pass decides again on the newer version).
    async fn write_taints(&self, node: &Node, taints: Vec<Taint>) -> kube::Result<()> {
        let taints = if taints.is_empty() {
            serde_json::Value::Null
        } else {
            json!(taints)
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// Kubernetes' `MarkPodsNotReady`: nobody can vouch for a silent node's pods, so Services
    /// stop sending them traffic.
    async fn mark_pods_not_ready(&mut self, node: &str, pods: &[&Arc<Pod>]) {
        for pod in pods {
            let pod_uid = uid(pod);
            let marked = self
                .health
                .get(node)
                .is_some_and(|h| h.marked_not_ready.contains(&pod_uid));
            let conditions = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let ready_true = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if marked || !ready_true {
                continue;
            }
            let now = Time(jiff::Timestamp::now());
            let conditions: Vec<PodCondition> = conditions
                .into_iter()
                .map(|c| {
                    if c.type_ == "Ready" {
                        PodCondition {
                            status: "False".into(),
                            last_transition_time: Some(now.clone()),
                            ..c
                        }
                    } else {
                        c
                    }
                })
                .collect();
            let patch = json!({
                "metadata": {"resourceVersion": pod.resource_version()},
                "status": {"conditions": conditions},
            });
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(pod = %pod.name_any(), %node, "marked pod not ready");
                    if let Some(health) = self.health.get_mut(node) {
                        health.marked_not_ready.insert(pod_uid);
                    }
                    self.nodes_events
                        .record(
                            &***pod,
                            EventType::Warning,
                            "NodeNotReady",
                            "Node is not ready".into(),
                        )
                        .await;
                }
                Err(error) => report("marking a pod not ready", &pod.name_any(), error),
            }
        }
    }

    /// The taint manager's NoExecute eviction: delete (gracefully) every pod that does not
    /// tolerate the unreachable taint for as long as the node has been away. Their controllers
    /// see them terminating and create replacements on healthy nodes.
    async fn evict(&mut self, node: &str, pods: &[&Arc<Pod>], now: Instant) {
        let Some(since) = self.health.get(node).and_then(|h| h.unreachable_since) else {
            return;
        };
        let default = self.config.pod_eviction_timeout;
        for pod in pods {
            let pod_uid = uid(pod);
            if pod.metadata.deletion_timestamp.is_some()
                || is_finished(pod)
                || self
                    .health
                    .get(node)
                    .is_some_and(|h| h.evicted.contains(&pod_uid))
                || !eviction_due(tolerance(pod), default, since, now)
            {
                continue;
            }
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!(pod = %name, %namespace, %node, "evicting pod from unreachable node");
                    if let Some(health) = self.health.get_mut(node) {
                        health.evicted.insert(pod_uid);
                    }
                    self.eviction_events
                        .record(
                            &***pod,
                            EventType::Normal,
                            "TaintManagerEviction",
                            format!("Marking for deletion Pod {namespace}/{name}"),
                        )
                        .await;
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(error) => report("evicting a pod", &name, error),
            }
        }
    }

    /// PodGC: pods bound to a node that no longer exists can never run or finish; delete them
    /// outright. The node's absence is confirmed with the API, not just the cache, so a pod
    /// bound to a node that is too new for the cache is left alone.
    async fn collect_orphans(&mut self, names: &HashSet<String>, pods: &[Arc<Pod>]) {
        let present: HashSet<String> = pods.iter().map(|p| uid(p)).collect();
        self.collected.retain(|uid| present.contains(uid));
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut confirmed_gone: HashMap<String, bool> = HashMap::new();
        for pod in pods {
            let Some(node) = node_of(pod) else { continue };
            let pod_uid = uid(pod);
            if names.contains(node) || self.collected.contains(&pod_uid) {
                continue;
            }
            let gone = match confirmed_gone.get(node) {
                Some(gone) => *gone,
                None => {
                    let gone = match nodes.get_opt(node).await {
                        Ok(found) => found.is_none(),
                        Err(error) => {
                            report("checking that a node is gone", node, error);
                            false
                        }
                    };
                    confirmed_gone.insert(node.to_string(), gone);
                    gone
                }
            };
            if !gone {
                continue;
            }
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!(pod = %name, %namespace, %node, "deleted pod bound to a node that no longer exists");
                    self.collected.insert(pod_uid);
                    self.gc_events
                        .record(
                            &**pod,
                            EventType::Normal,
                            "DeletionByPodGC",
                            format!(
                                "Deleting pod {namespace}/{name}: its node {node} no longer exists"
                            ),
                        )
                        .await;
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                    self.collected.insert(pod_uid);
                }
                Err(error) => report("deleting an orphaned pod", &name, error),
            }
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

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    fn pod_with(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations}
        }))
        .unwrap()
    }

    fn node(ready: Option<&str>, taints: serde_json::Value) -> Node {
        let conditions = match ready {
            Some(status) => json!([{"type": "Ready", "status": status}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"taints": taints},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn tolerations_of_the_unreachable_taint() {
        let matches = |v| tolerates_unreachable(&toleration(v));
        assert!(matches(
            json!({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"})
        ));
        assert!(matches(
            json!({"key": UNREACHABLE_TAINT, "operator": "Exists"})
        ));
        assert!(matches(
            json!({"key": UNREACHABLE_TAINT, "effect": "NoExecute"})
        ));
        assert!(matches(json!({"operator": "Exists"})));
        assert!(matches(
            json!({"operator": "Exists", "effect": "NoExecute"})
        ));
        assert!(!matches(
            json!({"operator": "Exists", "effect": "NoSchedule"})
        ));
        assert!(!matches(
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists"})
        ));
        assert!(!matches(json!({"key": UNREACHABLE_TAINT, "value": "x"})));
        // Equal with an empty key matches nothing.
        assert!(!matches(json!({"effect": "NoExecute"})));
    }

    #[test]
    fn the_longest_matching_toleration_wins() {
        assert_eq!(tolerance(&pod_with(json!([]))), Tolerance::None);
        assert_eq!(
            tolerance(&pod_with(json!([
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "tolerationSeconds": 5},
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20},
                {"key": "other", "operator": "Exists"}
            ]))),
            Tolerance::For(Duration::from_secs(20))
        );
        assert_eq!(
            tolerance(&pod_with(json!([
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "tolerationSeconds": 5},
                {"operator": "Exists"}
            ]))),
            Tolerance::Forever
        );
    }

    #[test]
    fn eviction_waits_for_the_timeout_or_the_toleration() {
        let since = Instant::now();
        let default = Duration::from_secs(60);
        let at = |secs| since + Duration::from_secs(secs);
        assert!(!eviction_due(Tolerance::None, default, since, at(59)));
        assert!(eviction_due(Tolerance::None, default, since, at(60)));
        let ten = Tolerance::For(Duration::from_secs(10));
        assert!(!eviction_due(ten, default, since, at(9)));
        assert!(eviction_due(ten, default, since, at(10)));
        assert!(eviction_due(
            Tolerance::For(Duration::ZERO),
            default,
            since,
            since
        ));
        assert!(!eviction_due(
            Tolerance::Forever,
            default,
            since,
            at(100_000)
        ));
    }

    fn probe(lease_secs: Option<i64>) -> Probe {
        Probe {
            lease_renewed: lease_secs.map(|s| jiff::Timestamp::from_second(s).unwrap()),
            heartbeat: None,
        }
    }

    #[test]
    fn a_node_is_silent_once_nothing_new_was_seen_for_the_grace_period() {
        let grace = Duration::from_secs(40);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        // First seen: a full grace period, whatever the Lease's timestamp says.
        let mut health = Health::new(probe(Some(1)), start);
        assert!(!health.observe(probe(Some(1)), at(40), grace));
        assert!(health.observe(probe(Some(1)), at(41), grace));
        assert_eq!(health.unreachable_since, Some(at(41)));
        assert!(health.observe(probe(Some(1)), at(50), grace));
        assert_eq!(health.unreachable_since, Some(at(41)), "kept while silent");
        // A renewal, even one stamped long ago by a skewed clock, is new life when it is seen.
        assert!(!health.observe(probe(Some(2)), at(60), grace));
        assert_eq!(health.unreachable_since, None);
        assert!(!health.observe(probe(Some(2)), at(100), grace));
        assert!(health.observe(probe(Some(2)), at(101), grace));
    }

    #[test]
    fn a_vanished_lease_is_no_sign_of_life() {
        let grace = Duration::from_secs(40);
        let start = Instant::now();
        let mut health = Health::new(probe(Some(5)), start);
        assert!(health.observe(probe(None), start + Duration::from_secs(41), grace));
        let heartbeat = Probe {
            heartbeat: Some(jiff::Timestamp::from_second(9).unwrap()),
            ..probe(Some(5))
        };
        assert!(!health.observe(heartbeat, start + Duration::from_secs(42), grace));
    }

    #[test]
    fn a_silent_node_is_marked_unknown_and_tainted_once() {
        let fresh = plan(&node(Some("True"), json!([])), true);
        assert_eq!(
            fresh,
            NodePlan {
                mark_unknown: true,
                add_taints: vec!["NoSchedule", "NoExecute"],
                lift_taints: false
            }
        );
        let done = node(
            Some("Unknown"),
            json!([
                {"key": UNREACHABLE_TAINT, "effect": "NoSchedule"},
                {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
            ]),
        );
        assert_eq!(plan(&done, true), NodePlan::default());
        assert!(plan(&node(None, json!([])), true).mark_unknown);
    }

    #[test]
    fn taints_are_lifted_only_once_the_agent_says_ready() {
        let tainted = json!([
            {"key": "user", "effect": "NoSchedule"},
            {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
        ]);
        // The lease is renewed but Ready is still the controller's Unknown: keep the taints,
        // and write nothing (the agent owns Ready=True).
        assert_eq!(
            plan(&node(Some("Unknown"), tainted.clone()), false),
            NodePlan::default()
        );
        assert!(plan(&node(Some("True"), tainted), false).lift_taints);
        assert_eq!(
            plan(
                &node(
                    Some("True"),
                    json!([{"key": "user", "effect": "NoSchedule"}])
                ),
                false
            ),
            NodePlan::default()
        );
    }

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
