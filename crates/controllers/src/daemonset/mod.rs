//! The DaemonSet controller (apps/v1): one pod on every eligible node, following nodes as they
//! come, go and change, and rolling pods over to a new template.
//!
//! Daemon pods are bound to their node directly (`spec.nodeName`), bypassing the scheduler as
//! DaemonSets did before Kubernetes 1.12, and carry the tolerations Kubernetes gives daemon
//! pods, so a node that stops answering keeps its daemon pod. Each pod is labelled with the
//! hash of the template it was made from (`controller-revision-hash`) and the DaemonSet's
//! generation (`pod-template-generation`); a pod with neither current is out of date.

pub mod placement;

use crate::claim;
use crate::deployment::{revision, rollout};
use crate::expectations::{Expectations, Seen};
use crate::informer::{Change, Informer, ObjectKey};
use crate::pods;
use crate::queue::WorkQueue;
use crate::worker::{Action, run_workers};
use anyhow::Context as _;
use flotilla_client::events::{EventType, Recorder};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use placement::{NodePlan, Placement};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COMPONENT: &str = "daemonset-controller";
/// Most pods one reconcile creates (Kubernetes' `BurstReplicas` for DaemonSets).
const BURST: usize = 250;
/// The label holding the hash of the template a daemon pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";
/// The label holding the DaemonSet generation a daemon pod was made at.
pub const TEMPLATE_GENERATION: &str = "pod-template-generation";
/// Back-off between replacements of failed daemon pods on one node, so a node that rejects
/// the pod does not make the controller spin (Kubernetes: 1 s doubling up to 15 minutes).
const FAILED_POD_BACKOFF: Duration = Duration::from_secs(1);
const MAX_FAILED_POD_BACKOFF: Duration = Duration::from_secs(15 * 60);

