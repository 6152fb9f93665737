//! Probes with Kubernetes' semantics, where `exec.command[0]` names a function the module
//! exports and `httpGet` asks an HTTP component: readiness drives the Ready condition both
//! ways, a failing liveness probe gets the container killed and restarted, and a startup
//! probe holds the container not-started until it passes (or gets it killed).

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, wait_until};

/// A pod whose `files` container idles (following a file that never appears) with probes
/// calling its `healthz`/`readyz` exports, which check files in the test's directory.
fn probed_pod(name: &str, probe_dir: &std::path::Path, probes: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: app
    image: files
    args: [follow, /probe/never]
    volumeMounts: [{{name: probe, mountPath: /probe, readOnly: true}}]
{probes}
  volumes: [{{name: probe, hostPath: {{path: "{}", type: Directory}}}}]
"#,
        probe_dir.display()
    )
}

#[test]
fn readiness_follows_the_probe_and_a_failed_liveness_probe_restarts_the_container()
-> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--restart-backoff", "200ms"])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("healthy"), "")?;
    let probes =
        "    readinessProbe: {exec: {command: [readyz]}, periodSeconds: 1, failureThreshold: 1}
    livenessProbe: {exec: {command: [healthz]}, periodSeconds: 1, failureThreshold: 2}";
    checked_apply(&cluster, &probed_pod("probed", dir.path(), probes))?;
    cluster.wait_for_field(
        "pod/probed",
        ".status.containerStatuses[0].started",
        "true",
        SETTLE,
    )?;
    // Running but not ready: readyz fails while the ready file is missing.
    assert_eq!(cluster.field("pod/probed", ".status.phase"), "Running");
    assert_eq!(
        cluster.field("pod/probed", ".status.containerStatuses[0].ready"),
        "false"
    );
    let ready = ".status.conditions[?(@.type==\"Ready\")].status";
    assert_eq!(cluster.field("pod/probed", ready), "False");
    std::fs::write(dir.path().join("ready"), "")?;
    cluster.wait_for_field("pod/probed", ready, "True", SETTLE)?;
    std::fs::remove_file(dir.path().join("ready"))?;
    cluster.wait_for_field("pod/probed", ready, "False", SETTLE)?;
    assert_eq!(
        cluster.field("pod/probed", ".status.containerStatuses[0].restartCount"),
        "0"
    );

    std::fs::remove_file(dir.path().join("healthy"))?;
    cluster.wait_for_field(
        "pod/probed",
        ".status.containerStatuses[0].restartCount",
        "1",
        SETTLE,
    )?;
    let last = ".status.containerStatuses[0].lastState.terminated";
    assert_eq!(
        cluster.field("pod/probed", &format!("{last}.exitCode")),
        "137"
    );
    let message = cluster.field("pod/probed", &format!("{last}.message"));
    assert!(
        message.contains("Liveness probe failed 2 times in a row")
            && message.contains("/probe/healthy is missing"),
        "{message}"
    );
    wait_until(SETTLE, "Unhealthy and Killing events", || {
        let events = cluster.kubectl(&["get", "events"]);
        let events = String::from_utf8_lossy(&events.stdout);
        Ok(events.contains("Liveness probe failed: healthz returned 1")
            && events.contains("Container app failed liveness probe, will be restarted"))
    })?;
    Ok(())
}

