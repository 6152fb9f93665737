//! One supervisor per pod: every container runs its own loop — pull the module (with
//! `ErrImagePull`/`ImagePullBackOff` back-off), run it, record how it ended, restart it as
//! `restartPolicy` says (with `CrashLoopBackOff` back-off) — while a reporter publishes the
//! pod's status whenever it changes, coalescing bursts into one write. A pod with
//! `activeDeadlineSeconds` is stopped as a whole once that much time has passed since its
//! start, and marked `Failed` with reason `DeadlineExceeded`, as the kubelet does.

use crate::images::Resolver;
use crate::logs::LogStore;
use crate::runtime::{ExitOutcome, PreparedModule, RunSpec, Runtime};
use flotilla_client::events::{EventType, Recorder};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
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
}

/// A running pod supervisor.
pub struct Worker {
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    pub fn start(context: PodContext, pod: Pod) -> Worker {
        Worker {
            task: tokio::spawn(run_pod(context, Arc::new(pod))),
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
    image: String,
    image_id: String,
    state: ContainerState,
    last_state: Option<ContainerState>,
    restart_count: i32,
    started_once: bool,
    /// Terminated and will not run again.
    done: bool,
}

/// Retry delays of a status write the apiserver did not take: doubling up to a ceiling.
const STATUS_RETRY_FIRST: Duration = Duration::from_millis(200);
const STATUS_RETRY_MAX: Duration = Duration::from_secs(10);

struct PodState {
    containers: Vec<ContainerRecord>,
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
    api: Api<Pod>,
    state: Mutex<PodState>,
    changed: Notify,
    /// Held for each status write, rendering included, so writes land in the order they were
    /// rendered: the reporter's write of an older state can never land after the last one.
    writing: tokio::sync::Mutex<()>,
    context: PodContext,
}

impl Shared {
    fn update(&self, index: usize, change: impl FnOnce(&mut ContainerRecord)) {
        change(&mut self.state.lock().expect("pod state poisoned").containers[index]);
        self.changed.notify_one();
    }

    fn render(&self) -> serde_json::Value {
        let mut state = self.state.lock().expect("pod state poisoned");
        let all_done = state.containers.iter().all(|c| c.done);
        let phase = if state.failure.is_some() {
            "Failed"
        } else if all_done {
            let all_ok = state
                .containers
                .iter()
                .all(|c| exit_code(&c.state) == Some(0));
            if all_ok { "Succeeded" } else { "Failed" }
        } else if state.containers.iter().any(|c| c.started_once) {
            "Running"
        } else {
            "Pending"
        };
        let statuses: Vec<ContainerStatus> = state
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone(),
                image_id: c.image_id.clone(),
                ready: c.state.running.is_some(),
                started: Some(c.state.running.is_some()),
                restart_count: c.restart_count,
                state: Some(c.state.clone()),
                last_state: c.last_state.clone(),
                container_id: Some(format!(
                    "wasmtime://{}/{}",
                    self.pod.uid().unwrap_or_default(),
                    c.name
                )),
                ..Default::default()
            })
            .collect();
        let ready = statuses.iter().all(|s| s.ready);
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
            condition("Initialized", true),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ];
        let (reason, message) = match &state.failure {
            Some((reason, message)) => (Some(*reason), Some(message.clone())),
            None => (None, None),
        };
        serde_json::json!({"status": {
            "phase": phase,
            "reason": reason,
            "message": message,
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": "127.0.0.1",
            "startTime": state.start_time,
        }})
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

    async fn event(&self, kind: EventType, reason: &str, message: String) {
        self.context
            .recorder
            .record(&*self.pod, kind, reason, message)
            .await;
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
        self.event(EventType::Warning, "DeadlineExceeded", message.into())
            .await;
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

async fn run_pod(context: PodContext, pod: Arc<Pod>) {
    let containers: Vec<Container> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let records = containers
        .iter()
        .map(|c| ContainerRecord {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            state: waiting("ContainerCreating", "loading the Wasm module"),
            last_state: None,
            restart_count: 0,
            started_once: false,
            done: false,
        })
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
        api,
        state: Mutex::new(PodState {
            containers: records,
            start_time,
            condition_since: Default::default(),
            failure: None,
        }),
        changed: Notify::new(),
        writing: tokio::sync::Mutex::new(()),
        context,
    });
    let mut tasks = JoinSet::new();
    let reporter = shared.clone();
    let reporting = tokio::spawn(async move {
        loop {
            reporter.changed.notified().await;
            reporter.publish_until_written().await;
        }
    });
    let _reporting = ReporterGuard(reporting);
    shared.changed.notify_one();
    for (index, container) in containers.into_iter().enumerate() {
        tasks.spawn(run_container(shared.clone(), index, container));
    }
    let all_done = async { while tasks.join_next().await.is_some() {} };
    match deadline {
        None => all_done.await,
        Some((seconds, remaining)) => {
            if tokio::time::timeout(remaining, all_done).await.is_err() {
                // As the kubelet does: the whole pod is killed and marked, never restarted.
                tasks.shutdown().await;
                shared.deadline_exceeded(seconds).await;
            }
        }
    }
    // The last state must be written even if the reporter is mid-write of an older one.
    shared.publish_until_written().await;
}

struct ReporterGuard(tokio::task::JoinHandle<()>);

