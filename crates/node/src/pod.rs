//! One supervisor per pod. It sets up the pod's volumes, runs its `initContainers` one after
//! another, each to successful completion, and then starts all of its containers together.
//! Every container runs its own loop — pull the module (with `ErrImagePull`/`ImagePullBackOff`
//! back-off), run it, record how it ended, restart it as `restartPolicy` says (with
//! `CrashLoopBackOff` back-off) — while a reporter publishes the pod's status whenever it
//! changes, coalescing bursts into one write. A pod with `activeDeadlineSeconds` is stopped as
//! a whole once that much time has passed since its start, and marked `Failed` with reason
//! `DeadlineExceeded`, as the kubelet does.

pub(crate) mod env;
mod probes;

use crate::images::Resolver;
use crate::logs::LogStore;
use crate::runtime::{ExitOutcome, OutboundPolicy, PreparedModule, RunSpec, Runtime};
use crate::volumes::{self, PodVolumes};
use flotilla_client::events::{EventType, Recorder};
use futures::future::Either;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Everything a pod worker needs from its node.
#[derive(Clone)]
pub struct PodContext {
    pub client: Client,
    pub runtime: Runtime,
    pub images: Resolver,
    pub logs: LogStore,
    pub recorder: Recorder,
    pub backoff: BackoffPolicy,
    /// Where pods' volumes are set up (`volumes/<pod uid>/<volume>`).
    pub volumes_root: std::path::PathBuf,
    /// The running containers' CPU and memory counters, for `/stats/summary`.
    pub stats: crate::stats::Stats,
    /// Where running HTTP containers are registered to serve requests.
    pub http_pods: crate::serving::HttpPods,
    /// The gateway (`host:port`) that guests' requests to Services go to, if there is one.
    pub gateway: Option<String>,
    /// The cluster's Services, for the `{NAME}_SERVICE_HOST` variables containers get.
    pub services: kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Service>,
}

/// A running pod supervisor.
pub struct Worker {
    task: tokio::task::JoinHandle<()>,
    /// When the pod was asked to terminate, the end of its grace period.
    termination: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
    /// Wakes the pod's status reporter.
    changed: Arc<Notify>,
}

impl Worker {
    pub fn start(context: PodContext, pod: Pod) -> Worker {
        Worker::spawn(context, pod, false)
    }

    /// Starts a static pod's worker, which keeps answering [`Worker::republish`] after the
    /// pod has finished, until it is stopped: its mirror may be created (again) later.
    pub fn start_static(context: PodContext, pod: Pod) -> Worker {
        Worker::spawn(context, pod, true)
    }

    fn spawn(context: PodContext, pod: Pod, keep_reporting: bool) -> Worker {
        let (termination, terminating) = tokio::sync::watch::channel(None);
        let changed = Arc::new(Notify::new());
        Worker {
            task: tokio::spawn(run_pod(
                context,
                Arc::new(pod),
                terminating,
                changed.clone(),
                keep_reporting,
            )),
            termination,
            changed,
        }
    }

    /// Writes the pod's status again, although it has not changed: a static pod's mirror,
    /// created (or created again) after the last write, has none yet.
    pub fn republish(&self) {
        self.changed.notify_one();
    }

    /// Stops the pod gracefully: each running container with a `preStop` hook has the hook
    /// called and then `grace` to end by itself; containers without one, and any still
    /// running when `grace` is up, are stopped at once. Nothing is restarted meanwhile.
    ///
    /// A Wasm guest cannot be sent SIGTERM, so without a hook it would never learn that it
    /// is being stopped, and waiting out the grace period would only delay the deletion.
    pub async fn terminate(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.termination.send_replace(Some(deadline));
        // A moment past the deadline, for the containers to record how they ended.
        let settle = deadline + Duration::from_millis(100);
        if tokio::time::timeout_at(settle, &mut self.task)
            .await
            .is_err()
        {
            self.stop().await;
        }
    }

    /// Whether any of the pod's containers still runs or will run again.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops every container of the pod (dropping a guest's future stops it at its next
    /// epoch tick) and waits until they are gone.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Whether a pod has run to completion and will not run again.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// How restarts (and retried pulls) back off: the kubelet's 10 s doubling to 5 min by
/// default; tests and impatient clusters set shorter ones (`--restart-backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

/// Exponential back-off as the kubelet does it: doubling from the policy's initial delay to
/// its maximum, reset after a run that lasted 10 min.
struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
}

impl Backoff {
    const RESET_AFTER: Duration = Duration::from_secs(600);

    fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            next: policy.initial,
        }
    }

    fn after_run(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::RESET_AFTER {
            self.next = self.policy.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.policy.max);
        delay
    }
}

/// The status of one container as the reporter renders it.
#[derive(Clone)]
struct ContainerRecord {
    name: String,
    /// One of the pod's `initContainers`, which run one by one before the others start.
    init: bool,
    image: String,
    image_id: String,
    state: ContainerState,
    last_state: Option<ContainerState>,
    restart_count: i32,
    started_once: bool,
    /// The current run has passed its startup probe, or has none.
    started: bool,
    /// What the readiness probe last decided, for a container that has one.
    probed_ready: Option<bool>,
    /// Terminated and will not run again.
    done: bool,
}

/// Retry delays of a status write the apiserver did not take: doubling up to a ceiling.
const STATUS_RETRY_FIRST: Duration = Duration::from_millis(200);
const STATUS_RETRY_MAX: Duration = Duration::from_secs(10);

struct PodState {
    /// The init containers, in order, then the containers.
    containers: Vec<ContainerRecord>,
    /// Every init container has completed successfully (the `Initialized` condition).
    initialized: bool,
    start_time: Time,
    /// When each condition last changed status (type → (status, since)): a condition's
    /// lastTransitionTime must not move while its status holds, or `minReadySeconds` (ready for
    /// a while) could never be met.
    condition_since: std::collections::HashMap<&'static str, (bool, Time)>,
    /// Why the whole pod failed, when the node ended it (`reason`, `message`), as the
    /// kubelet's `DeadlineExceeded`.
    failure: Option<(&'static str, String)>,
}

/// State shared by a pod's container loops and its reporter.
struct Shared {
    pod: Arc<Pod>,
    /// Set to the end of the grace period when the pod is being deleted.
    termination: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
    api: Api<Pod>,
    state: Mutex<PodState>,
    changed: Arc<Notify>,
    /// Held for each status write, rendering included, so writes land in the order they were
    /// rendered: the reporter's write of an older state can never land after the last one.
    writing: tokio::sync::Mutex<()>,
    context: PodContext,
}

impl Shared {
    /// Waits until the pod is asked to terminate, and returns the end of its grace period.
    async fn terminating(&self) -> tokio::time::Instant {
        let mut termination = self.termination.clone();
        let deadline = termination
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|deadline| *deadline);
        match deadline {
            Some(deadline) => deadline,
            // The worker is gone without terminating: the task is being aborted anyway.
            None => std::future::pending().await,
        }
    }