#[test]
fn a_startup_probe_holds_the_container_unstarted_and_kills_it_when_it_never_passes()
-> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--restart-backoff", "200ms"])?;
    let dir = tempfile::tempdir()?;
    let probes =
        "    startupProbe: {exec: {command: [healthz]}, periodSeconds: 1, failureThreshold: 3}
    readinessProbe: {exec: {command: [readyz]}, periodSeconds: 1}";
    std::fs::write(dir.path().join("ready"), "")?;
    checked_apply(&cluster, &probed_pod("slow-start", dir.path(), probes))?;
    wait_until(SETTLE, "the container to be running", || {
        Ok(!cluster
            .field(
                "pod/slow-start",
                ".status.containerStatuses[0].state.running",
            )
            .is_empty())
    })?;
    // Readiness is not probed before the startup probe passes.
    assert_eq!(
        cluster.field("pod/slow-start", ".status.containerStatuses[0].started"),
        "false"
    );
    assert_eq!(
        cluster.field("pod/slow-start", ".status.containerStatuses[0].ready"),
        "false"
    );
    cluster.wait_for_field(
        "pod/slow-start",
        ".status.containerStatuses[0].restartCount",
        "1",
        SETTLE,
    )?;
    let message = cluster.field(
        "pod/slow-start",
        ".status.containerStatuses[0].lastState.terminated.message",
    );
    assert!(
        message.contains("Startup probe failed 3 times"),
        "{message}"
    );

    // Once healthz passes, the container starts and, with readyz passing, is Ready.
    std::fs::write(dir.path().join("healthy"), "")?;
    cluster.wait_for_field(
        "pod/slow-start",
        ".status.containerStatuses[0].ready",
        "true",
        SETTLE,
    )?;
    assert_eq!(
        cluster.field("pod/slow-start", ".status.containerStatuses[0].started"),
        "true"
    );
    Ok(())
}

#[test]
fn probes_other_than_exec_and_http_get_are_refused_with_what_works() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    // Without kubectl's own schema check (older kubectl catches a missing port itself), so
    // that the apiserver's is what answers.
    let refused = |probe: &str| {
        let out = cluster.kubectl_with_input(
            &["apply", "--validate=false", "-f", "-"],
            Some(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: c, image: hello, livenessProbe: {probe}}}]}}\n")),
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let message = refused("{tcpSocket: {port: 80}}");
    assert!(
        message.contains(
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: flotilla runs exec and httpGet probes"
        ),
        "{message}"
    );
    let message = refused("{httpGet: {path: /}}");
    assert!(
        message.contains("spec.containers[0].livenessProbe.httpGet.port: Required value"),
        "{message}"
    );
    Ok(())
}

#[test]
fn http_get_probes_ask_an_http_component() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--restart-backoff", "200ms"])?;
    let pod = |name: &str, probes: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: web\n    image: http-behaviours\n    ports: [{{name: http, containerPort: 8080}}]\n{probes}"
        )
    };
    // Ready once /status/204 answers; never ready while /status/503 does.
    checked_apply(
        &cluster,
        &pod(
            "fine",
            "    readinessProbe: {httpGet: {path: /status/204, port: http}, periodSeconds: 1}\n",
        ),
    )?;
    checked_apply(
        &cluster,
        &pod(
            "unready",
            "    readinessProbe: {httpGet: {path: /status/503, port: 8080}, periodSeconds: 1, failureThreshold: 1}\n",
        ),
    )?;
    // A liveness probe whose handler hangs past its timeout gets the container restarted.
    checked_apply(
        &cluster,
        &pod(
            "hung",
            "    livenessProbe: {httpGet: {path: /hang, port: 8080}, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 1}\n",
        ),
    )?;
    let ready = ".status.conditions[?(@.type==\"Ready\")].status";
    cluster.wait_for_field("pod/fine", ready, "True", SETTLE)?;
    wait_until(SETTLE, "the unready pod's failed probe event", || {
        let events = cluster.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=unready",
            "-o",
            "jsonpath={.items[*].message}",
        ])?;
        Ok(events.contains("Readiness probe failed: HTTP probe failed with statuscode: 503"))
    })?;
    assert_eq!(cluster.field("pod/unready", ready), "False");
    assert_eq!(cluster.field("pod/unready", ".status.phase"), "Running");
    wait_until(SETTLE, "the hung pod to be restarted", || {
        let restarts = cluster.field("pod/hung", ".status.containerStatuses[0].restartCount");
        Ok(restarts.parse::<u32>().unwrap_or(0) >= 1)
    })?;
    let last = cluster.field(
        "pod/hung",
        ".status.containerStatuses[0].lastState.terminated.message",
    );
    assert!(
        last.contains("Liveness probe failed 1 times in a row: timed out: HTTP GET /hang"),
        "{last}"
    );
    assert_eq!(
        cluster.field("pod/fine", ".status.containerStatuses[0].restartCount"),
        "0"
    );
    Ok(())
}
