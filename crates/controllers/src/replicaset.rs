//! The ReplicaSet controller, which also serves core/v1 ReplicationControllers: keeps exactly
//! `replicas` active pods matching the selector, creating pods from the template and deleting
//! the most expendable surplus ones, adopting matching orphans and releasing pods that stopped
//! matching, and reports the counts in `status`.

use crate::claim;
use crate::expectations::{Expectations, Seen};
use crate::informer::{Informer, ObjectKey};
use crate::pod_control;
use crate::pods;
use crate::queue::WorkQueue;
use crate::worker::{Action, run_workers};
use anyhow::Context as _;
use flotilla_client::events::{EventType, Recorder};
use futures::future::join_all;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Most pods one reconcile creates or deletes (Kubernetes' `burstReplicas`).
const BURST_REPLICAS: usize = 500;

/// What the controller needs of a ReplicaSet or a ReplicationController.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The component name its events carry.
    const COMPONENT: &'static str;
    fn desired_replicas(&self) -> i32;
    /// Whether the selector picks pods with these labels; an empty selector picks none.
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool;
    fn pod_template(&self) -> Option<&PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
    fn counts(&self) -> Option<ReplicaCounts>;
}

/// The status fields ReplicaSets and ReplicationControllers share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    pub replicas: i32,
    pub fully_labeled_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub observed_generation: i64,
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";

    fn desired_replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        pods::selector_matches(&self.spec.selector, labels)
    }

    fn pod_template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.min_ready_seconds.unwrap_or(0)
    }

    fn counts(&self) -> Option<ReplicaCounts> {
        let s = self.status.as_ref()?;
        Some(ReplicaCounts {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
        })
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    fn desired_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        match self.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            Some(selector) if !selector.is_empty() => selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value)),
            _ => false,
        }
    }

    fn pod_template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn counts(&self) -> Option<ReplicaCounts> {
        let s = self.status.as_ref()?;
        Some(ReplicaCounts {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
        })
    }
}

pub struct ReplicaSetController<R: Replicated> {
    client: Client,
    owners: Arc<Informer<R>>,
    pods: Arc<Informer<Pod>>,
    expectations: Expectations,
    recorder: Recorder,
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl<R: Replicated> ReplicaSetController<R> {
    pub fn new(client: Client, owners: Arc<Informer<R>>, pods: Arc<Informer<Pod>>) -> Arc<Self> {
        let queue = WorkQueue::new();
        owners.enqueue_changes(&queue);
        pods.enqueue_related(&queue, {
            let owners = owners.clone();
            move |object| owners_of_pod(&owners, object)
        });
        let recorder = Recorder::new(client.clone(), R::COMPONENT, None);
        Arc::new(ReplicaSetController {
            client,
            owners,
            pods,
            expectations: Expectations::default(),
            recorder,
            queue,
        })
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.owners.synced().await;
        self.pods.synced().await;
        tracing::info!(controller = R::COMPONENT, "started");
        let controller = self.clone();
        run_workers(R::COMPONENT, self.queue.clone(), workers, move |key| {
            let controller = controller.clone();
            async move { controller.reconcile(&key).await }
        })
        .await;
    }

    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.queue
    }

    async fn reconcile(&self, key: &ObjectKey) -> anyhow::Result<Action> {
        let Some(owner) = self.owners.get(Some(&key.namespace), &key.name) else {
            self.expectations.forget(key);
            return Ok(Action::AwaitChange);
        };
        let owner_uid = owner.uid().unwrap_or_default();
        let deleting = owner.meta().deletion_timestamp.is_some();
        let pods = claim::claim_pods(
            &self.client,
            &self.pods,
            owner.as_ref(),
            |labels| owner.selects(labels),
            |pod| !deleting && pods::is_active(pod),
        )
        .await?;
        let active: Vec<&Pod> = pods
            .iter()
            .map(Arc::as_ref)
            .filter(|p| pods::is_active(p))
            .collect();

        let pods_cache = &self.pods;
        let caught_up = self.expectations.satisfied(key, |name| {
            match pods_cache.get(Some(&key.namespace), name) {
                None => Seen::Absent,
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => Seen::Terminating,
                Some(pod) if !pods::is_controlled_by(pod.as_ref(), &owner_uid) => Seen::Absent,
                Some(_) => Seen::Present,
            }
        });
        if caught_up && !deleting {
            self.manage_replicas(&owner, key, &active).await?;
        }
        self.update_status(&owner, &active).await
    }

