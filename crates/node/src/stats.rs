//! What the node's pods use, served at `/stats/summary` on the node agent's endpoint in the
//! shape of the kubelet's Summary API (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`), which the
//! apiserver proxies at `/api/v1/nodes/{name}/proxy/stats/summary`:
//!
//! - per container, the CPU time its current run has spent in wasm (`usageCoreNanoSeconds`)
//!   and the size of its linear memory (`workingSetBytes`, `usageBytes`), read from the
//!   runtime's live counters ([`Usage`]);
//! - per pod, the sums over its containers;
//! - for the node, the sums over its pods for CPU, and the agent's own resident memory
//!   (which includes every guest's memory that has been touched).

use crate::runtime::Usage;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The counters of the node's running containers. Cheap to clone.
#[derive(Clone, Default)]
pub struct Stats {
    pods: Arc<Mutex<HashMap<String, PodStats>>>,
    node: Arc<NodeInfo>,
}

#[derive(Default)]
struct NodeInfo {
    name: String,
    start_time: String,
}

struct PodStats {
    namespace: String,
    name: String,
    uid: String,
    start_time: String,
    /// Container name → (when its current run started, its counters).
    containers: BTreeMap<String, (String, Arc<Usage>)>,
}

impl Stats {
    pub fn new(node_name: &str) -> Self {
        Stats {
            pods: Arc::default(),
            node: Arc::new(NodeInfo {
                name: node_name.to_string(),
                start_time: jiff::Timestamp::now().to_string(),
            }),
        }
    }

    /// A run of one of `pod`'s containers has started, counting into `usage`.
    pub fn started(&self, pod: &Pod, container: &str, usage: Arc<Usage>) {
        let now = jiff::Timestamp::now().to_string();
        let uid = pod.uid().unwrap_or_default();
        let mut pods = self.pods.lock().expect("stats poisoned");
        let entry = pods.entry(uid.clone()).or_insert_with(|| PodStats {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid,
            start_time: now.clone(),
            containers: BTreeMap::new(),
        });
        entry.containers.insert(container.to_string(), (now, usage));
    }

    /// The pod is gone from the node.
    pub fn forget(&self, uid: &str) {
        self.pods.lock().expect("stats poisoned").remove(uid);
    }

    /// The Summary document.
    pub fn summary(&self) -> Value {
        let now = jiff::Timestamp::now().to_string();
        let usage = |cpu: Duration, memory: u64| {
            (
                json!({"time": now, "usageCoreNanoSeconds": cpu.as_nanos() as u64}),
                json!({"time": now, "workingSetBytes": memory, "usageBytes": memory}),
            )
        };
        let pods = self.pods.lock().expect("stats poisoned");
        let mut node_cpu = Duration::ZERO;
        let pod_stats: Vec<Value> = pods
            .values()
            .map(|pod| {
                let (mut cpu, mut memory) = (Duration::ZERO, 0);
                let containers: Vec<Value> = pod
                    .containers
                    .iter()
                    .map(|(name, (start, counters))| {
                        cpu += counters.cpu();
                        memory += counters.memory_bytes();
                        let (cpu, memory) = usage(counters.cpu(), counters.memory_bytes());
                        json!({"name": name, "startTime": start, "cpu": cpu, "memory": memory})
                    })
                    .collect();
                node_cpu += cpu;
                let (cpu, memory) = usage(cpu, memory);
                json!({
                    "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                    "startTime": pod.start_time,
                    "containers": containers,
                    "cpu": cpu,
                    "memory": memory,
                })
            })
            .collect();
        let (cpu, memory) = usage(node_cpu, resident_bytes().unwrap_or(0));
        json!({
            "node": {
                "nodeName": self.node.name,
                "startTime": self.node.start_time,
                "cpu": cpu,
                "memory": memory,
            },
            "pods": pod_stats,
        })
    }
}

/// The agent's resident memory, from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `/stats/summary`.
pub fn router(stats: Stats) -> Router {
    Router::new()
        .route("/stats/summary", axum::routing::get(summary))
        .with_state(stats)
}

async fn summary(State(stats): State<Stats>) -> Response {
    axum::Json(stats.summary()).into_response()
}
