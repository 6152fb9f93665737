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

pub mod deployment;
pub mod expectations;
pub mod informer;
pub mod node_lifecycle;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod worker;

use informer::Informer;
use deployment::DeploymentController;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use replicaset::ReplicaSetController;
use std::future::Future;
use std::sync::Arc;

/// Settings of the whole controller manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub node_lifecycle: node_lifecycle::NodeLifecycleConfig,
    /// Concurrent reconciles per controller (Kubernetes' `--concurrent-*-syncs`, 5 by default).
    pub workers: usize,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            node_lifecycle: Default::default(),
            workers: 5,
        }
    }
}

/// The caches every controller shares: one list+watch per kind for the whole manager.
pub struct Informers {
    pub pods: Arc<Informer<Pod>>,
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    pub deployments: Arc<Informer<Deployment>>,
    pub replication_controllers: Arc<Informer<ReplicationController>>,
}

impl Informers {
    pub fn new(client: &Client) -> Self {
        let config = watcher::Config::default;
        Informers {
            pods: Informer::new(Api::all(client.clone()), config()),
            replica_sets: Informer::new(Api::all(client.clone()), config()),
            deployments: Informer::new(Api::all(client.clone()), config()),
            replication_controllers: Informer::new(Api::all(client.clone()), config()),
        }
    }

    /// Runs every informer until `shutdown` completes.
    async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let informers = futures::future::join4(
            self.pods.clone().run(until_stopped()),
            self.replica_sets.clone().run(until_stopped()),
            self.deployments.clone().run(until_stopped()),
            self.replication_controllers.clone().run(until_stopped()),
        );
        tokio::select! {
            _ = informers => {}
            _ = shutdown => { let _ = stop.send(true); }
        }
    }
}

/// Runs every controller until `shutdown` completes.
pub async fn run(
    client: Client,
    config: ManagerConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let informers = Informers::new(&client);
    let replica_sets = ReplicaSetController::new(
        client.clone(),
        informers.replica_sets.clone(),
        informers.pods.clone(),
    );
    let replication_controllers = ReplicaSetController::new(
        client.clone(),
        informers.replication_controllers.clone(),
        informers.pods.clone(),
    );
    let deployments = DeploymentController::new(
        client.clone(),
        informers.deployments.clone(),
        informers.replica_sets.clone(),
        informers.pods.clone(),
    );
    let queues = [
        deployments.queue().clone(),
        replica_sets.queue().clone(),
        replication_controllers.queue().clone(),
    ];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let client = client.clone();
        let config = config.node_lifecycle.clone();
        let mut stopped = stopped.clone();
        async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(error) = node_lifecycle::run(client, config, shutdown).await {
                tracing::error!(error = format!("{error:#}"), "node lifecycle controller failed");
            }
        }
    });
    tasks.spawn(deployments.run(config.workers));
    tasks.spawn(replica_sets.run(config.workers));
    tasks.spawn(replication_controllers.run(config.workers));
    informers.run(shutdown).await;
    // Informers stop at shutdown; the workers stop once their queues are shut down.
    let _ = stop.send(true);
    for queue in queues {
        queue.shut_down();
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
