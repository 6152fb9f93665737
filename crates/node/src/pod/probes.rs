//! Container probes, with Kubernetes' semantics: a `startupProbe` runs first and holds the
//! others back until it succeeds; a failing `livenessProbe` gets the container killed (and
//! restarted as `restartPolicy` says); a `readinessProbe` decides whether the container is
//! Ready, which is what Services and rollouts wait for. Each probe runs every `periodSeconds`
//! after `initialDelaySeconds`, may take `timeoutSeconds`, and changes state after
//! `successThreshold` successes or `failureThreshold` failures in a row.
//!
//! A probe's action is one of:
//! - `exec`: `exec.command[0]` names a function the module exports; it is called in a new
//!   instance with the container's environment and volumes, as `kubectl exec` starts another
//!   process in a container (see `Runtime::call`). Returning nothing or 0 is success.
//! - `httpGet`: for a container whose component serves HTTP, a GET of `path` handed to it in
//!   process (its port picks the container, as a request's target port does); a status from
//!   200 to 399 is success, as for the kubelet.
//!
//! `tcpSocket` and `grpc` probes are refused by the apiserver.

use super::{EventType, Shared};
use k8s_openapi::api::core::v1::{Container, Probe as ProbeSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::future::Future;
use std::time::Duration;

/// The three kinds of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Call this export.
    Exec(String),
    /// GET this path (with its query) from the container's HTTP handler.
    HttpGet {
        path: String,
        /// The container port, when the probe names one the container declares.
        port: Option<u16>,
        headers: Vec<(String, String)>,
    },
}

impl Action {
    fn of(kind: Kind, spec: &ProbeSpec, container: &Container) -> Result<Action, String> {
        if let Some(get) = &spec.http_get {
            let port = match &get.port {
                IntOrString::Int(port) => u16::try_from(*port).ok(),
                IntOrString::String(name) => (container.ports.iter().flatten())
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
            };
            let path = get.path.clone().filter(|p| !p.is_empty());
            return Ok(Action::HttpGet {
                path: path.unwrap_or_else(|| "/".to_string()),
                port,
                headers: (get.http_headers.iter().flatten())
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            });
        }
        spec.exec
            .as_ref()
            .and_then(|exec| exec.command.as_ref()?.first().cloned())
            .map(Action::Exec)
            .ok_or_else(|| {
                format!(
                    "{} probe: only exec (exec.command: [EXPORT]) and httpGet probes are \
                     supported",
                    kind.name()
                )
            })
    }

    /// What timed out, for the probe's failure message.
    fn describe(&self) -> String {
        match self {
            Action::Exec(export) => format!("command {export:?}"),
            Action::HttpGet { path, .. } => format!("HTTP GET {path}"),
        }
    }
}

