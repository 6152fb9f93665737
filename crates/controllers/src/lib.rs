//! flotilla-controllers: the controller manager, which keeps the cluster converging to what
//! users declared.
//!
//! Each controller follows the Kubernetes pattern: informers (list, then watch from the
//! returned resourceVersion, relisting on 410) keep caches of the kinds it reads; changes put
//! object keys on a rate-limited work queue; workers call a level-triggered
//! `reconcile(key)` that compares desired and observed state and acts on the difference.
//!
//! The controllers: [`replicaset`] (ReplicaSets and ReplicationControllers), [`deployment`],
//! [`job`], [`daemonset`], [`endpoints`] (Endpoints and EndpointSlices of Services), the
//! garbage collector [`gc`] and [`node_lifecycle`]. The machinery:
//! [`informer`], [`queue`], [`worker`], [`expectations`], [`claim`], [`pod_control`]. [`leader`] elects the one
//! controller manager that acts when several run.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! let config = flotilla_controllers::ManagerConfig::default();
//! flotilla_controllers::run(client, config, std::future::pending()).await
//! # }
//! ```

pub mod claim;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod expectations;
pub mod gc;
pub mod informer;
pub mod job;
pub mod leader;
pub mod node_lifecycle;
pub mod pod_control;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod worker;

use daemonset::DaemonSetController;
use deployment::DeploymentController;
use futures::future::BoxFuture;
use informer::{Informer, ObjectKey};
use job::JobController;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use queue::WorkQueue;
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
    pub nodes: Arc<Informer<Node>>,
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    pub deployments: Arc<Informer<Deployment>>,
    pub replication_controllers: Arc<Informer<ReplicationController>>,
    pub jobs: Arc<Informer<Job>>,
    pub daemon_sets: Arc<Informer<DaemonSet>>,
    pub leases: Arc<Informer<Lease>>,
    pub services: Arc<Informer<Service>>,
    pub endpoints: Arc<Informer<Endpoints>>,
    pub endpoint_slices: Arc<Informer<EndpointSlice>>,
    pub functions: Arc<Informer<flotilla_api::function::Function>>,
}

impl Informers {
    pub fn new(client: &Client) -> Self {
        let config = watcher::Config::default;
        Informers {
            pods: Informer::new(Api::all(client.clone()), config()),
            nodes: Informer::new(Api::all(client.clone()), config()),
            replica_sets: Informer::new(Api::all(client.clone()), config()),
            deployments: Informer::new(Api::all(client.clone()), config()),
            replication_controllers: Informer::new(Api::all(client.clone()), config()),
            jobs: Informer::new(Api::all(client.clone()), config()),
            daemon_sets: Informer::new(Api::all(client.clone()), config()),
            leases: Informer::new(Api::all(client.clone()), config()),
            services: Informer::new(Api::all(client.clone()), config()),
            endpoints: Informer::new(Api::all(client.clone()), config()),
            endpoint_slices: Informer::new(Api::all(client.clone()), config()),
            functions: Informer::new(Api::all(client.clone()), config()),
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
        let informers: Vec<BoxFuture<'static, ()>> = vec![
            Box::pin(self.pods.clone().run(until_stopped())),
            Box::pin(self.nodes.clone().run(until_stopped())),
            Box::pin(self.replica_sets.clone().run(until_stopped())),
            Box::pin(self.deployments.clone().run(until_stopped())),
            Box::pin(self.replication_controllers.clone().run(until_stopped())),
            Box::pin(self.jobs.clone().run(until_stopped())),
            Box::pin(self.daemon_sets.clone().run(until_stopped())),
            Box::pin(self.leases.clone().run(until_stopped())),
            Box::pin(self.services.clone().run(until_stopped())),
            Box::pin(self.endpoints.clone().run(until_stopped())),
            Box::pin(self.endpoint_slices.clone().run(until_stopped())),
            Box::pin(self.functions.clone().run(until_stopped())),
        ];
        tokio::select! {
            _ = futures::future::join_all(informers) => {}
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
    let workers = config.workers;
    let mut tasks = tokio::task::JoinSet::new();
    let mut queues: Vec<Arc<WorkQueue<ObjectKey>>> = Vec::new();

    let deployments = DeploymentController::new(
        client.clone(),
        informers.deployments.clone(),
        informers.replica_sets.clone(),
        informers.pods.clone(),
    );
    queues.push(deployments.queue().clone());
    tasks.spawn(deployments.run(workers));

    let replica_sets = ReplicaSetController::new(
        client.clone(),
        informers.replica_sets.clone(),
        informers.pods.clone(),
    );
    queues.push(replica_sets.queue().clone());
    tasks.spawn(replica_sets.run(workers));

    let replication_controllers = ReplicaSetController::new(
        client.clone(),
        informers.replication_controllers.clone(),
        informers.pods.clone(),
    );
    queues.push(replication_controllers.queue().clone());
    tasks.spawn(replication_controllers.run(workers));

    let jobs = JobController::new(
        client.clone(),
        informers.jobs.clone(),
        informers.pods.clone(),
    );
    queues.push(jobs.queue().clone());
    tasks.spawn(jobs.run(workers));

    let daemon_sets = DaemonSetController::new(
        client.clone(),
        informers.daemon_sets.clone(),
        informers.nodes.clone(),
        informers.pods.clone(),
    );
    queues.push(daemon_sets.queue().clone());
    tasks.spawn(daemon_sets.run(workers));

    let endpoints = endpoints::EndpointsController::new(
        client.clone(),
        informers.services.clone(),
        informers.pods.clone(),
        informers.endpoints.clone(),
        informers.endpoint_slices.clone(),
    );
    queues.push(endpoints.queue().clone());
    tasks.spawn(endpoints.run(workers));

    let collector = gc::Builder::new(client.clone())
        .follow(gc::Kind::Pod, &informers.pods)
        .follow(gc::Kind::ReplicaSet, &informers.replica_sets)
        .follow(gc::Kind::Deployment, &informers.deployments)
        .follow(
            gc::Kind::ReplicationController,
            &informers.replication_controllers,
        )
        .follow(gc::Kind::Job, &informers.jobs)
        .follow(gc::Kind::DaemonSet, &informers.daemon_sets)
        .follow(gc::Kind::Node, &informers.nodes)
        .follow(gc::Kind::Lease, &informers.leases)
        .follow(gc::Kind::Function, &informers.functions)
        .build();
    let gc_queue = collector.queue().clone();
    tasks.spawn(collector.run(workers));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tasks.spawn({
        let client = client.clone();
        let config = config.node_lifecycle.clone();
        let mut stopped = stopped.clone();
        async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(error) = node_lifecycle::run(client, config, shutdown).await {
                tracing::error!(
                    error = format!("{error:#}"),
                    "node lifecycle controller failed"
                );
            }
        }
    });

    informers.run(shutdown).await;
    // Informers stop at shutdown; the workers stop once their queues are shut down.
    let _ = stop.send(true);
    for queue in queues {
        queue.shut_down();
    }
    gc_queue.shut_down();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
