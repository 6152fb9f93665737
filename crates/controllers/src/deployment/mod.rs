//! The Deployment controller: one ReplicaSet per pod template, a rollout from the old ones to
//! the new one (rolling within `maxSurge`/`maxUnavailable`, or Recreate), revision history for
//! `kubectl rollout undo`, `paused`, and the status `kubectl rollout status` reads.

pub mod revision;
pub mod rollout;
mod status;

use crate::informer::{Change, Informer, ObjectKey};
use crate::pods;
use crate::queue::WorkQueue;
use crate::worker::{Action, run_workers};
use anyhow::Context as _;
use flotilla_client::events::{EventType, Recorder};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use revision::{POD_TEMPLATE_HASH, REVISION};
use rollout::RsView;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const COMPONENT: &str = "deployment-controller";

pub struct DeploymentController {
    client: Client,
    deployments: Arc<Informer<Deployment>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
    queue: Arc<WorkQueue<ObjectKey>>,
    /// ReplicaSet writes of each Deployment (name → resourceVersion) that the cache has not
    /// shown yet. Acting on an older cached ReplicaSet could scale it twice.
    unseen_writes: Mutex<HashMap<ObjectKey, HashMap<String, u64>>>,
}

impl DeploymentController {
    pub fn new(
        client: Client,
        deployments: Arc<Informer<Deployment>>,
        replica_sets: Arc<Informer<ReplicaSet>>,
        pods: Arc<Informer<Pod>>,
    ) -> Arc<Self> {
        let queue = WorkQueue::new();
        deployments.enqueue_changes(&queue);
        replica_sets.enqueue_related(&queue, {
            let deployments = deployments.clone();
            move |object| deployments_of_rs(&deployments, object)
        });
        // A Recreate rollout waits for the old pods to be gone.
        pods.on_change({
            let queue = queue.clone();
            let replica_sets = replica_sets.clone();
            move |change| {
                let pod = match change {
                    Change::Deleted(pod) => *pod,
                    Change::Applied { new, .. } if pods::is_finished(new) => *new,
                    _ => return,
                };
                let Some(rs_ref) = pods::controller_of(pod).filter(|r| r.kind == "ReplicaSet")
                else {
                    return;
                };
                let rs = replica_sets.get(pod.namespace().as_deref(), &rs_ref.name);
                if let Some(d_ref) = rs.as_deref().and_then(pods::controller_of) {
                    queue.add(ObjectKey::new(
                        pod.namespace().unwrap_or_default(),
                        d_ref.name.clone(),
                    ));
                }
            }
        });
        let recorder = Recorder::new(client.clone(), COMPONENT, None);
        Arc::new(DeploymentController {
            client,
            deployments,
            replica_sets,
            pods,
            recorder,
            queue,
            unseen_writes: Mutex::new(HashMap::new()),
        })
    }

    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.queue
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.deployments.synced().await;
        self.replica_sets.synced().await;
        self.pods.synced().await;
        tracing::info!(controller = COMPONENT, "started");
        let controller = self.clone();
        run_workers(COMPONENT, self.queue.clone(), workers, move |key| {
            let controller = controller.clone();
            async move { controller.reconcile(&key).await }
        })
        .await;
    }

    async fn reconcile(&self, key: &ObjectKey) -> anyhow::Result<Action> {
        let Some(deployment) = self.deployments.get(Some(&key.namespace), &key.name) else {
            self.unseen_writes.lock().expect("lock").remove(key);
            return Ok(Action::AwaitChange);
        };
        if !self.cache_caught_up(key) {
            // The ReplicaSet event that brings the cache up to date requeues this key.
            return Ok(Action::AwaitChange);
        }
        let deleting = deployment.metadata.deletion_timestamp.is_some();
        let replica_sets = self.claim_replica_sets(&deployment, deleting).await?;
        let template = &deployment.spec.template;
        let (new_rs, mut old): (Vec<ReplicaSet>, Vec<ReplicaSet>) = replica_sets
            .into_iter()
            .partition(|rs| revision::runs_template(rs, template));
        let new_rs = new_rs.into_iter().next();
        old.sort_by_key(|rs| {
            (
                rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                rs.name_any(),
            )
        });

        let mut rollout = Rollout {
            controller: self,
            key,
            deployment: &deployment,
            new_rs,
            old,
            new_rs_created: false,
        };
        if deleting {
            return rollout.finish(false).await;
        }
        if deployment.spec.paused == Some(true) {
            rollout.scale_while_paused().await?;
            return rollout.finish(false).await;
        }
        let recreate = deployment
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        if recreate {
            rollout.recreate().await
        } else {
            rollout.rolling().await
        }
    }

    fn cache_caught_up(&self, key: &ObjectKey) -> bool {
        let mut unseen = self.unseen_writes.lock().expect("lock");
        let Some(writes) = unseen.get_mut(key) else {
            return true;
        };
        writes.retain(|name, written| {
            self.replica_sets
                .get(Some(&key.namespace), name)
                .and_then(|rs| rs.resource_version())
                .and_then(|rv| rv.parse::<u64>().ok())
                .is_some_and(|cached| cached < *written)
        });
        let caught_up = writes.is_empty();
        if caught_up {
            unseen.remove(key);
        }
        caught_up
    }

    fn wrote(&self, key: &ObjectKey, rs: &ReplicaSet) {
        if let Some(rv) = rs.resource_version().and_then(|rv| rv.parse().ok()) {
            self.unseen_writes
                .lock()
                .expect("lock")
                .entry(key.clone())
                .or_default()
                .insert(rs.name_any(), rv);
        }
    }

    /// The ReplicaSets this Deployment controls, after adopting matching orphans and releasing
    /// those whose labels stopped matching.
    async fn claim_replica_sets(
        &self,
        deployment: &Deployment,
        deleting: bool,
    ) -> anyhow::Result<Vec<ReplicaSet>> {
        let namespace = deployment.namespace().unwrap_or_default();
        let uid = deployment.uid().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        let mut claimed = Vec::new();
        for rs in self.replica_sets.store().state() {
            if rs.namespace().as_deref() != Some(namespace.as_str()) {
                continue;
            }
            let matches = pods::selector_matches(&deployment.spec.selector, rs.labels());
            match pods::controller_of(rs.as_ref()) {
                Some(owner) if owner.uid == uid => {
                    if matches {
                        claimed.push(rs.as_ref().clone());
                    } else {
                        let remaining: Vec<_> = rs
                            .owner_references()
                            .iter()
                            .filter(|r| r.uid != uid)
                            .cloned()
                            .collect();
                        let patch = serde_json::json!({"metadata": {"ownerReferences": remaining}});
                        api.patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                        .context("releasing a ReplicaSet")?;
                    }
                }
                None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                    let mut references = rs.owner_references().to_vec();
                    references.push(pods::controller_reference(deployment));
                    let patch = serde_json::json!({"metadata": {"ownerReferences": references}});
                    let adopted = api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                        .context("adopting a ReplicaSet")?;
                    claimed.push(adopted);
                }
                _ => {}
            }
        }
        Ok(claimed)
    }
}

