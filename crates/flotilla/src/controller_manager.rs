//! `flotilla controller-manager`: the controllers and the scheduler as their own process,
//! against an apiserver a kubeconfig names (Kubernetes' kube-controller-manager and
//! kube-scheduler in one). `flotilla up` runs the same loops in process unless given
//! `--no-controllers`.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// How soon a silent node is NotReady and its pods are replaced: shared by `up` and
/// `controller-manager`.
#[derive(clap::Args)]
pub struct NodeLifecycleArgs {
    /// How long a node may go without renewing its Lease before it is NotReady (e.g. 40s, 1m).
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    pub node_grace_period: Duration,
    /// How long pods stay on a NotReady node before they are evicted and replaced elsewhere.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub pod_eviction_timeout: Duration,
}

impl NodeLifecycleArgs {
    pub fn manager_config(&self) -> flotilla_controllers::ManagerConfig {
        flotilla_controllers::ManagerConfig {
            node_lifecycle: flotilla_controllers::node_lifecycle::NodeLifecycleConfig {
                grace_period: self.node_grace_period,
                pod_eviction_timeout: self.pod_eviction_timeout,
            },
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
pub struct ControllerManagerArgs {
    /// kubeconfig of the cluster (as written by `flotilla up`).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    lifecycle: NodeLifecycleArgs,
}

/// Runs the controllers and the scheduler until `shutdown` completes; an error if either stops
/// on its own.
pub async fn run_control_loops(
    client: kube::Client,
    config: flotilla_controllers::ManagerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let scheduler = flotilla_scheduler::Scheduler::new(client.clone());
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(scheduler.run(until_stopped()));
    tasks.spawn(flotilla_controllers::run(client, config, until_stopped()));
    tokio::select! {
        _ = shutdown => {}
        Some(finished) = tasks.join_next() => {
            let _ = stop.send(true);
            finished.context("a control loop panicked")??;
            anyhow::bail!("a control loop stopped unexpectedly");
        }
    }
    let _ = stop.send(true);
    while let Some(finished) = tasks.join_next().await {
        finished.context("a control loop panicked")??;
    }
    Ok(())
}

pub async fn run(args: ControllerManagerArgs) -> Result<()> {
    let client = flotilla_client::connect(args.kubeconfig.as_deref()).await?;
    tracing::info!("controller manager and scheduler starting");
    run_control_loops(
        client,
        args.lifecycle.manager_config(),
        crate::up::shutdown_signal(),
    )
    .await
}
