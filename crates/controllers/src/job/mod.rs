//! The Job controller (batch/v1): runs pods to completion (`completions`, `parallelism`),
//! retries failures with back-off up to `backoffLimit`, stops at `activeDeadlineSeconds`,
//! suspends and resumes, and reports counts and conditions as Kubernetes 1.31+ does
//! (SuccessCriteriaMet before Complete, FailureTarget before Failed, the terminal condition
//! only once no pod of the Job is still running or terminating).
//!
//! Counts come from the Job's pods and never go below what the status already says, so pods
//! removed after they finished stay counted. Pods are never deleted once they finished: people
//! read their logs. A finished Job costs nothing to reconcile.

pub mod policy;

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
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use policy::{Failure, Observed};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COMPONENT: &str = "job-controller";
/// Most pods one reconcile creates or deletes (Kubernetes' `burstReplicas`).
const BURST: usize = 500;
/// `spec.managedBy` of Jobs this controller runs; Jobs naming another manager are left alone.
const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// How soon to look again when the cache has not caught up with our own writes and no event
/// arrives to say so (the expectations lapse after a minute).
const RECHECK: Duration = Duration::from_secs(1);

pub struct JobController {
    client: Client,
    jobs: Arc<Informer<Job>>,
    pods: Arc<Informer<Pod>>,
    expectations: Expectations,
    /// The resourceVersion of each Job's last status write, until the cache shows it: a Job
    /// read from a cache that trails our own write would undo decisions already made.
    unseen_writes: Mutex<HashMap<ObjectKey, u64>>,
    recorder: Recorder,
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl JobController {
    pub fn new(client: Client, jobs: Arc<Informer<Job>>, pods: Arc<Informer<Pod>>) -> Arc<Self> {
        let queue = WorkQueue::new();
        jobs.enqueue_changes(&queue);
        pods.enqueue_related(&queue, {
            let jobs = jobs.clone();
            move |object| jobs_of_pod(&jobs, object)
        });
        let recorder = Recorder::new(client.clone(), COMPONENT, None);
        Arc::new(JobController {
            client,
            jobs,
            pods,
            expectations: Expectations::default(),
            unseen_writes: Mutex::new(HashMap::new()),
            recorder,
            queue,
        })
    }

    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.queue
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.jobs.synced().await;
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
        let Some(job) = self.jobs.get(Some(&key.namespace), &key.name) else {
            self.expectations.forget(key);
            self.unseen_writes.lock().expect("lock").remove(key);
            return Ok(Action::AwaitChange);
        };
        if !self.cache_shows_our_writes(key, &job) {
            // The watch event of our write requeues the Job.
            return Ok(Action::AwaitChange);
        }
        let spec = job.spec.as_ref();
        let managed_elsewhere = spec
            .and_then(|s| s.managed_by.as_deref())
            .is_some_and(|m| m != MANAGED_BY);
        // A finished Job is final, and a Job being deleted is the garbage collector's.
        if is_finished(&job) || managed_elsewhere || job.metadata.deletion_timestamp.is_some() {
            self.expectations.forget(key);
            return Ok(Action::AwaitChange);
        }
        // The API server gives every Job a selector; without one the Job would release its
        // own pods, so it waits to be fixed.
        let Some(selector) = spec.and_then(|s| s.selector.clone()) else {
            tracing::warn!(job = %key, "the Job has no selector; leaving it alone");
            return Ok(Action::AwaitChange);
        };
        let pods = claim::claim_pods(
            &self.client,
            &self.pods,
            job.as_ref(),
            |labels| pods::selector_matches(&selector, labels),
            |_| true,
        )
        .await?;

        let uid = job.uid().unwrap_or_default();
        let pods_cache = &self.pods;
        let caught_up = self.expectations.satisfied(key, |name| {
            match pods_cache.get(Some(&key.namespace), name) {
                None => Seen::Absent,
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => Seen::Terminating,
                Some(pod) if !pods::is_controlled_by(pod.as_ref(), &uid) => Seen::Absent,
                Some(_) => Seen::Present,
            }
        });
        if !caught_up {
            // The pod events that bring the cache up to date requeue the Job sooner.
            return Ok(Action::RequeueAfter(RECHECK));
        }
        let pods: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        Sync::new(self, key, &job, &pods).run().await
    }

