//! The DaemonSet controller: one pod on every matching Ready node, following nodes as they
//! come and go.

use crate::informer::{Informer, ObjectKey};
use crate::queue::WorkQueue;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use std::sync::Arc;

pub struct DaemonSetController {
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl DaemonSetController {
    pub fn new(
        client: Client,
        daemon_sets: Arc<Informer<DaemonSet>>,
        nodes: Arc<Informer<Node>>,
        pods: Arc<Informer<Pod>>,
    ) -> Arc<Self> {
        let _ = (client, daemon_sets, nodes, pods);
        Arc::new(DaemonSetController {
            queue: WorkQueue::new(),
        })
    }

    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.queue
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let _ = workers;
    }
}
