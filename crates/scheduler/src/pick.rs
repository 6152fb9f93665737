//! Choosing a node for a pod: filter the nodes that can take it, then prefer the least loaded.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use std::collections::HashMap;
use std::sync::Arc;

/// Whether a node can take new pods: Ready, not cordoned, and not tainted against scheduling.
pub fn schedulable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let spec = node.spec.as_ref();
    let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
    let tainted = spec.and_then(|s| s.taints.as_ref()).is_some_and(|ts| {
        ts.iter()
            .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    });
    node.metadata.deletion_timestamp.is_none() && ready && !cordoned && !tainted
}

/// The schedulable node running the fewest unfinished pods; ties go to the name that sorts
/// first, so placement is predictable. `assumed` names the nodes of pods bound a moment ago
/// that the cache does not show bound yet, so a burst of pods spreads instead of piling onto
/// the node that looked emptiest before the burst.
pub fn best_node<'a>(
    nodes: &[Arc<Node>],
    pods: &'a [Arc<Pod>],
    assumed: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut load: HashMap<&str, usize> = HashMap::new();
    for node in assumed {
        *load.entry(node).or_default() += 1;
    }
    for pod in pods {
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && !finished
        {
            *load.entry(node).or_default() += 1;
        }
    }
    nodes
        .iter()
        .filter(|n| schedulable(n))
        .map(|n| n.name_any())
        .min_by_key(|name| (load.get(name.as_str()).copied().unwrap_or(0), name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}
            }))
            .unwrap(),
        )
    }

    fn pod_on(node: &str, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn assumed_pods_count_as_load() {
        let nodes = [node("a", "True"), node("b", "True")];
        assert_eq!(best_node(&nodes, &[], ["a"]).as_deref(), Some("b"));
        assert_eq!(
            best_node(&nodes, &[], ["a", "b", "b"]).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn prefers_the_least_loaded_ready_node() {
        let nodes = [node("a", "True"), node("b", "True"), node("c", "False")];
        let pods = [pod_on("a", "Running"), pod_on("b", "Succeeded")];
        assert_eq!(best_node(&nodes, &pods, []).as_deref(), Some("b"));
    }

    #[test]
    fn no_ready_node_means_no_choice() {
        assert_eq!(best_node(&[node("a", "False")], &[], []), None);
        let cordoned: Arc<Node> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "x"}, "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .unwrap(),
        );
        assert_eq!(best_node(&[cordoned], &[], []), None);
    }
}
