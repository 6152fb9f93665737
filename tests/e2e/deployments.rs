//! Deployments, ReplicaSets and ReplicationControllers keep their pods: replacement, scaling,
//! rolling and Recreate updates, undo, pause, a restart of the whole control plane mid-rollout,
//! and the garbage collector's cascading deletes.

use crate::SETTLE;
use anyhow::{Context, Result};
use flotilla_e2e::{Background, Cluster, wait_until};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A Deployment of the long-running `ticker` module.
fn deployment(name: &str, replicas: u32, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
{extra_spec}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: ticker
          args: ["1000"]
"#
    )
}

fn apply(cluster: &Cluster, yaml: &str) -> Result<String> {
    flotilla_e2e::checked(
        cluster.kubectl_with_input(&["apply", "-f", "-"], Some(yaml)),
        "kubectl apply",
    )
}

/// The pods of a label selector, as JSON.
fn pods(cluster: &Cluster, selector: &str) -> Result<Vec<Value>> {
    let out = cluster.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"])?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

fn is_ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Waits until exactly `count` pods of `selector` are Running (and none is starting).
fn wait_for_running(cluster: &Cluster, selector: &str, count: usize) -> Result<Vec<Value>> {
    let mut last = Vec::new();
    wait_until(
        SETTLE,
        &format!("{count} running pods of {selector}"),
        || {
            last = pods(cluster, selector)?
                .into_iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .collect();
            Ok(last.len() == count && last.iter().all(is_running))
        },
    )?;
    Ok(last)
}

fn names(pods: &[Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn rollout_status(cluster: &Cluster, name: &str) -> Result<String> {
    cluster
        .kubectl_ok(&[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=60s",
        ])
        .map_err(|error| {
            // What the cluster looked like when the rollout stalled, for the post-mortem.
            let state = cluster
                .kubectl(&["get", "deployments,replicasets,pods", "-o", "wide"])
                .stdout;
            let pods = cluster
                .kubectl(&[
                    "get",
                    "pods",
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.conditions} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
                ])
                .stdout;
            error.context(format!(
                "cluster state:\n{}\npods:\n{}",
                String::from_utf8_lossy(&state),
                String::from_utf8_lossy(&pods)
            ))
        })
}

/// A `kubectl get pods --watch` running in the background, recording every event.
struct PodWatch {
    process: Background,
    path: std::path::PathBuf,
}

impl PodWatch {
    fn start(cluster: &Cluster, selector: &str) -> Result<PodWatch> {
        let path = cluster
            .dir
            .path()
            .join(format!("watch-{}.json", rand_suffix()));
        let output = std::fs::File::create(&path)?;
        let child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args([
                "get",
                "pods",
                "-l",
                selector,
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ])
            .stdout(output)
            .stderr(Stdio::null())
            .spawn()
            .context("starting kubectl get --watch")?;
        Ok(PodWatch {
            process: Background(child),
            path,
        })
    }

    /// Stops the watch and returns its events in order, as (type, pod).
    fn stop(self) -> Result<Vec<(String, Value)>> {
        self.process.kill()?;
        let text = std::fs::read_to_string(&self.path)?;
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map(|event| {
                let event = event?;
                Ok((
                    event["type"].as_str().unwrap_or_default().to_string(),
                    event["object"].clone(),
                ))
            })
            .collect()
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Replays watch events and returns the fewest ready pods seen once `baseline` were ready.
fn fewest_ready(events: &[(String, Value)], baseline: usize) -> Option<usize> {
    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    let mut fewest: Option<usize> = None;
    for (kind, pod) in events {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if kind == "DELETED" {
            ready.remove(&name);
        } else {
            ready.insert(name, is_ready(pod));
        }
        let count = ready.values().filter(|r| **r).count();
        if fewest.is_some() || count >= baseline {
            fewest = Some(fewest.map_or(count, |f| f.min(count)));
        }
    }
    fewest
}

#[test]
fn deleted_pods_are_replaced_and_scaling_follows_replicas() -> Result<()> {
    let cluster = Cluster::start(2)?;
    apply(&cluster, &deployment("web", 3, ""))?;
    let first = wait_for_running(&cluster, "app=web", 3)?;
    let victim = first[0]["metadata"]["name"].as_str().unwrap().to_string();
    cluster.kubectl_ok(&["delete", "pod", &victim, "--wait=false"])?;
    let replaced = wait_for_running(&cluster, "app=web", 3)?;
    assert!(
        !names(&replaced).contains(&victim),
        "the deleted pod came back"
    );
    let all = cluster.kubectl_ok(&["get", "all", "-o", "name"])?;
    assert!(
        all.contains("deployment.apps/web") && all.contains("replicaset.apps/web-"),
        "kubectl get all: {all}"
    );
    for pod in &replaced {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["controller"], true);
    }

    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=10"])?;
    wait_for_running(&cluster, "app=web", 10)?;
    rollout_status(&cluster, "web")?;
    assert_eq!(
        cluster.field("deployment/web", ".status.readyReplicas"),
        "10"
    );
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=0"])?;
    wait_until(SETTLE, "every pod of web to be gone", || {
        Ok(pods(&cluster, "app=web")?.is_empty())
    })?;

    let events = cluster.kubectl_ok(&["get", "events", "-o", "json"])?;
    let events: Value = serde_json::from_str(&events)?;
    let reasons: BTreeSet<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for reason in [
        "ScalingReplicaSet",
        "SuccessfulCreate",
        "SuccessfulDelete",
        "Scheduled",
    ] {
        assert!(
            reasons.contains(reason),
            "no {reason} event among {reasons:?}"
        );
    }
    Ok(())
}

#[test]
fn a_rolling_update_keeps_enough_pods_ready_and_ends_with_only_new_pods() -> Result<()> {
    let cluster = Cluster::start(2)?;
    // maxUnavailable 25% of 10 rounds down to 2; maxSurge 25% rounds up to 3.
    apply(&cluster, &deployment("roll", 10, ""))?;
    wait_for_running(&cluster, "app=roll", 10)?;
    rollout_status(&cluster, "roll")?;
    let old_hash = cluster.field(
        "deployment/roll",
        ".metadata.annotations.deployment\\.kubernetes\\.io/revision",
    );
    assert_eq!(old_hash, "1");

    let watch = PodWatch::start(&cluster, "app=roll")?;
    // Let the watch list the ten ready pods before the update starts.
    std::thread::sleep(Duration::from_millis(500));
    cluster.kubectl_ok(&[
        "patch",
        "deployment/roll",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"version":"2"}}}}}"#,
    ])?;
    let status = rollout_status(&cluster, "roll")?;
    assert!(status.contains("successfully rolled out"), "{status}");
    wait_for_running(&cluster, "app=roll", 10)?;
    std::thread::sleep(Duration::from_millis(500));
    let events = watch.stop()?;

    let fewest = fewest_ready(&events, 10).context("the watch never saw 10 ready pods")?;
    assert!(
        fewest >= 8,
        "only {fewest} pods were ready at one point (maxUnavailable is 2)"
    );
    let saw_new = events
        .iter()
        .any(|(_, p)| p["metadata"]["annotations"]["version"] == "2");
    assert!(saw_new, "the watch saw no pod of the new template");

    let pods = pods(&cluster, "app=roll")?;
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(live.len(), 10);
    assert!(
        live.iter()
            .all(|p| p["metadata"]["annotations"]["version"] == "2"),
        "old pods are left"
    );
    assert_eq!(
        cluster.field(
            "deployment/roll",
            ".metadata.annotations.deployment\\.kubernetes\\.io/revision"
        ),
        "2"
    );
    assert_eq!(
        cluster.field("deployment/roll", ".status.updatedReplicas"),
        "10"
    );
    let replica_sets = cluster.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        "app=roll",
        "-o",
        "jsonpath={.items[*].spec.replicas}",
    ])?;
    let mut counts: Vec<&str> = replica_sets.split_whitespace().collect();
    counts.sort();
    assert_eq!(
        counts,
        ["0", "10"],
        "the old ReplicaSet is kept, scaled to 0, for undo"
    );
    Ok(())
}