    fn is_terminating(&self) -> bool {
        self.termination.borrow().is_some()
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut ContainerRecord)) {
        change(&mut self.state.lock().expect("pod state poisoned").containers[index]);
        self.changed.notify_one();
    }

    fn update_all(&self, mut change: impl FnMut(&mut ContainerRecord)) {
        for record in &mut self.state.lock().expect("pod state poisoned").containers {
            change(record);
        }
        self.changed.notify_one();
    }

    fn render(&self) -> serde_json::Value {
        let mut state = self.state.lock().expect("pod state poisoned");
        let (init, main): (Vec<&ContainerRecord>, Vec<&ContainerRecord>) =
            state.containers.iter().partition(|c| c.init);
        let succeeded = |c: &&ContainerRecord| exit_code(&c.state) == Some(0);
        // An init container that failed and will not run again fails the pod.
        let init_failed = init.iter().any(|c| c.done && !succeeded(c));
        let phase = if state.failure.is_some() || init_failed {
            "Failed"
        } else if !state.initialized {
            "Pending"
        } else if main.iter().all(|c| c.done) {
            if main.iter().all(succeeded) {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if main.iter().any(|c| c.started_once) {
            "Running"
        } else {
            "Pending"
        };
        let status_of = |c: &ContainerRecord| {
            // A running container is ready once started and, with a readiness probe, once
            // that passes; an init container counts as ready once it has completed.
            let running = c.state.running.is_some() && c.started;
            let ready =
                (running && c.probed_ready.unwrap_or(true)) || (c.init && c.done && succeeded(&c));
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone(),
                image_id: c.image_id.clone(),
                ready,
                started: Some(running),
                restart_count: c.restart_count,
                state: Some(c.state.clone()),
                last_state: c.last_state.clone(),
                container_id: Some(format!(
                    "wasmtime://{}/{}",
                    self.pod.uid().unwrap_or_default(),
                    c.name
                )),
                ..Default::default()
            }
        };
        let init_statuses: Vec<ContainerStatus> = init.iter().map(|c| status_of(c)).collect();
        let statuses: Vec<ContainerStatus> = main.iter().map(|c| status_of(c)).collect();
        let initialized = state.initialized;
        let ready = initialized && statuses.iter().all(|s| s.ready);
        let now = Time(jiff::Timestamp::now());
        let mut condition = |type_: &'static str, ok: bool| {
            let since = match state.condition_since.get(type_) {
                Some((status, since)) if *status == ok => since.clone(),
                _ => {
                    state.condition_since.insert(type_, (ok, now.clone()));
                    now.clone()
                }
            };
            PodCondition {
                type_: type_.into(),
                status: if ok { "True" } else { "False" }.into(),
                last_transition_time: Some(since),
                ..Default::default()
            }
        };
        let conditions = vec![
            condition("PodScheduled", true),
            condition("Initialized", initialized),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ];
        let (reason, message) = match &state.failure {
            Some((reason, message)) => (Some(*reason), Some(message.clone())),
            None => (None, None),
        };
        let mut status = serde_json::json!({
            "phase": phase,
            "reason": reason,
            "message": message,
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": "127.0.0.1",
            // A Wasm pod has no network namespace of its own: like a `hostNetwork` pod it
            // shares its node's address, and Services tell pods apart by `targetRef`.
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": state.start_time,
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = serde_json::json!(init_statuses);
        }
        serde_json::json!({ "status": status })
    }

    /// Writes the current status; false if the apiserver could not take it. A pod deleted
    /// meanwhile is not an error.
    async fn publish(&self) -> bool {
        let _turn = self.writing.lock().await;
        let patch = self.render();
        match self
            .api
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                tracing::warn!(pod = %self.pod.name_any(), %error, "could not report pod status; retrying");
                false
            }
        }
    }

    /// Writes the current status until the apiserver takes it, as the kubelet's status
    /// manager does: a status lost while the apiserver restarts would otherwise stay stale
    /// (a Running pod shown Pending) until the pod's next change, which may never come.
    async fn publish_until_written(&self) {
        let mut delay = STATUS_RETRY_FIRST;
        while !self.publish().await {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                // A newer state is rendered by the next attempt anyway.
                _ = self.changed.notified() => {}
            }
            delay = (delay * 2).min(STATUS_RETRY_MAX);
        }
    }

    /// Records an event without waiting for its write: events are for people, and a pod's
    /// start (a Function's cold start among them) should not wait on them, as the kubelet's
    /// recorder does not.
    fn event(&self, kind: EventType, reason: &str, message: String) {
        let recorder = self.context.recorder.clone();
        let pod = self.pod.clone();
        let reason = reason.to_string();
        tokio::spawn(async move { recorder.record(&*pod, kind, &reason, message).await });
    }
}

impl Shared {
    /// Marks the pod `Failed` with reason `DeadlineExceeded` once its containers are stopped.
    async fn deadline_exceeded(&self, seconds: i64) {
        let message = "Pod was active on the node longer than the specified deadline";
        {
            let mut state = self.state.lock().expect("pod state poisoned");
            let now = Time(jiff::Timestamp::now());
            for c in state.containers.iter_mut().filter(|c| !c.done) {
                let started_at = c.state.running.as_ref().and_then(|r| r.started_at.clone());
                c.state = ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        // What a container killed by SIGKILL reports.
                        exit_code: 137,
                        reason: Some("DeadlineExceeded".into()),
                        message: Some(format!(
                            "stopped: the pod's activeDeadlineSeconds ({seconds}s) passed"
                        )),
                        started_at,
                        finished_at: Some(now.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                c.done = true;
            }
            state.failure = Some(("DeadlineExceeded", message.into()));
        }
        self.changed.notify_one();
        self.event(EventType::Warning, "DeadlineExceeded", message.into());
    }
}

/// The pod's `activeDeadlineSeconds` and how much of it is left, counted from its start time.
fn active_deadline(pod: &Pod, start_time: &Time) -> Option<(i64, Duration)> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    // A start time in the future (clock skew) counts as just started.
    let elapsed =
        Duration::try_from(jiff::Timestamp::now().duration_since(start_time.0)).unwrap_or_default();
    let total = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    Some((seconds, total.saturating_sub(elapsed)))
}

fn exit_code(state: &ContainerState) -> Option<i32> {
    state.terminated.as_ref().map(|t| t.exit_code)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn waiting(reason: &str, message: impl Into<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message.into()),
        }),
        ..Default::default()
    }
}

