//! What controllers ask of pods: are they active, ready, available; who controls them; and
//! how to make one from a template.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{Selector, SelectorExt};
use kube::{Resource, ResourceExt};
use rand::Rng;
use std::collections::BTreeMap;

/// Whether `selector` picks an object with `labels`. An empty selector picks nothing here:
/// controllers must never claim every pod of a namespace by accident.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let empty = selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if empty {
        return false;
    }
    match Selector::try_from(selector.clone()) {
        Ok(selector) => selector.matches(labels),
        Err(_) => false,
    }
}

/// Counts toward its owner: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_finished(pod)
}

/// Succeeded or Failed.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// When the pod's Ready condition became True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if condition.status != "True" {
        return None;
    }
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds`: what Deployments call available.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
    }
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of<K: Resource>(object: &K) -> Option<&OwnerReference> {
    object
        .meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `object` is controlled by the object with this uid.
pub fn is_controlled_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    controller_of(object).is_some_and(|r| r.uid == owner_uid)
}

/// A controller owner reference to `owner`, which blocks the owner's foreground deletion.
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A name `{prefix}-{5 random characters}` from the alphabet Kubernetes uses for generated
/// names (no vowels, so no words; no look-alike characters).
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let prefix: String = prefix.chars().take(57).collect();
    format!("{prefix}-{suffix}")
}

/// A pod made from `template`, named `name`, controlled by `owner`.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    name: String,
    owner: OwnerReference,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The order in which surplus pods are deleted, most expendable first (Kubernetes'
/// `ActivePods` ordering): unscheduled before scheduled, pending before running, not ready
/// before ready, ready for less time before longer, more restarts before fewer, newer before
/// older.
pub fn deletion_rank(pod: &Pod) -> impl Ord {
    let scheduled = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.node_name.as_deref().is_some_and(|n| !n.is_empty()));
    let phase_rank = match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = ready_since(pod);
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
    (
        scheduled,
        phase_rank,
        ready.is_some(),
        std::cmp::Reverse(ready),
        std::cmp::Reverse(restarts),
        std::cmp::Reverse(created),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(node: Option<&str>, phase: &str, ready_at: Option<i64>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|at| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(jiff::Timestamp::from_second(at).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn surplus_pods_go_unscheduled_then_pending_then_not_ready_first() {
        let unscheduled = pod(None, "Pending", None);
        let pending = pod(Some("n"), "Pending", None);
        let running_not_ready = pod(Some("n"), "Running", None);
        let ready_recently = pod(Some("n"), "Running", Some(200));
        let ready_long = pod(Some("n"), "Running", Some(100));
        let mut pods = [
            &ready_long,
            &ready_recently,
            &running_not_ready,
            &pending,
            &unscheduled,
        ];
        pods.sort_by_key(|p| deletion_rank(p));
        let order: Vec<*const Pod> = pods.iter().map(|p| *p as *const Pod).collect();
        let expected: Vec<*const Pod> = [
            &unscheduled,
            &pending,
            &running_not_ready,
            &ready_recently,
            &ready_long,
        ]
        .iter()
        .map(|p| *p as *const Pod)
        .collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn available_means_ready_for_min_ready_seconds() {
        let now = jiff::Timestamp::from_second(110).unwrap();
        let ready = pod(Some("n"), "Running", Some(100));
        assert!(is_available(&ready, 0, now));
        assert!(is_available(&ready, 10, now));
        assert!(!is_available(&ready, 11, now));
        assert!(!is_available(&pod(Some("n"), "Running", None), 0, now));
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let name = generated_name("web-7d4b9");
        assert!(name.starts_with("web-7d4b9-"));
        assert_eq!(name.len(), "web-7d4b9-".len() + 5);
    }
}