#[test]
fn rollout_undo_brings_back_the_previous_replica_set_and_history_is_limited() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(
        &cluster,
        &deployment("undo", 2, "  revisionHistoryLimit: 1"),
    )?;
    rollout_status(&cluster, "undo")?;
    let first_rs = cluster.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        "app=undo",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ])?;
    for version in ["2", "3"] {
        cluster.kubectl_ok(&[
            "patch",
            "deployment/undo",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"template":{{"metadata":{{"annotations":{{"version":"{version}"}}}}}}}}}}"#),
        ])?;
        rollout_status(&cluster, "undo")?;
    }
    // One old ReplicaSet is kept besides the current one: the first is gone.
    wait_until(SETTLE, "history to be pruned to one old ReplicaSet", || {
        let names = cluster.kubectl_ok(&["get", "rs", "-l", "app=undo", "-o", "name"])?;
        Ok(names.lines().count() == 2 && !names.contains(&first_rs))
    })?;
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/undo"])?;
    assert!(history.contains('2') && history.contains('3'), "{history}");

    cluster.kubectl_ok(&["rollout", "undo", "deployment/undo"])?;
    rollout_status(&cluster, "undo")?;
    let live = wait_for_running(&cluster, "app=undo", 2)?;
    assert!(
        live.iter()
            .all(|p| p["metadata"]["annotations"]["version"] == "2"),
        "undo did not bring back version 2"
    );
    assert_eq!(
        cluster.field(
            "deployment/undo",
            ".metadata.annotations.deployment\\.kubernetes\\.io/revision"
        ),
        "4",
        "the brought-back ReplicaSet becomes the next revision"
    );
    let rs_count = cluster.kubectl_ok(&["get", "rs", "-l", "app=undo", "-o", "name"])?;
    assert_eq!(
        rs_count.lines().count(),
        2,
        "undo reuses the old ReplicaSet: {rs_count}"
    );
    Ok(())
}