    fn cache_shows_our_writes(&self, key: &ObjectKey, job: &Job) -> bool {
        let mut unseen = self.unseen_writes.lock().expect("lock");
        let Some(written) = unseen.get(key) else {
            return true;
        };
        let cached = job
            .resource_version()
            .and_then(|rv| rv.parse::<u64>().ok())
            .unwrap_or(0);
        if cached < *written {
            return false;
        }
        unseen.remove(key);
        true
    }

    fn wrote(&self, key: &ObjectKey, job: &Job) {
        if let Some(rv) = job.resource_version().and_then(|rv| rv.parse().ok()) {
            self.unseen_writes
                .lock()
                .expect("lock")
                .insert(key.clone(), rv);
        }
    }

    /// Creates `count` pods (in slow-start batches); returns how many were created.
    async fn create_pods(&self, job: &Job, key: &ObjectKey, count: usize) -> anyhow::Result<i32> {
        let spec = job.spec.as_ref().context("the Job has no spec")?;
        let created = pod_control::create_from_template(
            &self.client,
            &self.recorder,
            &self.expectations,
            job,
            key,
            &spec.template,
            count,
        )
        .await?;
        Ok(i32::try_from(created).unwrap_or(i32::MAX))
    }

    /// Deletes `victims`, returning the names of those that are gone or going.
    async fn delete_pods(
        &self,
        job: &Job,
        key: &ObjectKey,
        victims: &[&Pod],
    ) -> anyhow::Result<HashSet<String>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
        self.expectations
            .expect_deletions(key, names.iter().cloned());
        let results = join_all(names.iter().map(|name| {
            let api = api.clone();
            async move { (name, api.delete(name, &DeleteParams::background()).await) }
        }))
        .await;
        let mut deleted = HashSet::new();
        let mut failure = None;
        for (name, result) in results {
            match result {
                Ok(_) => {
                    deleted.insert(name.clone());
                    self.recorder
                        .record(
                            job,
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted pod: {name}"),
                        )
                        .await
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    deleted.insert(name.clone());
                }
                Err(error) => {
                    self.expectations.deletion_failed(key, name);
                    failure = Some(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error).context("deleting pods"),
            None => Ok(deleted),
        }
    }
}

/// How a Job is finishing once its FailureTarget or SuccessCriteriaMet condition is set.
enum Finishing {
    Failed { reason: String, message: String },
    Succeeded,
}

/// One reconcile of one unfinished Job.
struct Sync<'a> {
    controller: &'a JobController,
    key: &'a ObjectKey,
    job: &'a Job,
    spec: policy::Spec,
    suspended: bool,
    /// The Job's pods that are neither finished nor being deleted.
    active: Vec<&'a Pod>,
    observed: Observed,
    /// Pods deleted by this reconcile.
    deleted: HashSet<String>,
    failures_since_success: u32,
    last_failure: Option<jiff::Timestamp>,
    status: JobStatus,
    conditions: Vec<JobCondition>,
    /// Events to record once the status that explains them is written.
    events: Vec<(EventType, &'static str, String)>,
    now: jiff::Timestamp,
}

impl<'a> Sync<'a> {
    fn new(
        controller: &'a JobController,
        key: &'a ObjectKey,
        job: &'a Job,
        pods: &[&'a Pod],
    ) -> Self {
        let spec = job.spec.as_ref();
        let template_spec = spec.and_then(|s| s.template.spec.as_ref());
        let view = policy::Spec {
            parallelism: spec.and_then(|s| s.parallelism).unwrap_or(1),
            completions: spec.and_then(|s| s.completions),
            backoff_limit: spec.and_then(|s| s.backoff_limit).unwrap_or(6),
            restarts_count_as_failures: template_spec.and_then(|s| s.restart_policy.as_deref())
                == Some("OnFailure"),
            active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
            replace_only_failed: spec.and_then(|s| s.pod_replacement_policy.as_deref())
                == Some("Failed"),
        };
        let status = job.status.clone().unwrap_or_default();
        let active: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| pods::is_active(p))
            .collect();
        let in_phase = |phase: &str| count(pods.iter().filter(|p| pods::phase(p) == phase).count());
        let observed = Observed {
            active: count_of(&active),
            terminating: count(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_some() && !pods::is_finished(p))
                    .count(),
            ),
            succeeded: in_phase("Succeeded").max(status.succeeded.unwrap_or(0)),
            failed: in_phase("Failed").max(status.failed.unwrap_or(0)),
            restarts: active.iter().map(|p| restarts(p)).sum(),
        };
        let (failures_since_success, last_failure) = failures_since_success(pods);
        Sync {
            controller,
            key,
            job,
            spec: view,
            suspended: spec.and_then(|s| s.suspend) == Some(true),
            active,
            observed,
            deleted: HashSet::new(),
            failures_since_success,
            last_failure,
            conditions: status.conditions.clone().unwrap_or_default(),
            status,
            events: Vec::new(),
            now: jiff::Timestamp::now(),
        }
    }