async fn run_pod(
    context: PodContext,
    pod: Arc<Pod>,
    termination: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
    changed: Arc<Notify>,
    keep_reporting: bool,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let init_containers = spec.init_containers.unwrap_or_default();
    let containers = spec.containers;
    // Containers wait for the init containers as `PodInitializing`, as in Kubernetes.
    let initializing = !init_containers.is_empty();
    let record = |c: &Container, init: bool| ContainerRecord {
        name: c.name.clone(),
        init,
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        state: if initializing && !init {
            waiting(
                "PodInitializing",
                "waiting for the init containers to complete",
            )
        } else {
            waiting("ContainerCreating", "loading the Wasm module")
        },
        last_state: None,
        restart_count: 0,
        started_once: false,
        started: false,
        probed_ready: None,
        done: false,
    };
    let records = init_containers
        .iter()
        .map(|c| record(c, true))
        .chain(containers.iter().map(|c| record(c, false)))
        .collect();
    let api = Api::namespaced(context.client.clone(), &pod.namespace().unwrap_or_default());
    // A pod picked up again by a restarted agent keeps its start time, and so its deadline.
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    let deadline = active_deadline(&pod, &start_time);
    let shared = Arc::new(Shared {
        pod,
        termination,
        api,
        state: Mutex::new(PodState {
            containers: records,
            initialized: init_containers.is_empty(),
            start_time,
            condition_since: Default::default(),
            failure: None,
        }),
        changed,
        writing: tokio::sync::Mutex::new(()),
        context,
    });
    let reporter = shared.clone();
    let reporting = tokio::spawn(async move {
        loop {
            reporter.changed.notified().await;
            reporter.publish_until_written().await;
        }
    });
    let _reporting = ReporterGuard(reporting);
    shared.changed.notify_one();
    let mut tasks = JoinSet::new();
    let work = run_containers(&shared, init_containers, containers, &mut tasks);
    match deadline {
        None => work.await,
        Some((seconds, remaining)) => {
            if tokio::time::timeout(remaining, work).await.is_err() {
                // As the kubelet does: the whole pod is killed and marked, never restarted.
                tasks.shutdown().await;
                shared.deadline_exceeded(seconds).await;
            }
        }
    }
    // The last state must be written even if the reporter is mid-write of an older one.
    shared.publish_until_written().await;
    if keep_reporting {
        // The reporter stays to write the final status again when asked.
        std::future::pending::<()>().await;
    }
}

