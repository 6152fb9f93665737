//! Node lifecycle: a node agent that dies stops renewing its Lease, its Node turns NotReady and
//! tainted, its pods are evicted; when it comes back it deletes the evicted pods rather than
//! running them twice, and the taint goes. Pods bound to a deleted Node are garbage-collected.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, wait_until};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const READY: &str = r#".status.conditions[?(@.type=="Ready")].status"#;

/// Flags that make a silent node NotReady after 3 s and evict its pods 3 s later.
const FAST_LIFECYCLE: [&str; 4] = ["--node-grace-period", "3s", "--pod-eviction-timeout", "3s"];
const FAST_LEASE: [&str; 2] = ["--lease-renew-interval", "1s"];

/// A long-running ticker pod bound to `node` directly, with extra pod spec YAML.
fn ticker_on(cluster: &Cluster, name: &str, node: &str, extra: &str) -> anyhow::Result<()> {
    checked_apply(
        cluster,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{nodeName: {node}, containers: [{{name: ticker, image: ticker}}]{extra}}}\n"
        ),
    )?;
    Ok(())
}

/// Events as (involved object kind, name, reason, message).
fn events(cluster: &Cluster, namespace: &str) -> anyhow::Result<Vec<[String; 4]>> {
    let json = cluster.kubectl_ok(&["get", "events", "-n", namespace, "-o", "json"])?;
    let list: serde_json::Value = serde_json::from_str(&json)?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            [
                text(&e["involvedObject"]["kind"]),
                text(&e["involvedObject"]["name"]),
                text(&e["reason"]),
                text(&e["message"]),
            ]
        })
        .collect())
}

fn wait_for_event(
    cluster: &Cluster,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<String> {
    let mut message = String::new();
    wait_until(
        SETTLE,
        &format!("a {reason} event on {kind} {name}"),
        || {
            let found = events(cluster, namespace)?
                .into_iter()
                .find(|[k, n, r, _]| k == kind && n == name && r == reason);
            Ok(found.map(|[.., m]| message = m).is_some())
        },
    )?;
    Ok(message)
}

/// The pods labelled `app=APP`, as (name, node, terminating, ready).
fn pods_of(cluster: &Cluster, app: &str) -> anyhow::Result<Vec<(String, String, bool, bool)>> {
    let json = cluster.kubectl_ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"])?;
    let list: serde_json::Value = serde_json::from_str(&json)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["metadata"].get("deletionTimestamp").is_some(),
                ready,
            )
        })
        .collect())
}

fn wait_until_gone(cluster: &Cluster, object: &str) -> anyhow::Result<()> {
    wait_until(SETTLE, &format!("{object} to be deleted"), || {
        let out = cluster.kubectl(&["get", object]);
        Ok(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"))
    })
}

#[test]
fn a_dead_node_is_tainted_its_pods_evicted_and_it_comes_back_without_duplicates()
-> anyhow::Result<()> {
    let cluster = Cluster::start_with(0, &FAST_LIFECYCLE)?;
    let _node_a = cluster.join_node("node-a", &FAST_LEASE)?;
    let node_b = cluster.join_node("node-b", &FAST_LEASE)?;

    // Each agent holds a Lease named after its node, owned by the Node.
    let lease = cluster.kubectl_ok(&[
        "get",
        "lease",
        "node-b",
        "-n",
        "kube-node-lease",
        "-o",
        "jsonpath={.spec.holderIdentity} {.spec.leaseDurationSeconds} {.metadata.ownerReferences[0].kind}",
    ])?;
    assert_eq!(lease, "node-b 40 Node");

    // Spread over both nodes (the scheduler prefers the emptier one).
    checked_apply(
        &cluster,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: ticker, image: ticker}]}\n",
    )?;
    wait_until(SETTLE, "the ReplicaSet's pods to be ready", || {
        let pods = pods_of(&cluster, "web")?;
        Ok(pods.len() == 2 && pods.iter().all(|p| p.3))
    })?;
    let mut nodes: Vec<String> = pods_of(&cluster, "web")?.into_iter().map(|p| p.1).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);

    let evictable = ["tick-1", "tick-2", "tick-3"];
    for name in evictable {
        ticker_on(&cluster, name, "node-b", "")?;
    }
    // Tolerates the unreachable taint forever (as DaemonSet pods do): never evicted.
    ticker_on(
        &cluster,
        "tolerant",
        "node-b",
        &format!(", tolerations: [{{key: {UNREACHABLE}, operator: Exists, effect: NoExecute}}]"),
    )?;
    for name in evictable.iter().chain(&["tolerant"]) {
        cluster.wait_for_field(&format!("pod/{name}"), READY, "True", SETTLE)?;
    }

    // A pod deleted the ordinary way is stopped by its agent, which says so.
    ticker_on(&cluster, "short-lived", "node-a", "")?;
    cluster.wait_for_field("pod/short-lived", READY, "True", SETTLE)?;
    cluster.kubectl_ok(&["delete", "pod", "short-lived", "--wait=false"])?;
    wait_until_gone(&cluster, "pod/short-lived")?;
    let killing = wait_for_event(&cluster, "default", "Pod", "short-lived", "Killing")?;
    assert_eq!(killing, "Stopping container ticker");

    node_b.kill()?;

    cluster.wait_for_field("node/node-b", READY, "Unknown", SETTLE)?;
    assert_eq!(
        cluster.field(
            "node/node-b",
            r#".status.conditions[?(@.type=="Ready")].reason"#
        ),
        "NodeStatusUnknown"
    );
    cluster.wait_for_field(
        "node/node-b",
        r#".spec.taints[?(@.key=="node.kubernetes.io/unreachable")].effect"#,
        "NoSchedule NoExecute",
        SETTLE,
    )?;
    let table = cluster.kubectl_ok(&["get", "node", "node-b"])?;
    assert!(table.contains("NotReady"), "{table}");
    let message = wait_for_event(&cluster, "default", "Node", "node-b", "NodeNotReady")?;
    assert_eq!(message, "Node node-b status is now: NodeNotReady");
    // Nobody vouches for the pods of a silent node.
    cluster.wait_for_field("pod/tolerant", READY, "False", SETTLE)?;

    // Evicted: deleted gracefully, and Terminating for as long as nobody runs them.
    for name in evictable {
        let object = format!("pod/{name}");
        wait_until(
            SETTLE,
            &format!("{object} to be marked for deletion"),
            || {
                Ok(!cluster
                    .field(&object, ".metadata.deletionTimestamp")
                    .is_empty())
            },
        )?;
        let message = wait_for_event(&cluster, "default", "Pod", name, "TaintManagerEviction")?;
        assert_eq!(message, format!("Marking for deletion Pod default/{name}"));
    }
    assert_eq!(
        cluster.field("pod/tolerant", ".metadata.deletionTimestamp"),
        ""
    );
    assert_eq!(cluster.field("node/node-a", READY), "True");
    // The ReplicaSet replaced its evicted pod on the healthy node.
    wait_until(SETTLE, "the ReplicaSet to run 2 pods on node-a", || {
        let live: Vec<_> = pods_of(&cluster, "web")?
            .into_iter()
            .filter(|p| !p.2)
            .collect();
        Ok(live.len() == 2 && live.iter().all(|p| p.1 == "node-a" && p.3))
    })?;

    // node-b comes back (same name, same data directory): it deletes the evicted pods instead
    // of starting them, runs the one that stayed, and is Ready and untainted again.
    let _node_b = cluster.join_node("node-b", &FAST_LEASE)?;
    for name in evictable {
        wait_until_gone(&cluster, &format!("pod/{name}"))?;
    }
    wait_until(SETTLE, "the evicted ReplicaSet pod to be gone", || {
        Ok(pods_of(&cluster, "web")?.len() == 2)
    })?;
    cluster.wait_for_field("node/node-b", ".spec.taints", "", SETTLE)?;
    wait_for_event(&cluster, "default", "Node", "node-b", "NodeReady")?;
    cluster.wait_for_field("pod/tolerant", READY, "True", SETTLE)?;
    assert_eq!(cluster.field("node/node-b", READY), "True");
    assert_eq!(cluster.field("node/node-a", READY), "True");
    // Each evicted pod ran once, before node-b died, and never again.
    let events = events(&cluster, "default")?;
    for name in evictable {
        let started = events
            .iter()
            .filter(|[kind, n, reason, _]| kind == "Pod" && n == name && reason == "Started")
            .count();
        assert_eq!(started, 1, "{name} started {started} times");
    }
    Ok(())
}