    async fn run(mut self) -> anyhow::Result<Action> {
        let resumed = !self.suspended && condition_is_true(&self.conditions, "Suspended");
        if resumed || (self.status.start_time.is_none() && !self.suspended) {
            // A resumed Job starts again: activeDeadlineSeconds counts continuous activity.
            self.status.start_time = Some(Time(self.now));
        }
        let mut requeue = None;
        let (finishing, decided_now) = self.finishing();
        if decided_now {
            // Record the verdict before acting on it: a later reconcile may no longer see
            // its cause (the restarts of a pod since deleted, say) and would undo it.
            let written = self.write_status().await?;
            return Ok(if written {
                Action::AwaitChange
            } else {
                Action::RequeueAfter(RECHECK)
            });
        }
        if finishing.is_none() {
            requeue = self.deadline_remaining();
        }
        match finishing {
            Some(finishing) => self.finish(finishing).await?,
            None if self.suspended => self.suspend().await?,
            None => {
                if resumed {
                    self.ensure_condition("Suspended", "False", "JobResumed", "Job resumed");
                    self.events
                        .push((EventType::Normal, "Resumed", "Job resumed".into()));
                }
                requeue = min_some(requeue, self.manage().await?);
            }
        }
        let written = self.write_status().await?;
        Ok(match (written, requeue) {
            (false, _) => Action::RequeueAfter(RECHECK),
            (true, Some(delay)) => Action::RequeueAfter(delay),
            (true, None) => Action::AwaitChange,
        })
    }

