//! The Node object: registered when the agent starts and kept Ready by heartbeats, with the
//! address of the agent's log endpoint so the apiserver can reach it.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Pods one node agent offers to run: Wasm instances are small, so far more than a kubelet's 110.
const POD_CAPACITY: &str = "10000";

/// The machine's memory as a quantity (`MemTotal` of `/proc/meminfo`), what the kubelet
/// reports as capacity; 16Gi where the machine does not say.
fn machine_memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(mem_total_kib)
        .map_or_else(|| "16Gi".to_string(), |kib| format!("{kib}Ki"))
}

/// `MemTotal` in KiB from the text of `/proc/meminfo`.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The Node's status; `ready_since` is when it last became Ready (the agent's start), which a
/// heartbeat must not move.
fn status(log_address: SocketAddr, ready_since: jiff::Timestamp) -> NodeStatus {
    let now = Time(jiff::Timestamp::now());
    let capacity: BTreeMap<String, Quantity> = [
        (
            "cpu",
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        ),
        ("memory", machine_memory()),
        ("pods", POD_CAPACITY.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    NodeStatus {
        capacity: Some(capacity.clone()),
        allocatable: Some(capacity),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("flotilla node agent is posting ready status".into()),
            last_heartbeat_time: Some(now),
            last_transition_time: Some(Time(ready_since)),
        }]),
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: log_address.ip().to_string(),
        }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(log_address.port()),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "wasm32".into(),
            operating_system: "wasi".into(),
            kubelet_version: concat!("v1.34.0+flotilla-", env!("CARGO_PKG_VERSION")).into(),
            container_runtime_version: "wasmtime://48".into(),
            kernel_version: String::new(),
            os_image: "flotilla".into(),
            machine_id: String::new(),
            system_uuid: String::new(),
            boot_id: String::new(),
            kube_proxy_version: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the Node, or takes over an existing one of the same name (a restarted agent), and
/// returns it as stored (its uid is what the node's Lease is owned by).
pub async fn register(
    client: &Client,
    name: &str,
    log_address: SocketAddr,
    ready_since: jiff::Timestamp,
) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "wasi"),
        ("kubernetes.io/arch", "wasm32"),
        ("flotilla.dev/runtime", "wasmtime"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(status(log_address, ready_since)),
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = name, "registered node"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!(node = name, "node already registered; taking it over")
        }
        Err(error) => return Err(error).context(format!("registering node {name}")),
    }
    post_status(&nodes, name, log_address, ready_since)
        .await
        .context("posting the node status")
}

async fn post_status(
    nodes: &Api<Node>,
    name: &str,
    log_address: SocketAddr,
    ready_since: jiff::Timestamp,
) -> kube::Result<Node> {
    let patch = serde_json::json!({"status": status(log_address, ready_since)});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Renews the Ready condition every `every`, so the cluster can tell a live node from a dead one.
pub async fn heartbeat(
    client: Client,
    name: String,
    log_address: SocketAddr,
    ready_since: jiff::Timestamp,
    every: Duration,
) {
    let nodes: Api<Node> = Api::all(client);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = post_status(&nodes, &name, log_address, ready_since).await {
            tracing::warn!(node = %name, %error, "heartbeat failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total_from_meminfo() {
        let meminfo = "MemTotal:       24567896 kB\nMemFree:         1234 kB\n";
        assert_eq!(mem_total_kib(meminfo), Some(24_567_896));
        assert_eq!(mem_total_kib("nonsense"), None);
    }
}