#[test]
fn pods_of_a_deleted_node_are_garbage_collected() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let node = cluster.join_node("node-gone", &[])?;
    for name in ["orphan-1", "orphan-2"] {
        ticker_on(&cluster, name, "node-gone", "")?;
        cluster.wait_for_field(&format!("pod/{name}"), READY, "True", SETTLE)?;
    }
    // The machine is gone for good, and so is its Node.
    node.kill()?;
    cluster.kubectl_ok(&["delete", "node", "node-gone"])?;
    for name in ["orphan-1", "orphan-2"] {
        wait_until_gone(&cluster, &format!("pod/{name}"))?;
        wait_for_event(&cluster, "default", "Pod", name, "DeletionByPodGC")?;
    }
    Ok(())
}

#[test]
fn when_every_node_is_silent_nothing_is_evicted() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(0, &FAST_LIFECYCLE)?;
    let only = cluster.join_node("only", &FAST_LEASE)?;
    checked_apply(
        &cluster,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: lonely}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: lonely}}\n  template:\n    metadata: {labels: {app: lonely}}\n    spec: {containers: [{name: ticker, image: ticker}]}\n",
    )?;
    wait_until(SETTLE, "the ReplicaSet's pods to be ready", || {
        let pods = pods_of(&cluster, "lonely")?;
        Ok(pods.len() == 2 && pods.iter().all(|p| p.3))
    })?;
    let before: Vec<String> = pods_of(&cluster, "lonely")?
        .into_iter()
        .map(|p| p.0)
        .collect();

    only.kill()?;
    cluster.wait_for_field(
        "node/only",
        r#".status.conditions[?(@.type=="Ready")].status"#,
        "Unknown",
        SETTLE,
    )?;
    // Well past the 3 s eviction timeout: the only node's pods stay, since evicting them
    // would leave them nowhere to run (Kubernetes' full-disruption mode).
    std::thread::sleep(std::time::Duration::from_secs(6));
    let terminating = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=lonely",
        "-o",
        "jsonpath={.items[*].metadata.deletionTimestamp}",
    ])?;
    assert!(
        terminating.trim().is_empty(),
        "pods were evicted: {terminating}"
    );

    // The node comes back and the same pods run on: nothing was replaced.
    let _back = cluster.join_node("only", &FAST_LEASE)?;
    wait_until(SETTLE, "the same pods to be ready again", || {
        let pods = pods_of(&cluster, "lonely")?;
        Ok(pods.len() == 2 && pods.iter().all(|p| p.3))
    })?;
    let after: Vec<String> = pods_of(&cluster, "lonely")?
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(before, after);
    Ok(())
}