    /// The terminal state the Job is heading for, and whether it was decided just now (its
    /// FailureTarget or SuccessCriteriaMet condition set).
    fn finishing(&mut self) -> (Option<Finishing>, bool) {
        if let Some(target) = true_condition(&self.conditions, "FailureTarget") {
            let failing = Finishing::Failed {
                reason: target.reason.clone().unwrap_or_default(),
                message: target.message.clone().unwrap_or_default(),
            };
            return (Some(failing), false);
        }
        if condition_is_true(&self.conditions, "SuccessCriteriaMet") {
            return (Some(Finishing::Succeeded), false);
        }
        if let Some(failure) = policy::failure(&self.spec, &self.observed, self.active_for()) {
            self.ensure_condition("FailureTarget", "True", failure.reason(), failure.message());
            let failing = Finishing::Failed {
                reason: failure.reason().into(),
                message: failure.message().into(),
            };
            return (Some(failing), true);
        }
        if policy::succeeded(&self.spec, &self.observed) {
            self.ensure_condition(
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            return (Some(Finishing::Succeeded), true);
        }
        (None, false)
    }

    /// How long the Job has been active (None while suspended or before it started).
    fn active_for(&self) -> Option<Duration> {
        if self.suspended {
            return None;
        }
        let start = self.status.start_time.as_ref()?.0;
        Some(Duration::try_from(self.now.duration_since(start)).unwrap_or(Duration::ZERO))
    }

    /// When to look again for the active deadline.
    fn deadline_remaining(&self) -> Option<Duration> {
        let deadline = self.spec.active_deadline_seconds?;
        let deadline = Duration::from_secs(u64::try_from(deadline).unwrap_or(0));
        Some(deadline.saturating_sub(self.active_for()?))
    }

    /// Stops what still runs; once nothing runs or terminates, sets the terminal condition.
    async fn finish(&mut self, finishing: Finishing) -> anyhow::Result<()> {
        let active = std::mem::take(&mut self.active);
        self.delete(&active).await?;
        if let Finishing::Failed { .. } = finishing {
            // Pods stopped because the Job failed count as failed, as in Kubernetes.
            self.observed.failed += count(self.deleted.len());
        }
        if self.observed.active > 0 || self.observed.terminating > 0 {
            return Ok(());
        }
        match finishing {
            Finishing::Failed { reason, message } => {
                self.ensure_condition("Failed", "True", &reason, &message);
                let reason = Failure::from_reason(&reason).map_or("Failed", Failure::reason);
                self.events.push((EventType::Warning, reason, message));
            }
            Finishing::Succeeded => {
                self.ensure_condition(
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                self.status.completion_time = Some(Time(self.now));
                self.events
                    .push((EventType::Normal, "Completed", "Job completed".into()));
            }
        }
        Ok(())
    }

    async fn suspend(&mut self) -> anyhow::Result<()> {
        let active = std::mem::take(&mut self.active);
        self.delete(&active).await?;
        if self.ensure_condition("Suspended", "True", "JobSuspended", "Job suspended") {
            self.events
                .push((EventType::Normal, "Suspended", "Job suspended".into()));
        }
        Ok(())
    }

    /// Starts or stops pods to have as many active as the Job wants; returns when to look
    /// again if a failure back-off holds creation back.
    async fn manage(&mut self) -> anyhow::Result<Option<Duration>> {
        let change = policy::pods_to_start(&self.spec, &self.observed);
        if change < 0 {
            let mut ranked = self.active.clone();
            ranked.sort_by_key(|p| pods::deletion_rank(p));
            let surplus = usize::try_from(-change).unwrap_or(0).min(BURST);
            self.delete(&ranked[..surplus.min(ranked.len())]).await?;
            return Ok(None);
        }
        if change == 0 {
            return Ok(None);
        }
        let since_last_failure = self.last_failure.map_or(Duration::MAX, |at| {
            Duration::try_from(self.now.duration_since(at)).unwrap_or(Duration::ZERO)
        });
        let wait = policy::backoff_remaining(self.failures_since_success, since_last_failure);
        if !wait.is_zero() {
            return Ok(Some(wait));
        }
        let wanted = usize::try_from(change).unwrap_or(0).min(BURST);
        let created = self
            .controller
            .create_pods(self.job, self.key, wanted)
            .await?;
        self.observed.active += created;
        Ok(None)
    }

    async fn delete(&mut self, victims: &[&Pod]) -> anyhow::Result<()> {
        if victims.is_empty() {
            return Ok(());
        }
        let deleted = self
            .controller
            .delete_pods(self.job, self.key, victims)
            .await?;
        let n = count(deleted.len());
        self.observed.active -= n;
        self.observed.terminating += n;
        self.deleted.extend(deleted);
        Ok(())
    }

    /// Sets a condition's status, reason and message, moving its times when its status
    /// changes; a False condition that does not exist is not added. Returns whether it changed.
    fn ensure_condition(&mut self, type_: &str, status: &str, reason: &str, message: &str) -> bool {
        let now = Time(self.now);
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(condition) if condition.status == status => false,
            Some(condition) => {
                condition.status = status.into();
                condition.reason = Some(reason.into());
                condition.message = Some(message.into());
                condition.last_probe_time = Some(now.clone());
                condition.last_transition_time = Some(now);
                true
            }
            None if status == "False" => false,
            None => {
                self.conditions.push(JobCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_probe_time: Some(now.clone()),
                    last_transition_time: Some(now),
                });
                true
            }
        }
    }