/// Sets up the volumes, runs the init containers in order, then the containers together
/// (in `tasks`, so that the caller can stop them), until every one is done for good.
async fn run_containers(
    shared: &Arc<Shared>,
    init_containers: Vec<Container>,
    containers: Vec<Container>,
    tasks: &mut JoinSet<bool>,
) {
    let volumes = Arc::new(mount_volumes(shared).await);
    let init_count = init_containers.len();
    for (index, container) in init_containers.into_iter().enumerate() {
        if !run_container(shared.clone(), index, container, volumes.clone()).await {
            // Failed and will not be retried (restartPolicy Never): the pod has failed.
            return;
        }
    }
    if shared.is_terminating() {
        return;
    }
    if init_count > 0 {
        shared.state.lock().expect("pod state poisoned").initialized = true;
        shared.changed.notify_one();
    }
    for (offset, container) in containers.into_iter().enumerate() {
        tasks.spawn(run_container(
            shared.clone(),
            init_count + offset,
            container,
            volumes.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// Sets up the pod's volumes, retrying with back-off while one cannot be (a ConfigMap that
/// does not exist yet), as the kubelet does with `FailedMount` events.
async fn mount_volumes(shared: &Shared) -> PodVolumes {
    let has_volumes = shared
        .pod
        .spec
        .as_ref()
        .is_some_and(|s| s.volumes.as_ref().is_some_and(|v| !v.is_empty()));
    if !has_volumes {
        return PodVolumes::default();
    }
    let mut backoff = Backoff::new(shared.context.backoff);
    loop {
        let context = &shared.context;
        match volumes::prepare(&context.client, &context.volumes_root, &shared.pod).await {
            Ok(volumes) => return volumes,
            Err(message) => {
                tracing::warn!(pod = %shared.pod.name_any(), %message, "could not set up volumes");
                shared.update_all(|c| c.state = waiting("ContainerCreating", message.clone()));
                shared.event(EventType::Warning, "FailedMount", message.clone());
                tokio::time::sleep(backoff.after_run(Duration::ZERO)).await;
            }
        }
    }
}

struct ReporterGuard(tokio::task::JoinHandle<()>);

impl Drop for ReporterGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one container until it is done for good, restarting it as the pod's `restartPolicy`
/// says (an init container only restarts after a failure). True if its last run succeeded.
async fn run_container(
    shared: Arc<Shared>,
    index: usize,
    container: Container,
    volumes: Arc<PodVolumes>,
) -> bool {
    let module = pull(&shared, index, &container).await;
    let (env, preopens, probes) = configure(&shared, index, &container, &volumes).await;
    let init = shared.state.lock().expect("pod state poisoned").containers[index].init;
    let policy = match restart_policy(&shared.pod) {
        "Always" if init => "OnFailure",
        policy => policy,
    }
    .to_string();
    let (memory_limit, cpu_limit) = limits(&container);
    let outbound = Arc::new(outbound_policy(&shared.pod, shared.context.gateway.clone()));
    let mut backoff = Backoff::new(shared.context.backoff);
    let pod_name = shared.pod.name_any();
    let namespace = shared.pod.namespace().unwrap_or_default();
    let uid = shared.pod.uid().unwrap_or_default();
    loop {
        let run = shared.state.lock().expect("pod state poisoned").containers[index].restart_count;
        let (log_path, log_file) =
            match shared
                .context
                .logs
                .open(&namespace, &pod_name, &uid, &container.name, run)
            {
                Ok(opened) => opened,
                Err(error) => {
                    let message = format!("could not open the container log: {error}");
                    shared.update(index, |c| {
                        c.state = waiting("CreateContainerError", message.clone())
                    });
                    shared.event(EventType::Warning, "Failed", message);
                    tokio::time::sleep(backoff.after_run(Duration::ZERO)).await;
                    continue;
                }
            };
        let _live = LiveLog {
            store: shared.context.logs.clone(),
            path: log_path,
        };
        let launch = Launch {
            runtime: &shared.context.runtime,
            module: &module,
            pod: &shared.pod,
            container: &container,
            env: &env,
            preopens: &preopens,
            memory_limit,
            cpu_limit,
            outbound: &outbound,
            http_pods: &shared.context.http_pods,
        };
        let usage = Arc::new(crate::runtime::Usage::default());
        shared
            .context
            .stats
            .started(&shared.pod, &container.name, usage.clone());
        // An HTTP component serves from before it is reported running, so whoever sees the
        // pod Ready can reach it; it then runs until stopped.
        // A WASI preview 1 program serves too, CGI style, when the pod asks it to.
        let serves =
            module.serves_http() || (must_serve_http(&shared.pod) && module.can_serve_http());
        let (run, _serving) = if serves {
            let serving = launch.serve(log_file, usage);
            (Either::Left(std::future::pending()), Some(serving))
        } else {
            (Either::Right(launch.run(log_file, usage)), None)
        };
        tokio::pin!(run);
        let started = Time(jiff::Timestamp::now());
        shared.update(index, |c| {
            c.state = ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(started.clone()),
                }),
                ..Default::default()
            };
            c.started_once = true;
            c.started = !probes.gates_start();
            c.probed_ready = probes.gates_readiness().then_some(false);
        });
        shared.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", container.name),
        );
        let began = Instant::now();
        let ended = tokio::select! {
            outcome = &mut run => Ended::Exited(outcome),
            why = probes::watch(&shared, index, &probes, |action| launch.probe(action)) => {
                Ended::Killed(why)
            }
            deadline = shared.terminating() => {
                stop_gracefully(&shared, &launch, &mut run, deadline).await
            }
        };
        let ran_for = began.elapsed();
        drop(_live);
        let (code, reason, message) = match &ended {
            Ended::Exited(ExitOutcome::Exited(0)) => (0, "Completed", None),
            Ended::Exited(ExitOutcome::Exited(code)) => (*code, "Error", None),
            Ended::Exited(ExitOutcome::Trapped { message }) => (1, "Error", Some(message.clone())),
            Ended::Exited(ExitOutcome::OutOfMemory { message }) => {
                (137, "OOMKilled", Some(message.clone()))
            }
            // Stopped from outside, as the kubelet's SIGKILL after a failed probe.
            Ended::Killed(why) => (137, "Error", Some(why.clone())),
        };
        // Only a probe's kill is news: a deletion has its own events.
        if let Ended::Killed(why) = &ended
            && !shared.is_terminating()
        {
            let probe = if why.starts_with("Startup") {
                "startup"
            } else {
                "liveness"
            };
            shared.event(
                EventType::Normal,
                "Killing",
                format!(
                    "Container {} failed {probe} probe, will be restarted",
                    container.name
                ),
            );
        }
        tracing::info!(pod = %pod_name, container = %container.name, exit_code = code, reason, "container exited");
        let restart = match policy.as_str() {
            _ if shared.is_terminating() => false,
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                message: message.clone(),
                started_at: Some(started),
                finished_at: Some(Time(jiff::Timestamp::now())),
                container_id: None,
                signal: None,
            }),
            ..Default::default()
        };
        if !restart {
            shared.update(index, |c| {
                c.state = terminated;
                c.done = true;
            });
            return code == 0;
        }
        let delay = backoff.after_run(ran_for);
        let back_off = format!(
            "back-off {}s restarting failed container={} pod={pod_name}",
            delay.as_secs(),
            container.name
        );
        shared.update(index, |c| {
            c.last_state = Some(terminated);
            c.restart_count += 1;
            c.state = waiting("CrashLoopBackOff", back_off.clone());
        });
        shared.event(
            EventType::Warning,
            "BackOff",
            format!("Back-off restarting failed container {}", container.name),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.terminating() => return false,
        }
    }
}