impl Drop for ReporterGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_container(shared: Arc<Shared>, index: usize, container: Container) {
    let module = pull(&shared, index, &container).await;
    let env = configure(&shared, index, &container).await;
    let policy = restart_policy(&shared.pod).to_string();
    let memory_limit = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| crate::quantity::bytes(&q.0));
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
                    shared.event(EventType::Warning, "Failed", message).await;
                    tokio::time::sleep(backoff.after_run(Duration::ZERO)).await;
                    continue;
                }
            };
        let _live = LiveLog {
            store: shared.context.logs.clone(),
            path: log_path,
        };
        let started = Time(jiff::Timestamp::now());
        shared.update(index, |c| {
            c.state = ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(started.clone()),
                }),
                ..Default::default()
            };
            c.started_once = true;
        });
        shared
            .event(
                EventType::Normal,
                "Started",
                format!("Started container {}", container.name),
            )
            .await;
        let spec = RunSpec {
            program_name: container.name.clone(),
            args: arguments(&container),
            env: env.clone(),
            stdout: log_file,
            memory_limit_bytes: memory_limit,
        };
        let began = Instant::now();
        let outcome = shared.context.runtime.run(&module, spec).await;
        let ran_for = began.elapsed();
        drop(_live);
        let (code, reason, message) = match &outcome {
            ExitOutcome::Exited(0) => (0, "Completed", None),
            ExitOutcome::Exited(code) => (*code, "Error", None),
            ExitOutcome::Trapped { message } => (1, "Error", Some(message.clone())),
            ExitOutcome::OutOfMemory { message } => (137, "OOMKilled", Some(message.clone())),
        };
        tracing::info!(pod = %pod_name, container = %container.name, exit_code = code, reason, "container exited");
        let restart = match policy.as_str() {
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
            return;
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
        shared
            .event(
                EventType::Warning,
                "BackOff",
                format!("Back-off restarting failed container {}", container.name),
            )
            .await;
        tokio::time::sleep(delay).await;
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
fn arguments(container: &Container) -> Vec<String> {
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
                .map_err(|e| ("ErrImagePull", format!("module {image:?} cannot run: {e}"))),
            Err(e) => Err((e.reason(), e.to_string())),
        };
        match result {
            Ok(module) => {
                let digest = module.digest().to_string();
                shared.update(index, |c| c.image_id = digest.clone());
                shared
                    .event(
                        EventType::Normal,
                        "Pulled",
                        format!(
                            "Loaded module {image:?} ({digest}) in {:?}",
                            began.elapsed()
                        ),
                    )
                    .await;
                return module;
            }
            Err((reason, message)) => {
                tracing::warn!(pod = %shared.pod.name_any(), %image, %message, "image pull failed");
                shared.update(index, |c| c.state = waiting(reason, message.clone()));
                shared
                    .event(
                        EventType::Warning,
                        "Failed",
                        format!("Failed to pull image {image:?}: {message}"),
                    )
                    .await;
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

/// The container's environment, exactly as declared, retrying while a referenced ConfigMap
/// is missing (`CreateContainerConfigError`, as the kubelet reports it).
async fn configure(shared: &Shared, index: usize, container: &Container) -> Vec<(String, String)> {
    let mut backoff = Backoff::new(shared.context.backoff);
    loop {
        match environment(shared, container).await {
            Ok(env) => return env,
            Err(message) => {
                shared.update(index, |c| {
                    c.state = waiting("CreateContainerConfigError", message.clone())
                });
                shared
                    .event(EventType::Warning, "Failed", format!("Error: {message}"))
                    .await;
                tokio::time::sleep(backoff.after_run(Duration::ZERO)).await;
            }
        }
    }
}

async fn environment(
    shared: &Shared,
    container: &Container,
) -> Result<Vec<(String, String)>, String> {
    let pod = &shared.pod;
    let namespace = pod.namespace().unwrap_or_default();
    let config_maps: Api<ConfigMap> = Api::namespaced(shared.context.client.clone(), &namespace);
    let mut env = Vec::new();
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.config_map_ref {
            let optional = reference.optional.unwrap_or(false);
            match config_maps
                .get_opt(&reference.name)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(cm) => {
                    let prefix = source.prefix.clone().unwrap_or_default();
                    env.extend(
                        cm.data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (format!("{prefix}{k}"), v)),
                    );
                }
                None if optional => {}
                None => return Err(format!("configmap \"{}\" not found", reference.name)),
            }
        } else if source.secret_ref.is_some() {
            return Err("Secrets are not supported yet; use a ConfigMap".into());
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    match field.field_path.as_str() {
                        "metadata.name" => pod.name_any(),
                        "metadata.namespace" => namespace.clone(),
                        "metadata.uid" => pod.uid().unwrap_or_default(),
                        "spec.nodeName" => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default(),
                        other => {
                            return Err(format!(
                                "env {}: field {other:?} is not supported",
                                var.name
                            ));
                        }
                    }
                } else if let Some(key_ref) = &from.config_map_key_ref {
                    let cm = config_maps
                        .get_opt(&key_ref.name)
                        .await
                        .map_err(|e| e.to_string())?;
                    match cm.and_then(|cm| cm.data.unwrap_or_default().remove(&key_ref.key)) {
                        Some(value) => value,
                        None if key_ref.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                key_ref.key, namespace, key_ref.name
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "env {}: only value, fieldRef and configMapKeyRef are supported",
                        var.name
                    ));
                }
            }
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
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
