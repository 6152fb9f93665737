//! Container probes, with Kubernetes' semantics: a `startupProbe` runs first and holds the
//! others back until it succeeds; a failing `livenessProbe` gets the container killed (and
//! restarted as `restartPolicy` says); a `readinessProbe` decides whether the container is
//! Ready, which is what Services and rollouts wait for. Each probe runs every `periodSeconds`
//! after `initialDelaySeconds`, may take `timeoutSeconds`, and changes state after
//! `successThreshold` successes or `failureThreshold` failures in a row.
//!
//! A probe's action is `exec`, and `exec.command[0]` names a function the module exports: it
//! is called in a new instance with the container's environment and volumes, as `kubectl
//! exec` starts another process in a container (see `Runtime::call`). Returning nothing or 0
//! is success. `httpGet`, `tcpSocket` and `grpc` probes are refused by the apiserver until
//! pods serve HTTP.

use super::{EventType, Shared};
use k8s_openapi::api::core::v1::{Container, Probe as ProbeSpec};
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

/// One probe of a container, with Kubernetes' defaults filled in.
#[derive(Debug, Clone)]
struct Probe {
    kind: Kind,
    /// The export to call.
    export: String,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Probe {
    fn new(kind: Kind, spec: &ProbeSpec) -> Result<Probe, String> {
        let export = spec
            .exec
            .as_ref()
            .and_then(|exec| exec.command.as_ref()?.first().cloned())
            .ok_or_else(|| {
                format!(
                    "{} probe: only exec probes (exec.command: [EXPORT]) are supported",
                    kind.name()
                )
            })?;
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
            export,
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
        let probe = |kind, spec: &Option<ProbeSpec>| spec.as_ref().map(|s| Probe::new(kind, s));
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
/// startup result are recorded in the container's status as they change. `exec` calls an
/// export in a new instance and says whether it succeeded.
pub(super) async fn watch<F, Fut>(shared: &Shared, index: usize, probes: &Probes, exec: F) -> String
where
    F: Fn(String) -> Fut,
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
    F: Fn(String) -> Fut,
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
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(probe.timeout, exec(probe.export.clone())).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "command timed out: {:?} did not return within {}s",
            probe.export,
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