    async fn manage_replicas(
        &self,
        owner: &R,
        key: &ObjectKey,
        active: &[&Pod],
    ) -> anyhow::Result<()> {
        let desired = usize::try_from(owner.desired_replicas().max(0)).unwrap_or(0);
        if active.len() < desired {
            let missing = (desired - active.len()).min(BURST_REPLICAS);
            self.create_pods(owner, key, missing).await
        } else if active.len() > desired {
            let surplus = (active.len() - desired).min(BURST_REPLICAS);
            let mut ranked: Vec<&Pod> = active.to_vec();
            ranked.sort_by_key(|p| pods::deletion_rank(p));
            self.delete_pods(owner, key, &ranked[..surplus]).await
        } else {
            Ok(())
        }
    }

    async fn create_pods(&self, owner: &R, key: &ObjectKey, count: usize) -> anyhow::Result<()> {
        let template = owner
            .pod_template()
            .context("the object has no pod template")?;
        pod_control::create_from_template(
            &self.client,
            &self.recorder,
            &self.expectations,
            owner,
            key,
            template,
            count,
        )
        .await?;
        Ok(())
    }

    async fn delete_pods(
        &self,
        owner: &R,
        key: &ObjectKey,
        surplus: &[&Pod],
    ) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let names: Vec<String> = surplus.iter().map(|p| p.name_any()).collect();
        self.expectations
            .expect_deletions(key, names.iter().cloned());
        let results = join_all(names.iter().map(|name| {
            let api = api.clone();
            async move { (name, api.delete(name, &DeleteParams::default()).await) }
        }))
        .await;
        let mut failure = None;
        let mut deleted = Vec::new();
        for (name, result) in results {
            match result {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    self.expectations.deletion_failed(key, name);
                    failure = Some(error);
                }
            }
        }
        join_all(deleted.iter().map(|name| {
            self.recorder.record(
                owner,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            )
        }))
        .await;
        match failure {
            Some(error) => Err(error).context("deleting surplus pods"),
            None => Ok(()),
        }
    }

    async fn update_status(&self, owner: &R, active: &[&Pod]) -> anyhow::Result<Action> {
        let now = jiff::Timestamp::now();
        let min_ready = owner.min_ready_seconds();
        let template_labels = owner
            .pod_template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let counts = ReplicaCounts {
            replicas: count(active.len()),
            fully_labeled_replicas: count(
                active
                    .iter()
                    .filter(|p| {
                        template_labels
                            .iter()
                            .all(|(k, v)| p.labels().get(k) == Some(v))
                    })
                    .count(),
            ),
            ready_replicas: count(active.iter().filter(|p| pods::is_ready(p)).count()),
            available_replicas: count(
                active
                    .iter()
                    .filter(|p| pods::is_available(p, min_ready, now))
                    .count(),
            ),
            observed_generation: owner.meta().generation.unwrap_or(0),
        };
        if owner.counts().as_ref() != Some(&counts) {
            let api: Api<R> =
                Api::namespaced(self.client.clone(), &owner.namespace().unwrap_or_default());
            let patch = serde_json::json!({ "status": counts });
            match api
                .patch_status(
                    &owner.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(Action::AwaitChange);
                }
                Err(error) => return Err(error).context("updating status"),
            }
        }
        // Pods that are ready but not yet available become available by the clock alone.
        if counts.ready_replicas > counts.available_replicas && min_ready > 0 {
            return Ok(Action::RequeueAfter(Duration::from_secs(1)));
        }
        Ok(Action::AwaitChange)
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The owners a pod change concerns: its controller if it is one of ours, or, for an orphan,
/// every owner whose selector matches it (one of them may adopt it).
fn owners_of_pod<R: Replicated>(owners: &Informer<R>, pod: &Pod) -> Vec<ObjectKey> {
    let namespace = pod.namespace().unwrap_or_default();
    match pods::controller_of(pod) {
        Some(reference) => {
            if reference.kind == R::kind(&()) {
                vec![ObjectKey::new(namespace, reference.name.clone())]
            } else {
                Vec::new()
            }
        }
        None => owners
            .store()
            .state()
            .iter()
            .filter(|o| {
                o.namespace().as_deref() == Some(namespace.as_str()) && o.selects(pod.labels())
            })
            .map(|o| ObjectKey::of(o.as_ref()))
            .collect(),
    }
}
