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
const POD_CAPACITY: u32 = 10_000;

/// What the node offers the scheduler, as Kubernetes quantities; reported as both capacity and
/// allocatable. By default the machine's cores and memory and [`POD_CAPACITY`] pods; the
/// node's flags (`--cpu`, `--memory`, `--max-pods`) set a share of the machine instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
}

impl Resources {
    /// The whole machine.
    pub fn of_machine() -> Self {
        Resources {
            cpu: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
            memory: machine_memory(),
            pods: POD_CAPACITY,
        }
    }

    fn quantities(&self) -> BTreeMap<String, Quantity> {
        [
            ("cpu", self.cpu.clone()),
            ("memory", self.memory.clone()),
            ("pods", self.pods.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v)))
        .collect()
    }
}

impl Default for Resources {
    fn default() -> Self {
        Resources::of_machine()
    }
}

/// Who this node is, for its Node object: its name, where its log endpoint listens, when it
/// became Ready (the agent's start, which heartbeats must not move) and what it offers.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub log_address: SocketAddr,
    pub ready_since: jiff::Timestamp,
    pub resources: Resources,
}

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

/// The Node's status.
fn status(identity: &Identity) -> NodeStatus {
    let Identity {
        log_address,
        ready_since,
        ..
    } = *identity;
    let now = Time(jiff::Timestamp::now());
    let capacity = identity.resources.quantities();
    NodeStatus {
        capacity: Some(capacity.clone()),
        allocatable: Some(capacity),
        conditions: Some(conditions(now, Time(ready_since))),
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
            container_runtime_version: concat!("wasmtime://", env!("FLOTILLA_WASMTIME_VERSION"))
                .into(),
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

/// The Node's conditions, as the kubelet reports them. Pressure is about the host, which a
/// node agent shares with other processes: memory pressure when under 5% of it is available.
fn conditions(now: Time, ready_since: Time) -> Vec<NodeCondition> {
    let condition = |type_: &str, ok: bool, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(ready_since.clone()),
    };
    let low_memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let field = |name: &str| {
                meminfo.lines().find_map(|l| {
                    l.strip_prefix(name)?
                        .split_whitespace()
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
            };
            Some(field("MemAvailable:")? * 20 < field("MemTotal:")?)
        })
        .unwrap_or(false);
    vec![
        if low_memory {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "node has memory pressure",
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "node has sufficient memory available",
            )
        },
        condition(
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "node has no disk pressure",
        ),
        condition(
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "node has sufficient PID available",
        ),
        condition(
            "Ready",
            true,
            "KubeletReady",
            "flotilla node agent is posting ready status",
        ),
    ]
}

/// Creates the Node, or takes over an existing one of the same name (a restarted agent), and
/// returns it as stored (its uid is what the node's Lease is owned by).
pub async fn register(client: &Client, identity: &Identity) -> Result<Node> {
    let name = identity.name.as_str();
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
        status: Some(status(identity)),
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = name, "registered node"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!(node = name, "node already registered; taking it over")
        }
        Err(error) => return Err(error).context(format!("registering node {name}")),
    }
    post_status(&nodes, identity)
        .await
        .context("posting the node status")
}

async fn post_status(nodes: &Api<Node>, identity: &Identity) -> kube::Result<Node> {
    let patch = serde_json::json!({"status": status(identity)});
    nodes
        .patch_status(
            &identity.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
}

/// Renews the Ready condition every `every`, so the cluster can tell a live node from a dead one.
pub async fn heartbeat(client: Client, identity: Identity, every: Duration) {
    let nodes: Api<Node> = Api::all(client);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = post_status(&nodes, &identity).await {
            tracing::warn!(node = %identity.name, %error, "heartbeat failed; will retry");
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
