//! Jobs run pods to completion, give up after `backoffLimit` failures or past
//! `activeDeadlineSeconds`; a DaemonSet runs one pod on every node and replaces a deleted one
//! on the same node.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, wait_until};
use std::collections::BTreeSet;

/// The pods of a Job as (name, phase, node), via the label its generated selector uses.
fn pods_with(cluster: &Cluster, selector: &str) -> anyhow::Result<Vec<[String; 3]>> {
    let json = cluster.kubectl_ok(&["get", "pods", "-l", selector, "-o", "json"])?;
    let list: serde_json::Value = serde_json::from_str(&json)?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            [
                text(&p["metadata"]["name"]),
                text(&p["status"]["phase"]),
                text(&p["spec"]["nodeName"]),
            ]
        })
        .collect())
}

/// Waits with `kubectl wait` for a Job condition (`complete` or `failed`).
fn wait_for_condition(cluster: &Cluster, job: &str, condition: &str) -> anyhow::Result<()> {
    cluster.kubectl_ok(&[
        "wait",
        &format!("--for=condition={condition}"),
        &format!("job/{job}"),
        "--timeout=60s",
    ])?;
    Ok(())
}

fn job(name: &str, spec: &str, container: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n{spec}  template:\n    spec:\n      restartPolicy: Never\n      containers: [{container}]\n"
    )
}

#[test]
fn jobs_complete_fail_after_their_backoff_limit_and_stop_at_their_deadline() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;

    // (a) Three completions, two at a time.
    checked_apply(
        &cluster,
        &job(
            "three",
            "  completions: 3\n  parallelism: 2\n",
            "{name: hello, image: hello}",
        ),
    )?;
    // (b) A module that always fails, retried once.
    checked_apply(
        &cluster,
        &job(
            "failing",
            "  backoffLimit: 1\n",
            r#"{name: fail, image: exit-code, args: ["3"]}"#,
        ),
    )?;
    // (c) A module that never ends, stopped after 2 seconds.
    checked_apply(
        &cluster,
        &job(
            "late",
            "  activeDeadlineSeconds: 2\n",
            "{name: ticker, image: ticker}",
        ),
    )?;

    wait_for_condition(&cluster, "three", "complete")?;
    assert_eq!(cluster.field("job/three", ".status.succeeded"), "3");
    assert!(
        !cluster
            .field("job/three", ".status.completionTime")
            .is_empty(),
        "a complete Job has a completionTime"
    );
    assert_eq!(
        cluster.field(
            "job/three",
            r#".status.conditions[?(@.type=="SuccessCriteriaMet")].status"#
        ),
        "True"
    );
    let pods = pods_with(&cluster, "job-name=three")?;
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(
        pods.iter().all(|[_, phase, _]| phase == "Succeeded"),
        "{pods:?}"
    );

    wait_for_condition(&cluster, "late", "failed")?;
    assert_eq!(
        cluster.field(
            "job/late",
            r#".status.conditions[?(@.type=="Failed")].reason"#
        ),
        "DeadlineExceeded"
    );
    wait_until(SETTLE, "the late Job's pods to be deleted", || {
        Ok(pods_with(&cluster, "job-name=late")?.is_empty())
    })?;

    // The failed pod is retried after Kubernetes' 10 s back-off.
    wait_for_condition(&cluster, "failing", "failed")?;
    assert_eq!(
        cluster.field(
            "job/failing",
            r#".status.conditions[?(@.type=="Failed")].reason"#
        ),
        "BackoffLimitExceeded"
    );
    assert_eq!(
        cluster.field(
            "job/failing",
            r#".status.conditions[?(@.type=="FailureTarget")].status"#
        ),
        "True"
    );
    assert_eq!(cluster.field("job/failing", ".status.failed"), "2");
    let pods = pods_with(&cluster, "job-name=failing")?;
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        pods.iter().all(|[_, phase, _]| phase == "Failed"),
        "{pods:?}"
    );

    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Job",
        "-o",
        "custom-columns=NAME:.involvedObject.name,REASON:.reason",
        "--no-headers",
    ])?;
    for (job, reason) in [
        ("three", "SuccessfulCreate"),
        ("three", "Completed"),
        ("failing", "BackoffLimitExceeded"),
        ("late", "DeadlineExceeded"),
    ] {
        assert!(
            events.lines().any(|l| {
                let mut columns = l.split_whitespace();
                columns.next() == Some(job) && columns.next() == Some(reason)
            }),
            "no {reason} event for job {job}:\n{events}"
        );
    }
    Ok(())
}