#[test]
fn recreate_stops_every_old_pod_before_starting_new_ones() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(
        &cluster,
        &deployment("recreate", 3, "  strategy: {type: Recreate}"),
    )?;
    rollout_status(&cluster, "recreate")?;
    let watch = PodWatch::start(&cluster, "app=recreate")?;
    std::thread::sleep(Duration::from_millis(500));
    cluster.kubectl_ok(&[
        "patch",
        "deployment/recreate",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"version":"2"}}}}}"#,
    ])?;
    rollout_status(&cluster, "recreate")?;
    wait_for_running(&cluster, "app=recreate", 3)?;
    let events = watch.stop()?;
    // Replay: no new pod may exist while an old one is still there (even terminating).
    let mut live: BTreeMap<String, bool> = BTreeMap::new();
    for (kind, pod) in &events {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let new = pod["metadata"]["annotations"]["version"] == "2";
        if kind == "DELETED" {
            live.remove(&name);
        } else {
            live.insert(name, new);
        }
        let (new_pods, old_pods) =
            live.values().fold(
                (0, 0),
                |(n, o), new| if *new { (n + 1, o) } else { (n, o + 1) },
            );
        assert!(
            new_pods == 0 || old_pods == 0,
            "old and new pods overlapped: {live:?}"
        );
    }
    assert_eq!(live.values().filter(|new| **new).count(), 3);
    Ok(())
}

#[test]
fn a_paused_deployment_waits_to_roll_out_until_resumed() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(&cluster, &deployment("paused", 2, ""))?;
    rollout_status(&cluster, "paused")?;
    cluster.kubectl_ok(&["rollout", "pause", "deployment/paused"])?;
    cluster.kubectl_ok(&[
        "patch",
        "deployment/paused",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"version":"2"}}}}}"#,
    ])?;
    cluster.wait_for_field(
        "deployment/paused",
        r#".status.conditions[?(@.type=="Progressing")].reason"#,
        "DeploymentPaused",
        SETTLE,
    )?;
    let rs = cluster.kubectl_ok(&["get", "rs", "-l", "app=paused", "-o", "name"])?;
    assert_eq!(
        rs.lines().count(),
        1,
        "a paused Deployment created a ReplicaSet: {rs}"
    );
    cluster.kubectl_ok(&["rollout", "resume", "deployment/paused"])?;
    rollout_status(&cluster, "paused")?;
    let live = wait_for_running(&cluster, "app=paused", 2)?;
    assert!(
        live.iter()
            .all(|p| p["metadata"]["annotations"]["version"] == "2")
    );
    Ok(())
}