pub struct DaemonSetController {
    client: Client,
    daemon_sets: Arc<Informer<DaemonSet>>,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    expectations: Expectations,
    /// Per (DaemonSet uid, node): when a failed pod was last replaced and the current delay.
    failed_pod_backoff: Mutex<HashMap<(String, String), (Instant, Duration)>>,
    recorder: Recorder,
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl DaemonSetController {
    pub fn new(
        client: Client,
        daemon_sets: Arc<Informer<DaemonSet>>,
        nodes: Arc<Informer<Node>>,
        pods: Arc<Informer<Pod>>,
    ) -> Arc<Self> {
        let queue = WorkQueue::new();
        let enqueue_all = {
            let queue = queue.clone();
            let daemon_sets = daemon_sets.clone();
            move || {
                daemon_sets
                    .store()
                    .state()
                    .iter()
                    .for_each(|ds| queue.add(ObjectKey::of(ds.as_ref())))
            }
        };
        daemon_sets.enqueue_changes(&queue);
        nodes.on_change(move |change| {
            let relevant = match change {
                Change::Applied { old, new } => {
                    old.is_none_or(|old| placement_inputs(old) != placement_inputs(new))
                }
                Change::Deleted(_) | Change::Resynced => true,
            };
            if relevant {
                enqueue_all();
            }
        });
        pods.enqueue_related(&queue, {
            let daemon_sets = daemon_sets.clone();
            move |object| daemon_sets_of_pod(&daemon_sets, object)
        });
        let recorder = Recorder::new(client.clone(), COMPONENT, None);
        Arc::new(DaemonSetController {
            client,
            daemon_sets,
            nodes,
            pods,
            expectations: Expectations::default(),
            failed_pod_backoff: Mutex::new(HashMap::new()),
            recorder,
            queue,
        })
    }

    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.queue
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.daemon_sets.synced().await;
        self.nodes.synced().await;
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
        let Some(ds) = self.daemon_sets.get(Some(&key.namespace), &key.name) else {
            self.expectations.forget(key);
            return Ok(Action::AwaitChange);
        };
        let uid = ds.uid().unwrap_or_default();
        if ds.metadata.deletion_timestamp.is_some() {
            // Its pods are the garbage collector's now.
            self.expectations.forget(key);
            self.failed_pod_backoff
                .lock()
                .expect("back-off lock")
                .retain(|(ds_uid, _), _| *ds_uid != uid);
            return Ok(Action::AwaitChange);
        }
        let claimed = claim::claim_pods(
            &self.client,
            &self.pods,
            ds.as_ref(),
            |labels| pods::selector_matches(&ds.spec.selector, labels),
            pods::is_active,
        )
        .await?;
        let pods_cache = &self.pods;
        let caught_up = self.expectations.satisfied(key, |name| {
            match pods_cache.get(Some(&key.namespace), name) {
                None => Seen::Absent,
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => Seen::Terminating,
                Some(pod) if !pods::is_controlled_by(pod.as_ref(), &uid) => Seen::Absent,
                Some(_) => Seen::Present,
            }
        });

        let mut template_spec = ds
            .spec
            .template
            .spec
            .clone()
            .context("the DaemonSet's template has no pod spec")?;
        placement::add_daemon_tolerations(&mut template_spec);
        let nodes = self.nodes.store().state();
        let placements: BTreeMap<String, Placement> = nodes
            .iter()
            .map(|n| (n.name_any(), placement::placement(n, &template_spec)))
            .collect();
        // Daemon pods by node, without those that finished and are being deleted (gone but
        // for their record); pods bound to no node are never ours to keep.
        let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        let mut unbound = Vec::new();
        for pod in claimed.iter().map(Arc::as_ref) {
            if pods::is_finished(pod) && pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                Some(node) if !node.is_empty() => {
                    by_node.entry(node.to_string()).or_default().push(pod)
                }
                _ if pod.metadata.deletion_timestamp.is_none() => unbound.push(pod),
                _ => {}
            }
        }
        let revision = Revision::of(&ds);
        let mut requeue = None;
        if caught_up {
            requeue = self
                .manage(&ds, key, &placements, &by_node, unbound)
                .await?;
        }
        let status = status_of(&ds, &placements, &by_node, &revision);
        self.write_status(&ds, &status).await?;
        let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && status.number_ready > status.number_available {
            // Ready pods become available by the clock alone.
            requeue = Some(requeue.map_or(Duration::from_secs(1), |r: Duration| {
                r.min(Duration::from_secs(1))
            }));
        }
        Ok(requeue.map_or(Action::AwaitChange, Action::RequeueAfter))
    }

    /// Creates and deletes daemon pods so each eligible node runs one of the current
    /// template; once nothing else is to do, advances a rolling update. Returns when to look
    /// again if a failed pod's replacement is held back.
    async fn manage(
        &self,
        ds: &DaemonSet,
        key: &ObjectKey,
        placements: &BTreeMap<String, Placement>,
        by_node: &BTreeMap<String, Vec<&Pod>>,
        unbound: Vec<&Pod>,
    ) -> anyhow::Result<Option<Duration>> {
        let uid = ds.uid().unwrap_or_default();
        let mut create = Vec::new();
        let mut delete = unbound;
        let mut requeue = None;
        let mut failed_events = Vec::new();
        for (node, placement) in placements {
            let pods = by_node.get(node).map(Vec::as_slice).unwrap_or_default();
            let NodePlan {
                create: needs_pod,
                delete: surplus,
                failed,
            } = placement::plan_node(Some(*placement), pods);
            if needs_pod {
                create.push(node.clone());
            }
            delete.extend(surplus);
            for pod in failed {
                match self.failed_pod_backoff(&uid, node) {
                    Some(wait) => requeue = Some(requeue.map_or(wait, |r: Duration| r.min(wait))),
                    None => {
                        failed_events.push(format!(
                            "Found failed daemon pod {}/{} on node {node}, will try to kill it",
                            key.namespace,
                            pod.name_any()
                        ));
                        delete.push(pod);
                    }
                }
            }
        }
        for (node, pods) in by_node {
            if !placements.contains_key(node) {
                delete.extend(placement::plan_node(None, pods).delete);
            }
        }
        for message in failed_events {
            self.recorder
                .record(ds, EventType::Warning, "FailedDaemonPod", message)
                .await;
        }

        if create.is_empty() && delete.is_empty() && is_rolling_update(ds) {
            let revision = Revision::of(ds);
            let running: BTreeMap<String, Vec<&Pod>> = placements
                .iter()
                .filter(|(_, p)| **p == Placement::Run)
                .map(|(node, _)| (node.clone(), by_node.get(node).cloned().unwrap_or_default()))
                .collect();
            let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
            let now = jiff::Timestamp::now();
            delete = placement::rolling_update(
                &running,
                |p| revision.is_current(p),
                |p| pods::is_available(p, min_ready, now),
                max_unavailable(ds, count(running.len())),
            );
        }

        create.truncate(BURST);
        let deleted = self.delete_pods(ds, key, &delete).await;
        let created = self.create_pods(ds, key, &create).await;
        deleted.and(created)?;
        Ok(requeue)
    }

    /// None if a failed pod on `node` may be replaced now (starting the next back-off), else
    /// how long to wait.
    fn failed_pod_backoff(&self, ds_uid: &str, node: &str) -> Option<Duration> {
        let mut backoffs = self.failed_pod_backoff.lock().expect("back-off lock");
        let now = Instant::now();
        let entry = backoffs.entry((ds_uid.to_string(), node.to_string()));
        match entry {
            std::collections::hash_map::Entry::Occupied(mut occupied) => {
                let (last, delay) = *occupied.get();
                let elapsed = now.duration_since(last);
                if elapsed < delay {
                    return Some(delay - elapsed);
                }
                let next = if elapsed > 2 * MAX_FAILED_POD_BACKOFF {
                    FAILED_POD_BACKOFF
                } else {
                    (delay * 2).min(MAX_FAILED_POD_BACKOFF)
                };
                occupied.insert((now, next));
                None
            }
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert((now, FAILED_POD_BACKOFF));
                None
            }
        }
    }

    /// Creates one daemon pod on each of `nodes`, in batches of 1, 2, 4, … stopping at the
    /// first batch with a failure (Kubernetes' slow start).
    async fn create_pods(
        &self,
        ds: &DaemonSet,
        key: &ObjectKey,
        nodes: &[String],
    ) -> anyhow::Result<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let revision = Revision::of(ds);
        let planned: Vec<(String, &String)> = nodes
            .iter()
            .map(|node| (pods::generated_name(&ds.name_any()), node))
            .collect();
        self.expectations
            .expect_creations(key, planned.iter().map(|(name, _)| name.clone()));
        let reference = pods::controller_reference(ds);
        let mut remaining = planned.as_slice();
        let mut batch_size = 1;
        while !remaining.is_empty() {
            let (batch, rest) = remaining.split_at(batch_size.min(remaining.len()));
            remaining = rest;
            batch_size *= 2;
            let results = join_all(batch.iter().map(|(name, node)| {
                let mut pod = pods::from_template(
                    &ds.spec.template,
                    &key.namespace,
                    name.clone(),
                    reference.clone(),
                );
                let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
                labels.insert(REVISION_HASH.into(), revision.hash.clone());
                labels.insert(TEMPLATE_GENERATION.into(), revision.generation.to_string());
                let spec = pod.spec.get_or_insert_with(Default::default);
                spec.node_name = Some((*node).clone());
                placement::add_daemon_tolerations(spec);
                let api = api.clone();
                async move { (name, node, api.create(&PostParams::default(), &pod).await) }
            }))
            .await;
            let mut failure = None;
            for (name, node, result) in results {
                match result {
                    Ok(_) => {
                        self.recorder
                            .record(
                                ds,
                                EventType::Normal,
                                "SuccessfulCreate",
                                format!("Created pod: {name}"),
                            )
                            .await
                    }
                    Err(error) => {
                        self.expectations.creation_failed(key, name);
                        let message = match &error {
                            kube::Error::Api(status) => status.message.clone(),
                            other => other.to_string(),
                        };
                        self.recorder
                            .record(
                                ds,
                                EventType::Warning,
                                "FailedCreate",
                                format!("Error creating: {message} (node {node})"),
                            )
                            .await;
                        failure = Some(error);
                    }
                }
            }
            if let Some(error) = failure {
                for (name, _) in remaining {
                    self.expectations.creation_failed(key, name);
                }
                return Err(error).context("creating daemon pods");
            }
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        ds: &DaemonSet,
        key: &ObjectKey,
        victims: &[&Pod],
    ) -> anyhow::Result<()> {
        if victims.is_empty() {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
        self.expectations
            .expect_deletions(key, names.iter().cloned());
        let results = join_all(names.iter().map(|name| {
            let api = api.clone();
            async move { (name, api.delete(name, &DeleteParams::background()).await) }
        }))
        .await;
        let mut failure = None;
        for (name, result) in results {
            match result {
                Ok(_) => {
                    self.recorder
                        .record(
                            ds,
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted pod: {name}"),
                        )
                        .await
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    self.expectations.deletion_failed(key, name);
                    failure = Some(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error).context("deleting daemon pods"),
            None => Ok(()),
        }
    }

    async fn write_status(&self, ds: &DaemonSet, status: &Counts) -> anyhow::Result<()> {
        if Counts::stored(ds).as_ref() == Some(status) {
            return Ok(());
        }
        let api: Api<DaemonSet> =
            Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error).context("updating the DaemonSet's status"),
        }
    }
}