/// Stops a running container for the pod's deletion: calls its `preStop` hook and lets it
/// run until `deadline` to end by itself, or stops it at once when it has no hook.
async fn stop_gracefully(
    shared: &Shared,
    launch: &Launch<'_>,
    run: &mut (impl Future<Output = ExitOutcome> + Unpin),
    deadline: tokio::time::Instant,
) -> Ended {
    let hook = launch
        .container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|exec| exec.command.as_ref()?.first().cloned());
    let Some(export) = hook else {
        return Ended::Killed("stopped: the pod is being deleted".into());
    };
    let name = &launch.container.name;
    let graceful = async {
        if let Err(message) = launch.call(export).await {
            shared.event(
                EventType::Warning,
                "FailedPreStopHook",
                format!("PreStopHook failed for container {name}: {message}"),
            );
        }
        run.await
    };
    match tokio::time::timeout_at(deadline, graceful).await {
        Ok(outcome) => Ended::Exited(outcome),
        Err(_) => {
            Ended::Killed("stopped: still running when the termination grace period ran out".into())
        }
    }
}

/// How a run of a container ended.
enum Ended {
    /// The guest ended by itself.
    Exited(ExitOutcome),
    /// A probe failed for good and the guest was stopped; why.
    Killed(String),
}

/// What starting the container's module takes, for its runs and its probes' calls.
struct Launch<'a> {
    runtime: &'a Runtime,
    module: &'a PreparedModule,
    pod: &'a Pod,
    container: &'a Container,
    env: &'a [(String, String)],
    preopens: &'a [crate::runtime::Preopen],
    memory_limit: Option<u64>,
    cpu_limit: Option<u64>,
    outbound: &'a Arc<OutboundPolicy>,
    http_pods: &'a crate::serving::HttpPods,
}

/// The container's memory limit in bytes and CPU limit in millicores, where it sets them.
pub(crate) fn limits(container: &Container) -> (Option<u64>, Option<u64>) {
    let limit = |name: &str| {
        let limits = container.resources.as_ref()?.limits.as_ref()?;
        limits.get(name).map(|quantity| quantity.0.clone())
    };
    (
        limit("memory").and_then(|q| crate::quantity::bytes(&q)),
        limit("cpu").and_then(|q| crate::quantity::millicores(&q)),
    )
}

/// Where the pod's guests may send HTTP requests: Services through the node's `gateway`, and
/// the hosts its annotation allows.
pub(crate) fn outbound_policy(pod: &Pod, gateway: Option<String>) -> OutboundPolicy {
    let allowed = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::runtime::ALLOWED_HOSTS_ANNOTATION))
        .map(|value| OutboundPolicy::parse_allowed_hosts(value))
        .unwrap_or_default();
    OutboundPolicy {
        gateway,
        namespace: pod.namespace().unwrap_or_default(),
        allowed_hosts: allowed,
    }
}