/// One probe of a container, with Kubernetes' defaults filled in.
#[derive(Debug, Clone)]
struct Probe {
    kind: Kind,
    action: Action,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Probe {
    fn new(kind: Kind, spec: &ProbeSpec, container: &Container) -> Result<Probe, String> {
        let action = Action::of(kind, spec, container)?;
        let seconds = |value: Option<i32>, default: u64| {
            Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
        };
        let count = |value: Option<i32>, default: u32| {
            value
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Ok(Probe {
            kind,
            action,
            initial_delay: seconds(spec.initial_delay_seconds, 0),
            period: seconds(spec.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(spec.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(spec.success_threshold, 1),
            failure_threshold: count(spec.failure_threshold, 3),
        })
    }
}

/// A container's probes.
#[derive(Debug, Clone, Default)]
pub(super) struct Probes {
    startup: Option<Probe>,
    liveness: Option<Probe>,
    readiness: Option<Probe>,
}

impl Probes {
    pub(super) fn of(container: &Container) -> Result<Probes, String> {
        let probe =
            |kind, spec: &Option<ProbeSpec>| spec.as_ref().map(|s| Probe::new(kind, s, container));
        Ok(Probes {
            startup: probe(Kind::Startup, &container.startup_probe).transpose()?,
            liveness: probe(Kind::Liveness, &container.liveness_probe).transpose()?,
            readiness: probe(Kind::Readiness, &container.readiness_probe).transpose()?,
        })
    }

    /// Whether the container has a readiness probe, so it is not Ready until that succeeds.
    pub(super) fn gates_readiness(&self) -> bool {
        self.readiness.is_some()
    }

    /// Whether the container has a startup probe, so it is not started until that succeeds.
    pub(super) fn gates_start(&self) -> bool {
        self.startup.is_some()
    }
}

/// Probes one run of a container until its liveness or startup probe has failed for good,
/// and returns why it must be killed; never returns if neither does. Readiness and the
/// startup result are recorded in the container's status as they change. `exec` carries out
/// an [`Action`] and says whether it succeeded.
pub(super) async fn watch<F, Fut>(shared: &Shared, index: usize, probes: &Probes, exec: F) -> String
where
    F: Fn(Action) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    if let Some(startup) = &probes.startup
        && let Err(message) = until_failed(shared, startup, &exec, true).await
    {
        return message;
    }
    shared.update(index, |c| c.started = true);
    let liveness = async {
        match &probes.liveness {
            // Liveness keeps probing for as long as the container runs.
            Some(probe) => until_failed(shared, probe, &exec, false)
                .await
                .err()
                .unwrap_or_default(),
            None => std::future::pending().await,
        }
    };
    let readiness = async {
        let Some(probe) = &probes.readiness else {
            return std::future::pending().await;
        };
        tokio::time::sleep(probe.initial_delay).await;
        let (mut successes, mut failures) = (0, 0);
        loop {
            match attempt(probe, &exec).await {
                Ok(()) => {
                    (successes, failures) = (successes + 1, 0);
                    if successes >= probe.success_threshold {
                        set_ready(shared, index, true);
                    }
                }
                Err(message) => {
                    (successes, failures) = (0, failures + 1);
                    unhealthy(shared, probe, &message).await;
                    if failures >= probe.failure_threshold {
                        set_ready(shared, index, false);
                    }
                }
            }
            tokio::time::sleep(probe.period).await;
        }
    };
    tokio::select! {
        message = liveness => message,
        never = readiness => never,
    }
}

fn set_ready(shared: &Shared, index: usize, ready: bool) {
    let changed = {
        let mut state = shared.state.lock().expect("pod state poisoned");
        let record = &mut state.containers[index];
        let changed = record.probed_ready != Some(ready);
        record.probed_ready = Some(ready);
        changed
    };
    if changed {
        shared.changed.notify_one();
    }
}

/// Probes until the probe fails for good (`failureThreshold` failures in a row), which is the
/// error, saying why; with `until_passed`, only until it passes (`successThreshold`
/// successes in a row).
async fn until_failed<F, Fut>(
    shared: &Shared,
    probe: &Probe,
    exec: &F,
    until_passed: bool,
) -> Result<(), String>
where
    F: Fn(Action) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    tokio::time::sleep(probe.initial_delay).await;
    let (mut successes, mut failures) = (0, 0);
    loop {
        match attempt(probe, exec).await {
            Ok(()) => {
                (successes, failures) = (successes + 1, 0);
                if until_passed && successes >= probe.success_threshold {
                    return Ok(());
                }
            }
            Err(message) => {
                (successes, failures) = (0, failures + 1);
                unhealthy(shared, probe, &message).await;
                if failures >= probe.failure_threshold {
                    return Err(format!(
                        "{} probe failed {failures} times in a row: {message}",
                        probe.kind.name()
                    ));
                }
            }
        }
        tokio::time::sleep(probe.period).await;
    }
}

async fn attempt<F, Fut>(probe: &Probe, exec: &F) -> Result<(), String>
where
    F: Fn(Action) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(probe.timeout, exec(probe.action.clone())).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timed out: {} did not return within {}s",
            probe.action.describe(),
            probe.timeout.as_secs()
        )),
    }
}

async fn unhealthy(shared: &Shared, probe: &Probe, message: &str) {
    shared.event(
        EventType::Warning,
        "Unhealthy",
        format!("{} probe failed: {message}", probe.kind.name()),
    );
}