#[test]
fn a_rollout_completes_across_a_control_plane_restart() -> Result<()> {
    let mut cluster = Cluster::start(0)?;
    let _a = cluster.join_node("node-a", &["--lease-renew-interval", "1s"])?;
    let _b = cluster.join_node("node-b", &["--lease-renew-interval", "1s"])?;
    apply(&cluster, &deployment("restart", 6, "  minReadySeconds: 1"))?;
    rollout_status(&cluster, "restart")?;
    cluster.kubectl_ok(&[
        "patch",
        "deployment/restart",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"version":"2"}}}}}"#,
    ])?;
    // minReadySeconds keeps the rollout going for a few seconds: restart in the middle of it.
    wait_until(SETTLE, "the rollout to start", || {
        Ok(
            cluster.field("deployment/restart", ".status.updatedReplicas") != "0"
                && !cluster
                    .field("deployment/restart", ".status.updatedReplicas")
                    .is_empty(),
        )
    })?;
    let updated_before = cluster.field("deployment/restart", ".status.updatedReplicas");
    cluster.kill_and_restart(0)?;
    let status = rollout_status(&cluster, "restart")?;
    assert!(status.contains("successfully rolled out"), "{status}");
    let live = wait_for_running(&cluster, "app=restart", 6)?;
    assert!(
        live.iter()
            .all(|p| p["metadata"]["annotations"]["version"] == "2"),
        "old pods are left after the restart (updated before restart: {updated_before})"
    );
    Ok(())
}

#[test]
fn a_replication_controller_keeps_its_replicas() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(
        &cluster,
        r#"apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  selector: {app: legacy}
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
        - name: app
          image: ticker
          args: ["1000"]
"#,
    )?;
    let first = wait_for_running(&cluster, "app=legacy", 2)?;
    let victim = first[0]["metadata"]["name"].as_str().unwrap().to_string();
    cluster.kubectl_ok(&["delete", "pod", &victim, "--wait=false"])?;
    let replaced = wait_for_running(&cluster, "app=legacy", 2)?;
    assert!(!names(&replaced).contains(&victim));
    cluster.kubectl_ok(&["scale", "rc/legacy", "--replicas=3"])?;
    wait_for_running(&cluster, "app=legacy", 3)?;
    assert_eq!(cluster.field("rc/legacy", ".status.readyReplicas"), "3");
    cluster.kubectl_ok(&["delete", "rc/legacy"])?;
    wait_until(SETTLE, "the RC's pods to be collected", || {
        Ok(pods(&cluster, "app=legacy")?.is_empty())
    })?;
    Ok(())
}