    /// Writes the status if it changed, then records the events it explains. Returns false
    /// when the Job changed meanwhile (the cache was stale), so nothing was written.
    async fn write_status(mut self) -> anyhow::Result<bool> {
        let ready = self
            .active
            .iter()
            .filter(|p| !self.deleted.contains(&p.name_any()) && pods::is_ready(p))
            .count();
        let nonzero = |n: i32| (n > 0).then_some(n);
        let previous = self.job.status.clone().unwrap_or_default();
        let status = JobStatus {
            active: nonzero(self.observed.active),
            ready: Some(count(ready)),
            terminating: Some(self.observed.terminating),
            succeeded: nonzero(self.observed.succeeded),
            failed: nonzero(self.observed.failed),
            conditions: (!self.conditions.is_empty()).then(|| std::mem::take(&mut self.conditions)),
            ..self.status
        };
        if status != previous {
            // Merge patch: counts that dropped to zero are removed, as Kubernetes omits them.
            let mut body = serde_json::to_value(&status)?;
            for field in ["active", "succeeded", "failed"] {
                body.as_object_mut()
                    .expect("a status is an object")
                    .entry(field)
                    .or_insert(serde_json::Value::Null);
            }
            // The resourceVersion makes a stale cache fail rather than overwrite newer
            // conditions, counts or startTime.
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": self.job.resource_version()},
                "status": body,
            });
            let api: Api<Job> =
                Api::namespaced(self.controller.client.clone(), &self.key.namespace);
            match api
                .patch_status(
                    &self.job.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(written) => self.controller.wrote(self.key, &written),
                Err(kube::Error::Api(status)) if status.code == 409 => return Ok(false),
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(true),
                Err(error) => return Err(error).context("updating the Job's status"),
            }
        }
        for (kind, reason, message) in self.events {
            self.controller
                .recorder
                .record(self.job, kind, reason, message)
                .await;
        }
        Ok(true)
    }
}

/// Complete or Failed: nothing more will happen to the Job.
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

fn true_condition<'c>(conditions: &'c [JobCondition], type_: &str) -> Option<&'c JobCondition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn condition_is_true(conditions: &[JobCondition], type_: &str) -> bool {
    true_condition(conditions, type_).is_some()
}

/// Container restarts of a pod, init containers included.
fn restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// When a pod finished: its last container's finish, else its last condition change, else
/// its creation (Kubernetes' `getFinishedTime`).
fn finished_at(pod: &Pod) -> jiff::Timestamp {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    let conditions = || {
        status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
            .max()
    };
    containers
        .or_else(conditions)
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Failed pods that finished after the last success, and when the last of them finished:
/// what the retry back-off grows with.
fn failures_since_success(pods: &[&Pod]) -> (u32, Option<jiff::Timestamp>) {
    let last_success = pods
        .iter()
        .filter(|p| pods::phase(p) == "Succeeded")
        .map(|p| finished_at(p))
        .max();
    let failures: Vec<jiff::Timestamp> = pods
        .iter()
        .filter(|p| pods::phase(p) == "Failed")
        .map(|p| finished_at(p))
        .filter(|at| last_success.is_none_or(|success| *at > success))
        .collect();
    (
        u32::try_from(failures.len()).unwrap_or(u32::MAX),
        failures.into_iter().max(),
    )
}

fn min_some(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn count_of<T>(items: &[T]) -> i32 {
    count(items.len())
}

/// The Jobs a pod change concerns: its controller if that is a Job, or, for an orphan, every
/// Job whose selector matches it (one of them may adopt it).
fn jobs_of_pod(jobs: &Informer<Job>, pod: &Pod) -> Vec<ObjectKey> {
    let namespace = pod.namespace().unwrap_or_default();
    match pods::controller_of(pod) {
        Some(reference) if reference.kind == "Job" => {
            vec![ObjectKey::new(namespace, reference.name.clone())]
        }
        Some(_) => Vec::new(),
        None => jobs
            .store()
            .state()
            .iter()
            .filter(|j| {
                j.namespace().as_deref() == Some(namespace.as_str())
                    && j.spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .is_some_and(|s| pods::selector_matches(s, pod.labels()))
            })
            .map(|j| ObjectKey::of(j.as_ref()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn finished(phase: &str, at: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            finished_at: Some(Time(jiff::Timestamp::from_second(at).unwrap())),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_back_off_counts_failures_since_the_last_success() {
        let early_failure = finished("Failed", 100);
        let success = finished("Succeeded", 200);
        let late_failure = finished("Failed", 300);
        let later_failure = finished("Failed", 400);
        assert_eq!(failures_since_success(&[]), (0, None));
        assert_eq!(
            failures_since_success(&[&early_failure, &success]),
            (0, None)
        );
        assert_eq!(
            failures_since_success(&[&early_failure, &success, &late_failure, &later_failure]),
            (2, Some(jiff::Timestamp::from_second(400).unwrap()))
        );
        assert_eq!(failures_since_success(&[&early_failure]).0, 1);
    }
}