impl Launch<'_> {
    fn spec(&self, output: std::fs::File, usage: Arc<crate::runtime::Usage>) -> RunSpec {
        RunSpec {
            program_name: self.container.name.clone(),
            args: arguments(self.container),
            env: self.env.to_vec(),
            stdout: output,
            memory_limit_bytes: self.memory_limit,
            preopens: self.preopens.to_vec(),
            working_dir: self.container.working_dir.clone(),
            cpu_limit_millicores: self.cpu_limit,
            usage,
            outbound: self.outbound.clone(),
        }
    }

    /// Runs the container's program, its output going to `log`, counting into `usage`.
    async fn run(&self, log: std::fs::File, usage: Arc<crate::runtime::Usage>) -> ExitOutcome {
        self.runtime.run(self.module, self.spec(log, usage)).await
    }

    /// Serves the pod's requests with the container's HTTP component, each in an instance
    /// of its own writing to `log`, until the returned registration is dropped.
    fn serve(
        &self,
        log: std::fs::File,
        usage: Arc<crate::runtime::Usage>,
    ) -> crate::serving::Registration {
        let ports = (self.container.ports.iter().flatten())
            .map(|port| port.container_port)
            .collect();
        self.http_pods.register(
            &self.pod.namespace().unwrap_or_default(),
            &self.pod.name_any(),
            crate::serving::Server {
                container: self.container.name.clone(),
                ports,
                runtime: self.runtime.clone(),
                module: self.module.clone(),
                spec: self.spec(log, usage),
                timeout: crate::serving::request_timeout(self.pod),
            },
        )
    }

    /// Carries out a probe's action; the error says what failed.
    async fn probe(&self, action: probes::Action) -> Result<(), String> {
        match action {
            probes::Action::Exec(export) => self.call(export).await,
            probes::Action::HttpGet {
                path,
                port,
                headers,
            } => self.http_get(path, port, headers).await,
        }
    }

    /// GETs `path` from the container's HTTP handler, in process, as the kubelet's httpGet
    /// probe does over the network: 200 to 399 is success.
    async fn http_get(
        &self,
        path: String,
        port: Option<u16>,
        headers: Vec<(String, String)>,
    ) -> Result<(), String> {
        // The kubelet's Host is the pod's IP and the port, which is 127.0.0.1 here, unless
        // the probe sets its own.
        let host = format!("127.0.0.1:{}", port.unwrap_or(80));
        let mut request = http::Request::get(path.as_str())
            .header(http::header::USER_AGENT, "kube-probe/flotilla")
            .header(http::header::ACCEPT, "*/*");
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request = request.header(http::header::HOST, host);
        }
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("bad httpGet probe request for {path:?}: {e}"))?;
        let namespace = self.pod.namespace().unwrap_or_default();
        let pod = self.pod.name_any();
        match self.http_pods.serve(&namespace, &pod, port, request).await {
            Ok(response) if (200..400).contains(&response.status().as_u16()) => Ok(()),
            Ok(response) => Err(format!(
                "HTTP probe failed with statuscode: {}",
                response.status().as_u16()
            )),
            Err(crate::serving::ServeError::NoSuchPod(_)) => Err(format!(
                "container {} does not serve HTTP, so it cannot answer an httpGet probe (its \
                 module must export wasi:http/incoming-handler; use an exec probe otherwise)",
                self.container.name
            )),
            Err(error) => Err(format!("GET {path}: {error}")),
        }
    }

    /// Calls an export for a probe; the error says what failed, with the first line the
    /// call printed, as the kubelet quotes an exec probe's output.
    async fn call(&self, export: String) -> Result<(), String> {
        let output = tempfile::tempfile()
            .map_err(|e| format!("could not create the probe's output file: {e}"))?;
        let mut reader = output
            .try_clone()
            .map_err(|e| format!("could not read the probe's output: {e}"))?;
        let outcome = self
            .runtime
            .call(self.module, self.spec(output, Default::default()), &export)
            .await;
        let mut said = || {
            let text = crate::log_file::read_back(&mut reader, 64 << 10);
            let first = String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>();
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        };
        match outcome {
            ExitOutcome::Exited(0) => Ok(()),
            ExitOutcome::Exited(code) => Err(format!("{export} returned {code}{}", said())),
            ExitOutcome::Trapped { message } | ExitOutcome::OutOfMemory { message } => {
                Err(format!("{export} failed: {message}"))
            }
        }
    }
}

/// Marks a container's log finished when its run ends, however it ends.
struct LiveLog {
    store: LogStore,
    path: std::path::PathBuf,
}

impl Drop for LiveLog {
    fn drop(&mut self) {
        self.store.finished(&self.path);
    }
}

