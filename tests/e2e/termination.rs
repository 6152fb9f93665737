//! Graceful deletion: a container with a `preStop` hook has the hook called (an export of its
//! module) and `terminationGracePeriodSeconds` to end by itself; one without a hook — a Wasm
//! guest cannot be sent SIGTERM, so it would never learn it should stop — or one still
//! running when the grace period is up is interrupted.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::Cluster;
use std::time::{Duration, Instant};

fn pod(name: &str, run_dir: &std::path::Path, grace: u32, pre_stop: bool) -> String {
    let lifecycle = if pre_stop {
        "    lifecycle: {preStop: {exec: {command: [prestop]}}}\n"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: app
    image: files
    args: [until, /run/stop, write, /run/exited, bye]
    volumeMounts: [{{name: run, mountPath: /run}}]
{lifecycle}  volumes: [{{name: run, hostPath: {{path: "{}", type: Directory}}}}]
"#,
        run_dir.display()
    )
}

/// Deletes a running pod and waits until it is gone; returns how long that took.
fn delete(cluster: &Cluster, name: &str) -> anyhow::Result<Duration> {
    cluster.wait_for_field(
        &format!("pod/{name}"),
        ".status.containerStatuses[0].started",
        "true",
        SETTLE,
    )?;
    let began = Instant::now();
    cluster.kubectl_ok(&["delete", "pod", name, "--wait=true", "--timeout=60s"])?;
    Ok(began.elapsed())
}

#[test]
fn a_pre_stop_hook_lets_the_guest_finish_and_without_one_it_is_interrupted() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;

    // The hook writes /run/stop; the guest sees it, writes /run/exited and ends by itself.
    let hooked = tempfile::tempdir()?;
    checked_apply(&cluster, &pod("hooked", hooked.path(), 60, true))?;
    let took = delete(&cluster, "hooked")?;
    assert!(hooked.path().join("stop").exists(), "the hook did not run");
    assert_eq!(
        std::fs::read_to_string(hooked.path().join("exited"))?,
        "bye",
        "the guest did not finish by itself"
    );
    assert!(took < Duration::from_secs(30), "deletion took {took:?}");

    // No hook: nothing tells the guest to stop, so it is interrupted without waiting out
    // its 60 s grace period.
    let plain = tempfile::tempdir()?;
    checked_apply(&cluster, &pod("plain", plain.path(), 60, false))?;
    let took = delete(&cluster, "plain")?;
    assert!(!plain.path().join("exited").exists());
    assert!(took < Duration::from_secs(30), "deletion took {took:?}");

    // A hook that does not make the guest stop: interrupted when the 2 s grace is up.
    let stubborn = tempfile::tempdir()?;
    let yaml = pod("stubborn", stubborn.path(), 2, true);
    let yaml = yaml.replace(
        "    lifecycle:",
        "    env: [{name: STOP_FILE, value: /run/elsewhere}]\n    lifecycle:",
    );
    checked_apply(&cluster, &yaml)?;
    let took = delete(&cluster, "stubborn")?;
    assert!(
        stubborn.path().join("elsewhere").exists(),
        "the hook did not run"
    );
    assert!(!stubborn.path().join("exited").exists());
    assert!(took >= Duration::from_secs(2), "deletion took {took:?}");
    Ok(())
}
