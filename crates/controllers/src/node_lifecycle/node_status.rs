//! What a Node should say about its agent's silence, and the writes that say it: `Ready=Unknown`
//! and the unreachable taints while the node is silent, the taints lifted once it is back.

use super::{Controller, UNREACHABLE_TAINT};
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The effects of the unreachable taints: no new pods, and running ones evicted.
const UNREACHABLE_EFFECTS: [&str; 2] = ["NoSchedule", "NoExecute"];

/// What to change on a Node, given whether it is silent.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct NodePlan {
    /// Set the Ready condition to Unknown (a transition: record NodeNotReady).
    pub(super) mark_unknown: bool,
    /// Unreachable taint effects to add.
    pub(super) add_taints: Vec<&'static str>,
    /// Lift the unreachable taints (record NodeReady).
    pub(super) lift_taints: bool,
}

pub(super) fn plan(node: &Node, silent: bool) -> NodePlan {
    let ready = ready_condition(node).map(|c| c.status.as_str());
    let present: Vec<&str> = taints(node)
        .iter()
        .filter(|t| t.key == UNREACHABLE_TAINT)
        .map(|t| t.effect.as_str())
        .collect();
    if silent {
        NodePlan {
            mark_unknown: ready != Some("Unknown"),
            add_taints: UNREACHABLE_EFFECTS
                .into_iter()
                .filter(|e| !present.contains(e))
                .collect(),
            lift_taints: false,
        }
    } else {
        NodePlan {
            // Until the agent says Ready=True itself, the taints keep new pods away.
            lift_taints: ready == Some("True") && !present.is_empty(),
            ..NodePlan::default()
        }
    }
}

pub(super) fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

impl Controller {
    /// Ready → Unknown, keeping the last heartbeat: what the agent last said, and when.
    pub(super) async fn mark_unknown(&self, node: &Node) -> kube::Result<Node> {
        let now = Time(jiff::Timestamp::now());
        let mut conditions: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let unknown = |previous: Option<&NodeCondition>| NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusUnknown".into()),
            message: Some("Kubelet stopped posting node status.".into()),
            last_heartbeat_time: previous.and_then(|c| c.last_heartbeat_time.clone()),
            last_transition_time: Some(now.clone()),
        };
        match conditions.iter_mut().find(|c| c.type_ == "Ready") {
            Some(ready) => *ready = unknown(Some(ready)),
            None => conditions.push(unknown(None)),
        }
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "status": {"conditions": conditions},
        });
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch_status(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
    }

    pub(super) async fn add_taints(&self, node: &Node, effects: &[&str]) -> kube::Result<()> {
        let now = Time(jiff::Timestamp::now());
        let mut taints = taints(node).to_vec();
        taints.extend(effects.iter().map(|effect| Taint {
            key: UNREACHABLE_TAINT.into(),
            effect: (*effect).into(),
            time_added: Some(now.clone()),
            value: None,
        }));
        self.write_taints(node, taints).await
    }

    pub(super) async fn lift_taints(&self, node: &Node) -> kube::Result<()> {
        let taints: Vec<Taint> = taints(node)
            .iter()
            .filter(|t| t.key != UNREACHABLE_TAINT)
            .cloned()
            .collect();
        self.write_taints(node, taints).await
    }

    /// Replaces `spec.taints`, failing with 409 if the node changed since it was cached (the
    /// next pass decides again on the newer version).
    async fn write_taints(&self, node: &Node, taints: Vec<Taint>) -> kube::Result<()> {
        let taints = if taints.is_empty() {
            serde_json::Value::Null
        } else {
            json!(taints)
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, taints: serde_json::Value) -> Node {
        let conditions = match ready {
            Some(status) => json!([{"type": "Ready", "status": status}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"taints": taints},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn a_silent_node_is_marked_unknown_and_tainted_once() {
        let fresh = plan(&node(Some("True"), json!([])), true);
        assert_eq!(
            fresh,
            NodePlan {
                mark_unknown: true,
                add_taints: vec!["NoSchedule", "NoExecute"],
                lift_taints: false
            }
        );
        let done = node(
            Some("Unknown"),
            json!([
                {"key": UNREACHABLE_TAINT, "effect": "NoSchedule"},
                {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
            ]),
        );
        assert_eq!(plan(&done, true), NodePlan::default());
        assert!(plan(&node(None, json!([])), true).mark_unknown);
    }

    #[test]
    fn taints_are_lifted_only_once_the_agent_says_ready() {
        let tainted = json!([
            {"key": "user", "effect": "NoSchedule"},
            {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
        ]);
        // The lease is renewed but Ready is still the controller's Unknown: keep the taints,
        // and write nothing (the agent owns Ready=True).
        assert_eq!(
            plan(&node(Some("Unknown"), tainted.clone()), false),
            NodePlan::default()
        );
        assert!(plan(&node(Some("True"), tainted), false).lift_taints);
        assert_eq!(
            plan(
                &node(
                    Some("True"),
                    json!([{"key": "user", "effect": "NoSchedule"}])
                ),
                false
            ),
            NodePlan::default()
        );
    }
}