/// argv: `command` (which replaces argv[0] onwards, as it replaces an image's entrypoint) or the
/// container name, followed by `args`.
pub(crate) fn arguments(container: &Container) -> Vec<String> {
    let mut argv: Vec<String> = container
        .command
        .clone()
        .unwrap_or_default()
        .into_iter()
        .skip(1)
        .collect();
    argv.extend(container.args.clone().unwrap_or_default());
    argv
}

/// Whether the pod exists to serve HTTP ([`crate::serving::SERVE_ANNOTATION`]).
fn must_serve_http(pod: &Pod) -> bool {
    pod.annotations()
        .get(crate::serving::SERVE_ANNOTATION)
        .is_some_and(|value| value == "http")
}

/// Why a module that must serve HTTP cannot.
pub(crate) fn cannot_serve_http(image: &str) -> String {
    format!(
        "module {image:?} cannot serve HTTP: it does not export wasi:http/incoming-handler \
         (build it for the wasi:http/proxy world, e.g. with the wasip2 crate's \
         http::proxy::export!), and a command component cannot answer CGI style as a \
         wasm32-wasip1 program can (WAGI)"
    )
}

/// Loads and compiles the container's module, retrying with back-off until it works.
async fn pull(shared: &Shared, index: usize, container: &Container) -> PreparedModule {
    let image = container.image.clone().unwrap_or_default();
    let mut backoff = Backoff::new(shared.context.backoff);
    loop {
        let began = Instant::now();
        let request = crate::images::ImageRequest::of(&shared.pod, container);
        let result = match shared.context.images.fetch(&request).await {
            Ok(bytes) => shared
                .context
                .runtime
                .prepare(bytes)
                .await
                .map_err(|e| ("ErrImagePull", format!("module {image:?} cannot run: {e}")))
                .and_then(|module| {
                    if must_serve_http(&shared.pod) && !module.can_serve_http() {
                        Err(("ErrImagePull", cannot_serve_http(&image)))
                    } else {
                        Ok(module)
                    }
                }),
            Err(e) => Err((e.reason(), e.to_string())),
        };
        match result {
            Ok(module) => {
                let digest = module.digest().to_string();
                shared.update(index, |c| c.image_id = digest.clone());
                shared.event(
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Loaded module {image:?} ({digest}) in {:?}",
                        began.elapsed()
                    ),
                );
                return module;
            }
            Err((reason, message)) => {
                tracing::warn!(pod = %shared.pod.name_any(), %image, %message, "image pull failed");
                shared.update(index, |c| c.state = waiting(reason, message.clone()));
                shared.event(
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image {image:?}: {message}"),
                );
                let delay = backoff.after_run(Duration::ZERO);
                tokio::time::sleep(Duration::from_secs(1).min(delay)).await;
                // The kubelet keeps ErrImageNeverPull: there is no pull to back off from.
                shared.update(index, |c| {
                    if reason == "ErrImagePull" {
                        c.state = waiting(
                            "ImagePullBackOff",
                            format!("Back-off pulling image {image:?}: {message}"),
                        )
                    }
                });
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The container's environment, volume mounts and probes, retrying while a referenced ConfigMap or
/// Secret is missing (`CreateContainerConfigError`, as the kubelet reports it).
async fn configure(
    shared: &Shared,
    index: usize,
    container: &Container,
    volumes: &PodVolumes,
) -> (
    Vec<(String, String)>,
    Vec<crate::runtime::Preopen>,
    probes::Probes,
) {
    let mut backoff = Backoff::new(shared.context.backoff);
    loop {
        let configured = async {
            let env = env::resolve(
                &shared.context.client,
                &shared.context.services,
                &shared.pod,
                container,
            )
            .await?;
            let preopens = volumes.preopens(container)?;
            Ok::<_, String>((env, preopens, probes::Probes::of(container)?))
        }
        .await;
        match configured {
            Ok(configured) => return configured,
            Err(message) => {
                shared.update(index, |c| {
                    c.state = waiting("CreateContainerConfigError", message.clone())
                });
                shared.event(EventType::Warning, "Failed", format!("Error: {message}"));
                tokio::time::sleep(backoff.after_run(Duration::ZERO)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_and_resets_after_a_long_run() {
        let mut backoff = Backoff::new(BackoffPolicy::default());
        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.after_run(Duration::from_secs(1)).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.after_run(Duration::from_secs(601)).as_secs(), 10);
    }

    #[test]
    fn command_replaces_argv0_and_args_follow() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "command": ["prog", "--flag"], "args": ["x"]}))
        .unwrap();
        assert_eq!(arguments(&container), ["--flag", "x"]);
    }
}
