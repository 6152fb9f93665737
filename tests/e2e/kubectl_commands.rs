//! kubectl's everyday reading and housekeeping commands: `get` in every output format and with
//! selectors, across namespaces and as a watch; `describe` with events; `label`, `annotate`;
//! `delete` by label, with `--wait` and each cascade; `logs` of a Deployment; `rollout restart`.

use crate::SETTLE;
use anyhow::{Context, Result};
use flotilla_e2e::{Cluster, checked, wait_until};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

fn ticker_pod(name: &str, namespace: &str, tier: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{tier: {tier}}}
spec:
  containers:
    - name: app
      image: ticker
      args: ["200"]
"#
    )
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: ticker
          args: ["200"]
"#
    )
}

fn apply(cluster: &Cluster, yaml: &str) -> Result<String> {
    checked(
        cluster.kubectl_with_input(&["apply", "-f", "-"], Some(yaml)),
        "kubectl apply",
    )
}

#[test]
fn get_in_every_format_with_selectors_and_namespaces() -> Result<()> {
    let cluster = Cluster::start(1)?;
    let created = cluster.kubectl_ok(&["create", "namespace", "team"])?;
    assert!(created.contains("namespace/team created"), "{created}");
    // Both `kubectl create` generators send protobuf bodies.
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=color=blue",
    ])?;
    let color = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "team",
        "-o",
        "jsonpath={.data.color}",
    ])?;
    assert_eq!(color, "blue");
    apply(&cluster, &ticker_pod("a", "team", "front"))?;
    apply(&cluster, &ticker_pod("b", "team", "back"))?;
    apply(&cluster, &ticker_pod("c", "default", "front"))?;
    wait_until(SETTLE, "pods a and b running", || {
        let phases = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "team",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ])?;
        Ok(phases == "Running Running")
    })?;

    let names = cluster.kubectl_ok(&["get", "pods", "-n", "team", "-o", "name"])?;
    assert_eq!(names.lines().collect::<Vec<_>>(), ["pod/a", "pod/b"]);
    let front = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "team",
        "-l",
        "tier=front",
        "-o",
        "name",
    ])?;
    assert_eq!(front.trim(), "pod/a");
    let by_field = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "team",
        "--field-selector",
        "metadata.name=b",
        "-o",
        "name",
    ])?;
    assert_eq!(by_field.trim(), "pod/b");
    let running = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
    ])?;
    assert_eq!(running.lines().count(), 3, "{running}");
    let jsonpath = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "team",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])?;
    assert_eq!(jsonpath, "a b");

    // The server's Table: the columns kubectl users know.
    let table = cluster.kubectl_ok(&["get", "pods", "-A"])?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("team ") && l.contains("Running"))
    );
    let wide = cluster.kubectl_ok(&["get", "pods", "-n", "team", "-o", "wide"])?;
    assert!(
        wide.lines().next().unwrap_or_default().contains("NODE"),
        "{wide}"
    );
    assert!(
        wide.lines().nth(1).unwrap_or_default().contains("node-1"),
        "{wide}"
    );
    let nodes = cluster.kubectl_ok(&["get", "nodes"])?;
    let header: Vec<&str> = nodes
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let yaml = cluster.kubectl_ok(&["get", "pod", "a", "-n", "team", "-o", "yaml"])?;
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("tier: front"),
        "{yaml}"
    );
    let events = cluster.kubectl_ok(&["get", "events", "-n", "team"])?;
    assert!(
        events.contains("Scheduled") && events.contains("pod/a"),
        "{events}"
    );
    Ok(())
}

#[test]
fn a_watch_prints_each_change_with_its_event_type() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(&cluster, &ticker_pod("watched", "default", "front"))?;
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["get", "pods", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = BufReader::new(watch.stdout.take().context("stdout")?);
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    let seen = |event: &str| {
        lines
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.starts_with(event) && l.contains("watched"))
    };
    let outcome = (|| {
        wait_until(SETTLE, "ADDED in the watch", || Ok(seen("ADDED")))?;
        cluster.kubectl_ok(&["label", "pod", "watched", "seen=yes"])?;
        wait_until(SETTLE, "MODIFIED in the watch", || Ok(seen("MODIFIED")))?;
        cluster.kubectl_ok(&["delete", "pod", "watched", "--wait=false"])?;
        wait_until(SETTLE, "DELETED in the watch", || Ok(seen("DELETED")))
    })();
    let _ = watch.kill();
    let _ = watch.wait();
    outcome.with_context(|| format!("watch printed {:?}", lines.lock().expect("lock")))
}