#[test]
fn cascading_deletes_follow_the_propagation_policy() -> Result<()> {
    let cluster = Cluster::start(1)?;
    // Orphan: the ReplicaSet and its pods stay, without an owner, and a new Deployment with
    // the same selector adopts them instead of starting new pods.
    apply(&cluster, &deployment("cascade", 2, ""))?;
    rollout_status(&cluster, "cascade")?;
    let pods_before = names(&wait_for_running(&cluster, "app=cascade", 2)?);
    cluster.kubectl_ok(&["delete", "deployment/cascade", "--cascade=orphan"])?;
    wait_until(SETTLE, "the Deployment to be gone", || {
        Ok(!cluster
            .kubectl(&["get", "deployment/cascade"])
            .status
            .success())
    })?;
    let owners = cluster.kubectl_ok(&[
        "get",
        "rs",
        "-l",
        "app=cascade",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences[*].kind}",
    ])?;
    assert!(
        owners.trim().is_empty(),
        "the orphaned ReplicaSet still has owners: {owners}"
    );
    assert_eq!(
        names(&wait_for_running(&cluster, "app=cascade", 2)?),
        pods_before
    );
    apply(&cluster, &deployment("cascade", 2, ""))?;
    rollout_status(&cluster, "cascade")?;
    wait_until(SETTLE, "the ReplicaSet to be adopted", || {
        Ok(cluster.kubectl_ok(&[
            "get",
            "rs",
            "-l",
            "app=cascade",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences[0].kind}",
        ])? == "Deployment")
    })?;
    assert_eq!(
        names(&wait_for_running(&cluster, "app=cascade", 2)?),
        pods_before,
        "adoption replaced pods"
    );

    // Foreground: the Deployment stays (with a deletionTimestamp) until its pods are gone.
    cluster.kubectl_ok(&[
        "delete",
        "deployment/cascade",
        "--cascade=foreground",
        "--wait=false",
    ])?;
    let finalizers = cluster.field("deployment/cascade", ".metadata.finalizers");
    wait_until(SETTLE, "the foreground deletion to finish", || {
        Ok(!cluster
            .kubectl(&["get", "deployment/cascade"])
            .status
            .success())
    })?;
    assert!(
        pods(&cluster, "app=cascade")?.is_empty(),
        "pods outlived a foreground deletion"
    );
    assert!(
        cluster
            .kubectl_ok(&["get", "rs", "-l", "app=cascade", "-o", "name"])?
            .trim()
            .is_empty(),
        "a ReplicaSet outlived a foreground deletion"
    );
    // Whoever looked first may have seen the object already gone; if not, it held the finalizer.
    assert!(
        finalizers.is_empty() || finalizers.contains("foregroundDeletion"),
        "{finalizers}"
    );

    // Background (kubectl's default): everything goes.
    apply(&cluster, &deployment("cascade", 2, ""))?;
    rollout_status(&cluster, "cascade")?;
    cluster.kubectl_ok(&["delete", "deployment/cascade"])?;
    wait_until(SETTLE, "the dependents to be collected", || {
        Ok(pods(&cluster, "app=cascade")?.is_empty()
            && cluster
                .kubectl_ok(&["get", "rs", "-l", "app=cascade", "-o", "name"])?
                .trim()
                .is_empty())
    })?;
    Ok(())
}

#[test]
fn pods_of_a_killed_node_agent_are_replaced_on_the_other_nodes() -> Result<()> {
    let cluster = Cluster::start_with(
        0,
        &["--node-grace-period", "5s", "--pod-eviction-timeout", "5s"],
    )?;
    let renew = ["--lease-renew-interval", "1s"];
    let _a = cluster.join_node("node-a", &renew)?;
    let _b = cluster.join_node("node-b", &renew)?;
    let c = cluster.join_node("node-c", &renew)?;
    apply(&cluster, &deployment("failover", 6, ""))?;
    let placed = wait_for_running(&cluster, "app=failover", 6)?;
    let on_c: BTreeSet<String> = names(
        &placed
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == "node-c")
            .collect::<Vec<_>>(),
    );
    assert!(!on_c.is_empty(), "the scheduler put nothing on node-c");

    c.kill()?;
    // The issue's bound: all 6 Running on the surviving nodes within 30 s of the kill.
    wait_until(
        Duration::from_secs(30),
        "6 pods Running on node-a and node-b",
        || {
            let healthy = pods(&cluster, "app=failover")?
                .into_iter()
                .filter(|p| is_running(p) && p["spec"]["nodeName"] != "node-c")
                .count();
            Ok(healthy == 6)
        },
    )?;
    assert_eq!(
        cluster.field(
            "node/node-c",
            r#".status.conditions[?(@.type=="Ready")].status"#
        ),
        "Unknown"
    );
    let taints = cluster.field("node/node-c", ".spec.taints[*].key");
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "taints: {taints}"
    );
    let nodes = cluster.kubectl_ok(&["get", "nodes"])?;
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("node-c") && l.contains("NotReady")),
        "{nodes}"
    );
    // The evicted pods are terminating, not running: no replica is counted twice.
    for pod in pods(&cluster, "app=failover")? {
        if on_c.contains(pod["metadata"]["name"].as_str().unwrap_or_default()) {
            assert!(!pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
        }
    }
    Ok(())
}