/// Which template a daemon pod should have been made from.
struct Revision {
    hash: String,
    generation: i64,
}

impl Revision {
    fn of(ds: &DaemonSet) -> Self {
        let collisions = ds
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        Revision {
            hash: revision::template_hash(&ds.spec.template, collisions),
            generation: ds.metadata.generation.unwrap_or(0),
        }
    }

    /// Made from the current template: its hash matches, or it was made at the current
    /// generation (Kubernetes' `IsPodUpdated`).
    fn is_current(&self, pod: &Pod) -> bool {
        let labels = pod.labels();
        labels.get(REVISION_HASH) == Some(&self.hash)
            || labels.get(TEMPLATE_GENERATION) == Some(&self.generation.to_string())
    }
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// `maxUnavailable` against the number of nodes that run the DaemonSet (a percentage rounds
/// up), at least 1: surging (`maxSurge`) is not implemented, so a rollout always takes a node's
/// pod down before it starts the new one.
fn max_unavailable(ds: &DaemonSet, desired: i32) -> usize {
    let value = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    usize::try_from(rollout::resolve(value, desired, true, "1").max(1)).unwrap_or(1)
}

/// The status counts of a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    current_number_scheduled: i32,
    desired_number_scheduled: i32,
    number_misscheduled: i32,
    number_ready: i32,
    number_available: i32,
    number_unavailable: i32,
    updated_number_scheduled: i32,
    observed_generation: i64,
}