#[test]
fn describe_shows_state_and_events() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(&cluster, &deployment("shown", 2))?;
    cluster.kubectl_ok(&["rollout", "status", "deployment/shown", "--timeout=60s"])?;
    let deployment = cluster.kubectl_ok(&["describe", "deployment", "shown"])?;
    for expected in [
        "Replicas:",
        "2 desired",
        "NewReplicaSet:",
        "ScalingReplicaSet",
    ] {
        assert!(deployment.contains(expected), "{expected} in {deployment}");
    }
    let pod = cluster
        .kubectl_ok(&["get", "pods", "-l", "app=shown", "-o", "name"])?
        .lines()
        .next()
        .context("a pod")?
        .to_string();
    let described = cluster.kubectl_ok(&["describe", &pod])?;
    for expected in [
        "Status:",
        "Running",
        "Node:",
        "node-1",
        "Events:",
        "Scheduled",
        "Started",
    ] {
        assert!(described.contains(expected), "{expected} in {described}");
    }
    let node = cluster.kubectl_ok(&["describe", "node", "node-1"])?;
    for expected in ["Ready", "Non-terminated Pods:", "shown-"] {
        assert!(node.contains(expected), "{expected} in {node}");
    }
    Ok(())
}

#[test]
fn label_annotate_and_delete_by_label_and_cascade() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(&cluster, &ticker_pod("p1", "default", "alpha"))?;
    apply(&cluster, &ticker_pod("p2", "default", "beta"))?;
    cluster.kubectl_ok(&["label", "pod", "p1", "tier=gamma", "--overwrite"])?;
    cluster.kubectl_ok(&["annotate", "pod", "p1", "note=hello"])?;
    assert_eq!(cluster.field("pod/p1", ".metadata.labels.tier"), "gamma");
    assert_eq!(
        cluster.field("pod/p1", ".metadata.annotations.note"),
        "hello"
    );
    let clash = cluster.kubectl(&["label", "pod", "p1", "tier=delta"]);
    assert!(
        !clash.status.success(),
        "a label is not overwritten without --overwrite"
    );

    // `--wait` (the default) returns once the pods are gone, not just marked.
    cluster.kubectl_ok(&["delete", "pods", "-l", "tier in (gamma,beta)"])?;
    let left = cluster.kubectl_ok(&["get", "pods", "-o", "name"])?;
    assert_eq!(left.trim(), "", "{left}");

    // Each cascade, on a Deployment.
    for (cascade, pods_remain) in [
        ("orphan", true),
        ("foreground", false),
        ("background", false),
    ] {
        let name = format!("cascade-{cascade}");
        apply(&cluster, &deployment(&name, 2))?;
        cluster.kubectl_ok(&[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=60s",
        ])?;
        cluster.kubectl_ok(&[
            "delete",
            &format!("deployment/{name}"),
            &format!("--cascade={cascade}"),
        ])?;
        let selector = format!("app={name}");
        if pods_remain {
            let pods = cluster.kubectl_ok(&["get", "pods", "-l", &selector, "-o", "name"])?;
            assert_eq!(pods.lines().count(), 2, "orphaned pods stay: {pods}");
            cluster.kubectl_ok(&["delete", "rs,pods", "-l", &selector])?;
        } else {
            wait_until(
                SETTLE,
                &format!("{cascade} cascade removes the pods"),
                || {
                    Ok(cluster
                        .kubectl_ok(&["get", "rs,pods", "-l", &selector, "-o", "name"])?
                        .trim()
                        .is_empty())
                },
            )?;
        }
    }
    Ok(())
}

#[test]
fn logs_of_a_deployment_and_a_rollout_restart() -> Result<()> {
    let cluster = Cluster::start(1)?;
    apply(&cluster, &deployment("talker", 1))?;
    cluster.kubectl_ok(&["rollout", "status", "deployment/talker", "--timeout=60s"])?;
    wait_until(SETTLE, "two ticks in the log", || {
        Ok(cluster
            .kubectl_ok(&["logs", "deployment/talker"])?
            .lines()
            .count()
            >= 2)
    })?;
    let tail = cluster.kubectl_ok(&["logs", "deployment/talker", "--tail=1"])?;
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick"), "{tail}");

    cluster.kubectl_ok(&["rollout", "restart", "deployment/talker"])?;
    cluster.kubectl_ok(&["rollout", "status", "deployment/talker", "--timeout=60s"])?;
    let sets = cluster.kubectl_ok(&["get", "rs", "-l", "app=talker", "-o", "name"])?;
    assert_eq!(
        sets.lines().count(),
        2,
        "a restart makes a new ReplicaSet: {sets}"
    );
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/talker"])?;
    assert!(history.contains('2'), "{history}");
    Ok(())
}
