//! flotilla-controllers: the controller manager, which keeps the cluster converging to what
//! users declared.
//!
//! Each controller follows the Kubernetes pattern: informers (list, then watch from the
//! returned resourceVersion, relisting on 410) keep caches of the kinds it reads; changes put
//! object keys on a rate-limited work queue; workers call a level-triggered
//! `reconcile(key)` that compares desired and observed state and acts on the difference.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! let config = flotilla_controllers::ManagerConfig::default();
//! flotilla_controllers::run(client, config, std::future::pending()).await
//! # }
//! ```

pub mod node_lifecycle;

use std::future::Future;

/// Settings of the whole controller manager.
#[derive(Debug, Clone, Default)]
pub struct ManagerConfig {
    pub node_lifecycle: node_lifecycle::NodeLifecycleConfig,
}

/// Runs every controller until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: ManagerConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    node_lifecycle::run(client, config.node_lifecycle, shutdown).await
}
