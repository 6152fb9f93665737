//! `flotilla node` as a separate process joins a cluster, stays Ready, and runs the pods bound
//! to it; their logs are read through it.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Background, Cluster, flotilla_bin, modules_dir};
use std::process::{Command, Stdio};

#[test]
fn a_separate_node_agent_registers_and_runs_pods() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let log = std::fs::File::create(cluster.dir.path().join("node-remote.log"))?;
    let _node = Background(
        Command::new(flotilla_bin())
            .args(["node", "--name", "remote-1"])
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .arg("--data-dir")
            .arg(cluster.dir.path().join("remote-1"))
            .arg("--modules")
            .arg(modules_dir())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    cluster.wait_for_field(
        "node/remote-1",
        r#".status.conditions[?(@.type=="Ready")].status"#,
        "True",
        SETTLE,
    )?;
    let nodes = cluster.kubectl_ok(&["get", "nodes"])?;
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("remote-1") && l.contains("Ready")),
        "{nodes}"
    );

    checked_apply(
        &cluster,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: remote-hello}\nspec: {restartPolicy: Never, containers: [{name: c, image: hello}]}\n",
    )?;
    cluster.wait_for_field("pod/remote-hello", ".status.phase", "Succeeded", SETTLE)?;
    assert_eq!(
        cluster.field("pod/remote-hello", ".spec.nodeName"),
        "remote-1"
    );
    let logs = cluster.kubectl_ok(&["logs", "remote-hello"])?;
    assert!(logs.contains("Hello from flotilla!"), "{logs}");
    Ok(())
}

#[test]
fn a_node_offers_the_machine_or_the_share_its_flags_set() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    // By default: the machine's memory, as the kubelet reports it (MemTotal in Ki).
    let memory = cluster.field("node/node-1", ".status.allocatable.memory");
    assert!(memory.ends_with("Ki") && memory != "16Gi", "{memory}");
    let _share = cluster.join_node(
        "share",
        &["--cpu", "500m", "--memory", "256Mi", "--max-pods", "20"],
    )?;
    for (resource, expected) in [("cpu", "500m"), ("memory", "256Mi"), ("pods", "20")] {
        assert_eq!(
            cluster.field("node/share", &format!(".status.allocatable.{resource}")),
            expected
        );
        assert_eq!(
            cluster.field("node/share", &format!(".status.capacity.{resource}")),
            expected
        );
    }
    // A quantity that is not one is refused before the agent starts.
    let refused = std::process::Command::new(flotilla_bin())
        .args(["node", "--name", "bad", "--cpu", "lots"])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("CPU quantity"));
    Ok(())
}

#[test]
fn restart_back_off_follows_the_node_flags() -> anyhow::Result<()> {
    // With the kubelet's 10 s doubling, three restarts would take over a minute.
    let cluster = Cluster::start_with(
        1,
        &["--restart-backoff", "200ms", "--max-restart-backoff", "1s"],
    )?;
    checked_apply(
        &cluster,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crasher}\nspec: {containers: [{name: c, image: trap}]}\n",
    )?;
    flotilla_e2e::wait_until(SETTLE, "three restarts", || {
        let restarts = cluster.field("pod/crasher", ".status.containerStatuses[0].restartCount");
        Ok(restarts.parse::<u32>().unwrap_or(0) >= 3)
    })?;
    let message = cluster.field(
        "pod/crasher",
        ".status.containerStatuses[0].state.waiting.message",
    );
    let reason = cluster.field(
        "pod/crasher",
        ".status.containerStatuses[0].state.waiting.reason",
    );
    if reason == "CrashLoopBackOff" {
        assert!(message.contains("back-off"), "{message}");
    }
    Ok(())
}

#[test]
fn node_stats_show_each_pods_cpu_and_memory_and_node_info_names_wasmtime() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked_apply(
        &cluster,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: busy}\nspec: {containers: [{name: spin, image: spin, resources: {limits: {cpu: 200m}}}]}\n",
    )?;
    cluster.wait_for_field(
        "pod/busy",
        ".status.containerStatuses[0].ready",
        "true",
        SETTLE,
    )?;
    let summary = |cluster: &Cluster| -> anyhow::Result<serde_json::Value> {
        let raw =
            cluster.kubectl_ok(&["get", "--raw", "/api/v1/nodes/node-1/proxy/stats/summary"])?;
        Ok(serde_json::from_str(&raw)?)
    };
    let cpu_of_busy = |summary: &serde_json::Value| {
        summary["pods"]
            .as_array()
            .and_then(|pods| pods.iter().find(|p| p["podRef"]["name"] == "busy"))
            .map(|pod| {
                (
                    pod["containers"][0]["cpu"]["usageCoreNanoSeconds"]
                        .as_u64()
                        .unwrap_or(0),
                    pod["memory"]["workingSetBytes"].as_u64().unwrap_or(0),
                )
            })
    };
    let first = summary(&cluster)?;
    assert_eq!(first["node"]["nodeName"], "node-1");
    assert!(
        first["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    let (cpu_before, memory) = cpu_of_busy(&first).expect("busy pod in the summary");
    assert!(memory > 0, "{first}");
    flotilla_e2e::wait_until(SETTLE, "the busy pod's CPU time to grow", || {
        let later = summary(&cluster)?;
        Ok(cpu_of_busy(&later).is_some_and(|(cpu, _)| cpu > cpu_before))
    })?;

    let runtime = cluster.field("node/node-1", ".status.nodeInfo.containerRuntimeVersion");
    assert!(runtime.starts_with("wasmtime://48."), "{runtime}");
    assert_eq!(
        cluster.field(
            "node/node-1",
            ".status.conditions[?(@.type==\"MemoryPressure\")].reason"
        ),
        "KubeletHasSufficientMemory"
    );
    Ok(())
}