impl Counts {
    fn stored(ds: &DaemonSet) -> Option<Counts> {
        let s = ds.status.as_ref()?;
        Some(Counts {
            current_number_scheduled: s.current_number_scheduled,
            desired_number_scheduled: s.desired_number_scheduled,
            number_misscheduled: s.number_misscheduled,
            number_ready: s.number_ready,
            number_available: s.number_available.unwrap_or(0),
            number_unavailable: s.number_unavailable.unwrap_or(0),
            updated_number_scheduled: s.updated_number_scheduled.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
        })
    }
}

/// The counts Kubernetes reports: nodes that should run the DaemonSet (Run, or Keep with a pod
/// still there) and how their oldest daemon pod fares; nodes holding a pod they should not.
fn status_of(
    ds: &DaemonSet,
    placements: &BTreeMap<String, Placement>,
    by_node: &BTreeMap<String, Vec<&Pod>>,
    revision: &Revision,
) -> Counts {
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let mut counts = Counts {
        observed_generation: ds.metadata.generation.unwrap_or(0),
        ..Default::default()
    };
    for (node, placement) in placements {
        let mut pods = by_node.get(node).cloned().unwrap_or_default();
        pods.sort_by_key(|p| placement::oldest_first(p));
        match (placement, pods.first()) {
            (Placement::Evict, Some(_)) => counts.number_misscheduled += 1,
            (Placement::Evict | Placement::Keep, None) => {}
            (Placement::Run, None) => counts.desired_number_scheduled += 1,
            (Placement::Run | Placement::Keep, Some(pod)) => {
                counts.desired_number_scheduled += 1;
                counts.current_number_scheduled += 1;
                if pods::is_ready(pod) {
                    counts.number_ready += 1;
                }
                if pods::is_available(pod, min_ready, now) {
                    counts.number_available += 1;
                }
                if revision.is_current(pod) {
                    counts.updated_number_scheduled += 1;
                }
            }
        }
    }
    counts.number_unavailable = counts.desired_number_scheduled - counts.number_available;
    counts
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What of a node decides its placement: a change to anything else (heartbeats, images,
/// capacity) concerns no DaemonSet.
fn placement_inputs(node: &Node) -> impl PartialEq + use<> {
    (
        node.metadata.labels.clone(),
        node.metadata.deletion_timestamp.clone(),
        node.spec.as_ref().and_then(|s| s.taints.clone()),
        placement::is_ready(node),
    )
}

/// The DaemonSets a pod change concerns: its controller if that is a DaemonSet, or, for an
/// orphan, every DaemonSet whose selector matches it (one of them may adopt it).
fn daemon_sets_of_pod(daemon_sets: &Informer<DaemonSet>, pod: &Pod) -> Vec<ObjectKey> {
    let namespace = pod.namespace().unwrap_or_default();
    match pods::controller_of(pod) {
        Some(reference) if reference.kind == "DaemonSet" => {
            vec![ObjectKey::new(namespace, reference.name.clone())]
        }
        Some(_) => Vec::new(),
        None => daemon_sets
            .store()
            .state()
            .iter()
            .filter(|ds| {
                ds.namespace().as_deref() == Some(namespace.as_str())
                    && pods::selector_matches(&ds.spec.selector, pod.labels())
            })
            .map(|ds| ObjectKey::of(ds.as_ref()))
            .collect(),
    }
}
