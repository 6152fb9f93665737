//! The pods of an unreachable node: marked not Ready at once, then evicted once their toleration
//! of the unreachable taint runs out (Kubernetes' `MarkPodsNotReady` and taint manager).

use super::{Controller, UNREACHABLE_TAINT, report, uid};
use flotilla_client::events::EventType;
use k8s_openapi::api::core::v1::{Pod, PodCondition, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a pod takes its node becoming unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tolerance {
    /// No toleration: evicted after the cluster's pod eviction timeout.
    None,
    /// Tolerates it for this long, then is evicted.
    For(Duration),
    /// Stays bound however long the node is away (e.g. DaemonSet pods).
    Forever,
}

/// Whether a toleration matches the `node.kubernetes.io/unreachable:NoExecute` taint.
fn tolerates_unreachable(toleration: &Toleration) -> bool {
    let effect_matches = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoExecute");
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    let key_matches = match operator {
        "Exists" => key.is_empty() || key == UNREACHABLE_TAINT,
        // The unreachable taint has no value.
        "Equal" => key == UNREACHABLE_TAINT && toleration.value.as_deref().unwrap_or("").is_empty(),
        _ => false,
    };
    effect_matches && key_matches
}

/// The longest toleration of the unreachable taint a pod has, as the taint manager reads them.
fn tolerance(pod: &Pod) -> Tolerance {
    let matching = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| tolerates_unreachable(t));
    let mut longest = Tolerance::None;
    for toleration in matching {
        match toleration.toleration_seconds {
            None => return Tolerance::Forever,
            Some(seconds) => {
                let d = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
                longest = match longest {
                    Tolerance::For(current) if current >= d => longest,
                    _ => Tolerance::For(d),
                };
            }
        }
    }
    longest
}

/// Whether a pod on a node unreachable since `since` is due for eviction at `now`.
fn eviction_due(tolerance: Tolerance, default: Duration, since: Instant, now: Instant) -> bool {
    let after = match tolerance {
        Tolerance::Forever => return false,
        Tolerance::For(d) => d,
        Tolerance::None => default,
    };
    now.saturating_duration_since(since) >= after
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Controller {
    /// Kubernetes' `MarkPodsNotReady`: nobody can vouch for a silent node's pods, so Services
    /// stop sending them traffic.
    pub(super) async fn mark_pods_not_ready(&mut self, node: &str, pods: &[&Arc<Pod>]) {
        for pod in pods {
            let pod_uid = uid(pod);
            let marked = self
                .health
                .get(node)
                .is_some_and(|h| h.marked_not_ready.contains(&pod_uid));
            let conditions = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let ready_true = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if marked || !ready_true {
                continue;
            }
            let now = Time(jiff::Timestamp::now());
            let conditions: Vec<PodCondition> = conditions
                .into_iter()
                .map(|c| {
                    if c.type_ == "Ready" {
                        PodCondition {
                            status: "False".into(),
                            last_transition_time: Some(now.clone()),
                            ..c
                        }
                    } else {
                        c
                    }
                })
                .collect();
            let patch = json!({
                "metadata": {"resourceVersion": pod.resource_version()},
                "status": {"conditions": conditions},
            });
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(pod = %pod.name_any(), %node, "marked pod not ready");
                    if let Some(health) = self.health.get_mut(node) {
                        health.marked_not_ready.insert(pod_uid);
                    }
                    self.nodes_events
                        .record(
                            &***pod,
                            EventType::Warning,
                            "NodeNotReady",
                            "Node is not ready".into(),
                        )
                        .await;
                }
                Err(error) => report("marking a pod not ready", &pod.name_any(), error),
            }
        }
    }

    /// The taint manager's NoExecute eviction: delete (gracefully) every pod that does not
    /// tolerate the unreachable taint for as long as the node has been away. Their controllers
    /// see them terminating and create replacements on healthy nodes.
    pub(super) async fn evict(&mut self, node: &str, pods: &[&Arc<Pod>], now: Instant) {
        let Some(since) = self.health.get(node).and_then(|h| h.unreachable_since) else {
            return;
        };
        let default = self.config.pod_eviction_timeout;
        for pod in pods {
            let pod_uid = uid(pod);
            if pod.metadata.deletion_timestamp.is_some()
                || is_finished(pod)
                || self
                    .health
                    .get(node)
                    .is_some_and(|h| h.evicted.contains(&pod_uid))
                || !eviction_due(tolerance(pod), default, since, now)
            {
                continue;
            }
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!(pod = %name, %namespace, %node, "evicting pod from unreachable node");
                    if let Some(health) = self.health.get_mut(node) {
                        health.evicted.insert(pod_uid);
                    }
                    self.eviction_events
                        .record(
                            &***pod,
                            EventType::Normal,
                            "TaintManagerEviction",
                            format!("Marking for deletion Pod {namespace}/{name}"),
                        )
                        .await;
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(error) => report("evicting a pod", &name, error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    fn pod_with(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations}
        }))
        .unwrap()
    }

    #[test]
    fn tolerations_of_the_unreachable_taint() {
        let matches = |v| tolerates_unreachable(&toleration(v));
        assert!(matches(
            json!({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"})
        ));
        assert!(matches(
            json!({"key": UNREACHABLE_TAINT, "operator": "Exists"})
        ));
        assert!(matches(
            json!({"key": UNREACHABLE_TAINT, "effect": "NoExecute"})
        ));
        assert!(matches(json!({"operator": "Exists"})));
        assert!(matches(
            json!({"operator": "Exists", "effect": "NoExecute"})
        ));
        assert!(!matches(
            json!({"operator": "Exists", "effect": "NoSchedule"})
        ));
        assert!(!matches(
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists"})
        ));
        assert!(!matches(json!({"key": UNREACHABLE_TAINT, "value": "x"})));
        // Equal with an empty key matches nothing.
        assert!(!matches(json!({"effect": "NoExecute"})));
    }

    #[test]
    fn the_longest_matching_toleration_wins() {
        assert_eq!(tolerance(&pod_with(json!([]))), Tolerance::None);
        assert_eq!(
            tolerance(&pod_with(json!([
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "tolerationSeconds": 5},
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20},
                {"key": "other", "operator": "Exists"}
            ]))),
            Tolerance::For(Duration::from_secs(20))
        );
        assert_eq!(
            tolerance(&pod_with(json!([
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "tolerationSeconds": 5},
                {"operator": "Exists"}
            ]))),
            Tolerance::Forever
        );
    }

    #[test]
    fn eviction_waits_for_the_timeout_or_the_toleration() {
        let since = Instant::now();
        let default = Duration::from_secs(60);
        let at = |secs| since + Duration::from_secs(secs);
        assert!(!eviction_due(Tolerance::None, default, since, at(59)));
        assert!(eviction_due(Tolerance::None, default, since, at(60)));
        let ten = Tolerance::For(Duration::from_secs(10));
        assert!(!eviction_due(ten, default, since, at(9)));
        assert!(eviction_due(ten, default, since, at(10)));
        assert!(eviction_due(
            Tolerance::For(Duration::ZERO),
            default,
            since,
            since
        ));
        assert!(!eviction_due(
            Tolerance::Forever,
            default,
            since,
            at(100_000)
        ));
    }
}
