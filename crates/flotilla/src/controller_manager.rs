//! `flotilla controller-manager`: the controllers and the scheduler as their own process,
//! against an apiserver a kubeconfig names (Kubernetes' kube-controller-manager and
//! kube-scheduler in one). `flotilla up` runs the same loops in process unless given
//! `--no-controllers`. Wherever they run, they run only while holding the leader Lease, so
//! extra controller managers stand by instead of acting twice.

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

/// Leader election among controller managers: shared by `up` and `controller-manager`.
#[derive(clap::Args)]
pub struct ElectionArgs {
    /// How long a controller manager that stopped renewing the leader Lease keeps it before
    /// another may take over (renewals come every 2/15 of it, as in Kubernetes).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_elect_lease_duration: Duration,
}

#[derive(clap::Args)]
pub struct ControllerManagerArgs {
    /// kubeconfig of the cluster (as written by `flotilla up`).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    lifecycle: NodeLifecycleArgs,
    #[command(flatten)]
    election: ElectionArgs,
}

/// Runs the control loops whenever `identity` holds the controller manager's leader Lease,
/// until `shutdown` completes: any number of controller managers may run, one acts.
pub async fn run_elected(
    client: kube::Client,
    config: flotilla_controllers::ManagerConfig,
    election: &ElectionArgs,
    identity: String,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let timings = flotilla_controllers::leader::ElectionConfig::with_lease_duration(
        election.leader_elect_lease_duration,
    );
    let candidate = flotilla_controllers::leader::Candidate::new(client.clone(), identity, timings);
    candidate
        .run(shutdown, |mut lost| {
            let client = client.clone();
            let config = config.clone();
            async move {
                let stop = async move {
                    let _ = lost.wait_for(|lost| *lost).await;
                };
                if let Err(error) = run_control_loops(client, config, stop).await {
                    tracing::error!(error = format!("{error:#}"), "the control loops failed");
                }
            }
        })
        .await;
    Ok(())
}

/// This machine's name, for leader identities.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
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
    let suffix: [u8; 4] = rand::random();
    let identity = format!(
        "{}_{}",
        hostname(),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    tracing::info!(%identity, "controller manager and scheduler starting; waiting to lead");
    run_elected(
        client,
        args.lifecycle.manager_config(),
        &args.election,
        identity,
        crate::up::shutdown_signal(),
    )
    .await
}