#[test]
fn a_daemon_set_runs_one_pod_per_node_and_replaces_a_deleted_one_in_place() -> anyhow::Result<()> {
    let cluster = Cluster::start(2)?;
    let nodes: BTreeSet<String> = cluster
        .kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"])?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    checked_apply(
        &cluster,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: ticker, image: ticker}]}\n",
    )?;

    let running_on_every_node = |pods: &[[String; 3]]| {
        pods.len() == nodes.len()
            && pods.iter().all(|[_, phase, _]| phase == "Running")
            && pods
                .iter()
                .map(|[_, _, node]| node.clone())
                .collect::<BTreeSet<_>>()
                == nodes
    };
    let mut pods = Vec::new();
    wait_until(SETTLE, "one running agent pod on each node", || {
        pods = pods_with(&cluster, "app=agent")?;
        Ok(running_on_every_node(&pods))
    })
    .map_err(|e| e.context(format!("pods: {pods:?}")))?;
    cluster.wait_for_field("daemonset/agent", ".status.numberReady", "2", SETTLE)?;
    assert_eq!(
        cluster.field("daemonset/agent", ".status.desiredNumberScheduled"),
        "2"
    );
    assert_eq!(
        cluster.field("daemonset/agent", ".status.updatedNumberScheduled"),
        "2"
    );

    let [victim, _, node] = pods[0].clone();
    cluster.kubectl_ok(&["delete", "pod", &victim])?;
    wait_until(
        SETTLE,
        "the deleted agent pod to be replaced on its node",
        || {
            pods = pods_with(&cluster, "app=agent")?;
            Ok(running_on_every_node(&pods)
                && pods.iter().all(|[name, ..]| *name != victim)
                && pods.iter().any(|[_, _, n]| *n == node))
        },
    )
    .map_err(|e| e.context(format!("pods: {pods:?}")))?;
    Ok(())
}

#[test]
fn a_daemon_set_follows_nodes_as_they_join_and_leave() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked_apply(
        &cluster,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: follower}\nspec:\n  selector: {matchLabels: {app: follower}}\n  template:\n    metadata: {labels: {app: follower}}\n    spec: {containers: [{name: ticker, image: ticker}]}\n",
    )?;
    let on_nodes = |pods: &[[String; 3]]| -> BTreeSet<String> {
        pods.iter()
            .filter(|[_, phase, _]| phase == "Running")
            .map(|[_, _, node]| node.clone())
            .collect()
    };
    let mut pods = Vec::new();
    wait_until(SETTLE, "a follower pod on node-1", || {
        pods = pods_with(&cluster, "app=follower")?;
        Ok(on_nodes(&pods) == BTreeSet::from(["node-1".to_string()]))
    })
    .map_err(|e| e.context(format!("pods: {pods:?}")))?;

    let joined = cluster.join_node("edge", &[])?;
    wait_until(SETTLE, "a follower pod on the new node too", || {
        pods = pods_with(&cluster, "app=follower")?;
        Ok(pods.len() == 2
            && on_nodes(&pods) == BTreeSet::from(["node-1".to_string(), "edge".to_string()]))
    })
    .map_err(|e| e.context(format!("pods: {pods:?}")))?;

    // The node leaves for good: its agent stops and its Node object is deleted.
    joined.kill()?;
    cluster.kubectl_ok(&["delete", "node", "edge"])?;
    wait_until(SETTLE, "the departed node's pod to be gone", || {
        pods = pods_with(&cluster, "app=follower")?;
        Ok(pods.len() == 1 && on_nodes(&pods) == BTreeSet::from(["node-1".to_string()]))
    })
    .map_err(|e| e.context(format!("pods: {pods:?}")))?;
    cluster.wait_for_field(
        "daemonset/follower",
        ".status.desiredNumberScheduled",
        "1",
        SETTLE,
    )?;
    Ok(())
}