/// One reconcile of one Deployment: its ReplicaSets, and the steps that move them.
struct Rollout<'a> {
    controller: &'a DeploymentController,
    key: &'a ObjectKey,
    deployment: &'a Deployment,
    new_rs: Option<ReplicaSet>,
    /// Oldest first.
    old: Vec<ReplicaSet>,
    new_rs_created: bool,
}

impl Rollout<'_> {
    fn desired(&self) -> i32 {
        self.deployment.spec.replicas.unwrap_or(1).max(0)
    }

    fn surge_and_unavailable(&self) -> (i32, i32) {
        let rolling = self
            .deployment
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref());
        rollout::surge_and_unavailable(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            self.desired(),
        )
    }

    fn api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.controller.client.clone(), &self.key.namespace)
    }

    async fn rolling(&mut self) -> anyhow::Result<Action> {
        let desired = self.desired();
        let (surge, unavailable) = self.surge_and_unavailable();
        let new_rs = match self.new_rs.take() {
            Some(rs) => self.sync_new_rs(rs).await?,
            None => {
                let empty = RsView {
                    name: String::new(),
                    replicas: 0,
                    available: 0,
                };
                let all: Vec<RsView> = self.old.iter().map(view).collect();
                let replicas = rollout::new_rs_replicas(desired, surge, &empty, &all);
                self.create_new_rs(replicas).await?
            }
        };
        let new_view = view(&new_rs);
        self.new_rs = Some(new_rs);
        let all: Vec<RsView> = self
            .old
            .iter()
            .map(view)
            .chain([new_view.clone()])
            .collect();
        let target = rollout::new_rs_replicas(desired, surge, &new_view, &all);
        if target != new_view.replicas {
            self.scale_new(target).await?;
            return self.finish(false).await;
        }
        let old_views: Vec<RsView> = self.old.iter().map(view).collect();
        let changes = rollout::scale_down_old(desired, unavailable, Some(&new_view), &old_views);
        if !changes.is_empty() {
            for (name, replicas) in changes {
                self.scale_old(&name, replicas).await?;
            }
            return self.finish(false).await;
        }
        self.finish(true).await
    }

    async fn recreate(&mut self) -> anyhow::Result<Action> {
        let mut scaled = false;
        let names: Vec<String> = self
            .old
            .iter()
            .filter(|rs| rs.spec.replicas.unwrap_or(0) > 0)
            .map(|rs| rs.name_any())
            .collect();
        for name in names {
            self.scale_old(&name, 0).await?;
            scaled = true;
        }
        if scaled || self.old_pods_running() {
            return self.finish(false).await;
        }
        let desired = self.desired();
        let new_rs = match self.new_rs.take() {
            Some(rs) => self.sync_new_rs(rs).await?,
            None => self.create_new_rs(desired).await?,
        };
        let current = new_rs.spec.replicas.unwrap_or(0);
        self.new_rs = Some(new_rs);
        if current != desired {
            self.scale_new(desired).await?;
            return self.finish(false).await;
        }
        self.finish(true).await
    }

    /// While paused, only the replica count follows the Deployment, and only when there is
    /// a single active ReplicaSet to scale.
    async fn scale_while_paused(&mut self) -> anyhow::Result<()> {
        let desired = self.desired();
        let active_old: Vec<String> = self
            .old
            .iter()
            .filter(|rs| rs.spec.replicas.unwrap_or(0) > 0)
            .map(|rs| rs.name_any())
            .collect();
        match (&self.new_rs, active_old.as_slice()) {
            (Some(rs), []) if rs.spec.replicas != Some(desired) => self.scale_new(desired).await,
            (None, [only]) => {
                let only = only.clone();
                self.scale_old(&only, desired).await
            }
            _ => Ok(()),
        }
    }

    /// Whether an old ReplicaSet still has a pod that is running or on its way out. A pod
    /// being deleted counts even once its phase is final: the node reports the stopped
    /// container a moment before it removes the pod, and Recreate promises that no new pod
    /// exists beside an old one.
    fn old_pods_running(&self) -> bool {
        let old_uids: Vec<String> = self.old.iter().filter_map(|rs| rs.uid()).collect();
        self.controller.pods.store().state().iter().any(|pod| {
            pod.namespace().as_deref() == Some(self.key.namespace.as_str())
                && (!pods::is_finished(pod) || pod.metadata.deletion_timestamp.is_some())
                && pods::controller_of(pod.as_ref()).is_some_and(|r| old_uids.contains(&r.uid))
        })
    }

    fn next_revision(&self) -> i64 {
        self.old
            .iter()
            .map(revision::revision_of)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Brings an existing new ReplicaSet's revision, annotations and minReadySeconds in line
    /// with the Deployment (a ReplicaSet brought back by `rollout undo` gets the next revision).
    async fn sync_new_rs(&mut self, rs: ReplicaSet) -> anyhow::Result<ReplicaSet> {
        let revision = self.next_revision().max(revision::revision_of(&rs));
        let mut annotations = self.copied_annotations();
        annotations.insert(REVISION.into(), revision.to_string());
        let min_ready = self.deployment.spec.min_ready_seconds;
        let stale = annotations
            .iter()
            .any(|(k, v)| rs.annotations().get(k) != Some(v))
            || rs.spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
        let rs = if stale {
            let patch = serde_json::json!({
                "metadata": {"annotations": annotations},
                "spec": {"minReadySeconds": min_ready.unwrap_or(0)},
            });
            let updated = self
                .api()
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
                .context("updating the new ReplicaSet's revision")?;
            self.controller.wrote(self.key, &updated);
            updated
        } else {
            rs
        };
        self.annotate_deployment_revision(revision).await?;
        Ok(rs)
    }

    fn copied_annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.deployment
            .annotations()
            .iter()
            .filter(|(k, _)| revision::copied_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn create_new_rs(&mut self, replicas: i32) -> anyhow::Result<ReplicaSet> {
        let deployment = self.deployment;
        let collision_count = deployment
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let hash = revision::template_hash(&deployment.spec.template, collision_count);
        let mut template = deployment.spec.template.clone();
        let template_meta = template.metadata.get_or_insert_with(Default::default);
        template_meta
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = deployment.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let revision = self.next_revision();
        let mut annotations = self.copied_annotations();
        annotations.insert(REVISION.into(), revision.to_string());
        let name = format!("{}-{hash}", deployment.name_any());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.key.namespace.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![pods::controller_reference(deployment)]),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: deployment.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let created = match self.api().create(&PostParams::default(), &rs).await {
            Ok(created) => created,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self
                    .api()
                    .get(&name)
                    .await
                    .context("reading a ReplicaSet")?;
                if revision::runs_template(&existing, &deployment.spec.template)
                    && pods::is_controlled_by(&existing, &deployment.uid().unwrap_or_default())
                {
                    existing
                } else {
                    // Another template hashed to the same name: hash again with a new count.
                    let patch =
                        serde_json::json!({"status": {"collisionCount": collision_count + 1}});
                    Api::<Deployment>::namespaced(
                        self.controller.client.clone(),
                        &self.key.namespace,
                    )
                    .patch_status(
                        &deployment.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                    .context("recording a hash collision")?;
                    anyhow::bail!(
                        "ReplicaSet {name} exists with another template; retrying with a new hash"
                    );
                }
            }
            Err(error) => return Err(error).context("creating the new ReplicaSet"),
        };
        self.controller.wrote(self.key, &created);
        self.new_rs_created = true;
        self.controller
            .recorder
            .record(
                deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            )
            .await;
        self.annotate_deployment_revision(revision).await?;
        Ok(created)
    }

    async fn annotate_deployment_revision(&self, revision: i64) -> anyhow::Result<()> {
        let revision = revision.to_string();
        if self.deployment.annotations().get(REVISION) == Some(&revision) {
            return Ok(());
        }
        let patch = serde_json::json!({"metadata": {"annotations": {REVISION: revision}}});
        Api::<Deployment>::namespaced(self.controller.client.clone(), &self.key.namespace)
            .patch(
                &self.deployment.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .context("recording the Deployment's revision")?;
        Ok(())
    }

    async fn scale_new(&mut self, replicas: i32) -> anyhow::Result<()> {
        let rs = self.new_rs.take().context("no new ReplicaSet to scale")?;
        let scaled = self.scale(rs, replicas).await?;
        self.new_rs = Some(scaled);
        Ok(())
    }

    async fn scale_old(&mut self, name: &str, replicas: i32) -> anyhow::Result<()> {
        let Some(index) = self.old.iter().position(|rs| rs.name_any() == name) else {
            return Ok(());
        };
        let rs = self.old[index].clone();
        self.old[index] = self.scale(rs, replicas).await?;
        Ok(())
    }

    async fn scale(&self, rs: ReplicaSet, replicas: i32) -> anyhow::Result<ReplicaSet> {
        let from = rs.spec.replicas.unwrap_or(0);
        if from == replicas {
            return Ok(rs);
        }
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        let scaled = self
            .api()
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .with_context(|| format!("scaling ReplicaSet {}", rs.name_any()))?;
        self.controller.wrote(self.key, &scaled);
        let direction = if replicas > from { "up" } else { "down" };
        self.controller
            .recorder
            .record(
                self.deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {from} to {replicas}",
                    rs.name_any()
                ),
            )
            .await;
        Ok(scaled)
    }

    /// Writes the status; when the rollout is `settled` (nothing was scaled this time),
    /// old ReplicaSets beyond the revision history limit are deleted if it is also complete.
    async fn finish(&self, settled: bool) -> anyhow::Result<Action> {
        let (_, max_unavailable) = self.surge_and_unavailable();
        let recreate = self
            .deployment
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        let max_unavailable = if recreate { 0 } else { max_unavailable };
        let computed = status::compute(
            self.deployment,
            self.new_rs.as_ref(),
            &self.old,
            max_unavailable,
            self.new_rs_created,
            jiff::Timestamp::now(),
        );
        if computed.changed {
            let patch = serde_json::json!({"status": computed.status});
            match Api::<Deployment>::namespaced(self.controller.client.clone(), &self.key.namespace)
                .patch_status(
                    &self.deployment.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(Action::AwaitChange);
                }
                Err(error) => return Err(error).context("updating the Deployment's status"),
            }
        }
        if settled && computed.complete {
            self.clean_up_history().await?;
        }
        Ok(match computed.recheck_after {
            Some(delay) => Action::RequeueAfter(delay),
            None => Action::AwaitChange,
        })
    }

    async fn clean_up_history(&self) -> anyhow::Result<()> {
        let limit = self
            .deployment
            .spec
            .revision_history_limit
            .unwrap_or(10)
            .max(0) as usize;
        let mut retired: Vec<&ReplicaSet> = self
            .old
            .iter()
            .filter(|rs| {
                rs.spec.replicas.unwrap_or(0) == 0
                    && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if retired.len() <= limit {
            return Ok(());
        }
        retired.sort_by_key(|rs| revision::revision_of(rs));
        let excess = retired.len() - limit;
        for rs in &retired[..excess] {
            tracing::info!(deployment = %self.key, replicaset = %rs.name_any(), "deleting a ReplicaSet beyond the revision history limit");
            match self
                .api()
                .delete(&rs.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error).context("deleting an old ReplicaSet"),
            }
        }
        Ok(())
    }
}

fn view(rs: &ReplicaSet) -> RsView {
    let replicas = rs.spec.replicas.unwrap_or(0);
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    RsView {
        name: rs.name_any(),
        replicas,
        available: available.min(replicas),
    }
}

/// The Deployments a ReplicaSet change concerns: its controller, or for an orphan, those whose
/// selector matches it (one may adopt it).
fn deployments_of_rs(deployments: &Informer<Deployment>, rs: &ReplicaSet) -> Vec<ObjectKey> {
    let namespace = rs.namespace().unwrap_or_default();
    match pods::controller_of(rs) {
        Some(owner) if owner.kind == "Deployment" => {
            vec![ObjectKey::new(namespace, owner.name.clone())]
        }
        Some(_) => Vec::new(),
        None => deployments
            .store()
            .state()
            .iter()
            .filter(|d| {
                d.namespace().as_deref() == Some(namespace.as_str())
                    && pods::selector_matches(&d.spec.selector, rs.labels())
            })
            .map(|d| ObjectKey::of(d.as_ref()))
            .collect(),
    }
}