/// Starts `flotilla controller-manager` against `cluster`, logging to `NAME.log` in its
/// directory.
fn controller_manager(cluster: &Cluster, name: &str, extra: &[&str]) -> Result<Background> {
    let log = std::fs::File::create(cluster.dir.path().join(format!("{name}.log")))?;
    Ok(Background(
        Command::new(flotilla_e2e::flotilla_bin())
            .arg("controller-manager")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting flotilla controller-manager")?,
    ))
}

/// Who holds the controller manager's leader Lease ("" when nobody, or no Lease yet).
fn leader(cluster: &Cluster) -> String {
    let out = cluster.kubectl(&[
        "get",
        "lease/flotilla-controller-manager",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_separate_controller_manager_rides_out_an_apiserver_restart() -> Result<()> {
    let mut cluster = Cluster::start_with(0, &["--no-controllers"])?;
    let _node = cluster.join_node("node-a", &["--lease-renew-interval", "1s"])?;
    let _manager = controller_manager(&cluster, "controller-manager", &[])?;
    apply(&cluster, &deployment("survivor", 3, "  minReadySeconds: 1"))?;
    rollout_status(&cluster, "survivor")?;
    cluster.kubectl_ok(&[
        "patch",
        "deployment/survivor",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"version":"2"}}}}}"#,
    ])?;
    // The apiserver (and store) go down mid-rollout; the controller manager keeps running,
    // its watches fail, and it must relist and finish the job once the apiserver is back.
    cluster.kill_and_restart(0)?;
    let status = rollout_status(&cluster, "survivor")?;
    assert!(status.contains("successfully rolled out"), "{status}");
    let live = wait_for_running(&cluster, "app=survivor", 3)?;
    assert!(
        live.iter()
            .all(|p| p["metadata"]["annotations"]["version"] == "2")
    );
    // After the restart, a change is still acted on: the manager's watches resumed.
    cluster.kubectl_ok(&["scale", "deployment/survivor", "--replicas=5"])?;
    wait_for_running(&cluster, "app=survivor", 5)?;
    Ok(())
}

#[test]
fn a_rollout_that_cannot_progress_reports_its_deadline_exceeded() -> Result<()> {
    let cluster = Cluster::start(1)?;
    let manifest = deployment("stuck", 2, "  progressDeadlineSeconds: 2")
        .replace("image: ticker", "image: no-such-module");
    apply(&cluster, &manifest)?;
    let out = cluster.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    assert!(
        !out.status.success(),
        "rollout status succeeded for a module that does not exist"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
    assert_eq!(
        cluster.field(
            "deployment/stuck",
            r#".status.conditions[?(@.type=="Progressing")].reason"#
        ),
        "ProgressDeadlineExceeded"
    );
    assert_eq!(
        cluster.field(
            "deployment/stuck",
            r#".status.conditions[?(@.type=="Available")].status"#
        ),
        "False"
    );
    Ok(())
}

#[test]
fn a_standby_controller_manager_takes_over_when_the_leader_dies() -> Result<()> {
    let cluster = Cluster::start_with(0, &["--no-controllers"])?;
    let _node = cluster.join_node("node-a", &["--lease-renew-interval", "1s"])?;
    let lease = ["--leader-elect-lease-duration", "2s"];
    let first = controller_manager(&cluster, "manager-1", &lease)?;
    let mut first_identity = String::new();
    wait_until(SETTLE, "the first controller manager to lead", || {
        first_identity = leader(&cluster);
        Ok(!first_identity.is_empty())
    })?;
    let _second = controller_manager(&cluster, "manager-2", &lease)?;
    apply(&cluster, &deployment("ha", 2, ""))?;
    rollout_status(&cluster, "ha")?;
    // Several renewals later the leader is unchanged: the standby waits instead of acting.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(leader(&cluster), first_identity);
    let standby_log = std::fs::read_to_string(cluster.dir.path().join("manager-2.log"))?;
    assert!(!standby_log.contains("became the leader"), "{standby_log}");

    first.kill()?;
    wait_until(SETTLE, "the standby to take the Lease", || {
        let now = leader(&cluster);
        Ok(!now.is_empty() && now != first_identity)
    })?;
    cluster.kubectl_ok(&["scale", "deployment/ha", "--replicas=4"])?;
    wait_for_running(&cluster, "app=ha", 4)?;
    Ok(())
}
