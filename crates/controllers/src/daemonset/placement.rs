//! The decisions of the DaemonSet controller, on plain values so they can be tested alone:
//! which nodes run a daemon pod, what to create and delete on each, and which out-of-date pods
//! a rolling update replaces next.
//!
//! They follow Kubernetes' daemon controller (`NodeShouldRunDaemonPod`, `podsShouldBeOnNode`,
//! `rollingUpdate` without surge), with one difference: a node that is not Ready gets no new
//! daemon pod (it keeps the one it has).

use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Taint, Toleration};
use std::collections::BTreeMap;

/// Taints the node lifecycle controller sets that daemon pods tolerate (Kubernetes'
/// `AddOrUpdateDaemonPodTolerations`): a daemon pod stays on a node that stops answering and
/// lands on a cordoned or pressured one.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// What a node means for a DaemonSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Eligible: it runs one daemon pod.
    Run,
    /// Not Ready, or tainted against new pods: it keeps the daemon pod it has but gets none.
    Keep,
    /// Not selected, intolerably tainted, being deleted or gone: its daemon pods go.
    Evict,
}

/// Where a DaemonSet with pod spec `template` (its tolerations completed with the daemon
/// ones) stands on `node`.
pub fn placement(node: &Node, template: &PodSpec) -> Placement {
    if node.metadata.deletion_timestamp.is_some() {
        return Placement::Evict;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selected = template
        .node_selector
        .as_ref()
        .is_none_or(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    if !selected {
        return Placement::Evict;
    }
    let tolerations = template.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let untolerated = |effect: &str| {
        taints
            .iter()
            .any(|t| t.effect == effect && !tolerations.iter().any(|tol| tolerates(tol, t)))
    };
    if untolerated("NoExecute") {
        return Placement::Evict;
    }
    if untolerated("NoSchedule") || !is_ready(node) {
        return Placement::Keep;
    }
    Placement::Run
}

/// The node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether `toleration` tolerates `taint` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if toleration
        .key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        None | Some("") | Some("Equal") => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        Some(_) => false,
    }
}

/// Adds the tolerations every daemon pod carries, unless the template already has them.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in DAEMON_TOLERATIONS {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some((*key).into()),
                operator: Some("Exists".into()),
                effect: Some((*effect).into()),
                ..Default::default()
            });
        }
    }
}

/// What to do on one node.
#[derive(Debug, Default, PartialEq)]
pub struct NodePlan<'p> {
    /// Create a daemon pod there.
    pub create: bool,
    /// Daemon pods to delete: surplus, succeeded, or on a node that should not run them.
    pub delete: Vec<&'p Pod>,
    /// Failed daemon pods to replace: deleted, subject to a back-off, then recreated.
    pub failed: Vec<&'p Pod>,
}

/// The plan for a node given its placement (None: the node no longer exists) and the daemon
/// pods bound to it, leaving out pods that finished and are being deleted. A pod still being
/// deleted holds the node: its replacement waits until it is gone.
pub fn plan_node<'p>(placement: Option<Placement>, pods: &[&'p Pod]) -> NodePlan<'p> {
    let live = || {
        pods.iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    };
    match placement {
        Some(Placement::Run) if pods.is_empty() => NodePlan {
            create: true,
            ..Default::default()
        },
        Some(Placement::Run | Placement::Keep) => {
            let mut plan = NodePlan::default();
            let mut running = Vec::new();
            for pod in live() {
                match crate::pods::phase(pod) {
                    "Failed" => plan.failed.push(pod),
                    "Succeeded" => plan.delete.push(pod),
                    _ => running.push(pod),
                }
            }
            // One pod per node: the oldest stays.
            running.sort_by_key(|p| oldest_first(p));
            plan.delete.extend(running.into_iter().skip(1));
            plan
        }
        Some(Placement::Evict) | None => NodePlan {
            delete: live().collect(),
            ..Default::default()
        },
    }
}

/// Sort key putting the oldest pod first (by creation, then name).
pub fn oldest_first(pod: &Pod) -> (Option<jiff::Timestamp>, String) {
    (
        pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The old pods a rolling update deletes now (to be recreated from the current template),
/// given the daemon pods of every node that runs the DaemonSet. An unavailable old pod goes at
/// once; available ones go while fewer than `max_unavailable` nodes lack an available pod.
/// Nodes with duplicates or with no pod are left to the per-node plan and count as
/// unavailable.
pub fn rolling_update<'p>(
    nodes: &BTreeMap<String, Vec<&'p Pod>>,
    is_updated: impl Fn(&Pod) -> bool,
    is_available: impl Fn(&Pod) -> bool,
    max_unavailable: usize,
) -> Vec<&'p Pod> {
    let mut unavailable = 0;
    let mut to_delete = Vec::new();
    let mut candidates = Vec::new();
    for pods in nodes.values() {
        let live: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let (new, old): (Vec<&Pod>, Vec<&Pod>) = live.into_iter().partition(|p| is_updated(p));
        match (new.as_slice(), old.as_slice()) {
            ([new], []) => {
                if !is_available(new) {
                    unavailable += 1;
                }
            }
            ([], [old]) if !is_available(old) => to_delete.push(*old),
            ([], [old]) => candidates.push(*old),
            _ => unavailable += 1,
        }
    }
    let budget = max_unavailable
        .saturating_sub(unavailable)
        .min(candidates.len());
    candidates.sort_by_key(|p| oldest_first(p));
    to_delete.extend(candidates.into_iter().take(budget));
    to_delete
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn node(labels: &[(&str, &str)], ready: &str, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn daemon_spec(selector: &[(&str, &str)]) -> PodSpec {
        let mut spec = PodSpec {
            node_selector: (!selector.is_empty()).then(|| {
                selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        };
        add_daemon_tolerations(&mut spec);
        spec
    }

    fn pod(name: &str, created: i64, phase: &str, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
                deletion_timestamp: deleting
                    .then(|| Time(jiff::Timestamp::from_second(created + 1).unwrap())),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn nodes<'p>(entries: Vec<(&str, Vec<&'p Pod>)>) -> BTreeMap<String, Vec<&'p Pod>> {
        entries
            .into_iter()
            .map(|(node, pods)| (node.to_string(), pods))
            .collect()
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn ready_selected_nodes_run_daemon_pods() {
        let spec = daemon_spec(&[("disk", "ssd")]);
        let ssd = node(&[("disk", "ssd")], "True", vec![]);
        assert_eq!(placement(&ssd, &spec), Placement::Run);
        let hdd = node(&[("disk", "hdd")], "True", vec![]);
        assert_eq!(placement(&hdd, &spec), Placement::Evict);
        assert_eq!(
            placement(&hdd, &daemon_spec(&[])),
            Placement::Run,
            "no selector: every node"
        );
        let mut going = ssd.clone();
        going.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(placement(&going, &spec), Placement::Evict);
    }

    #[test]
    fn not_ready_nodes_keep_their_daemon_pod_but_get_no_new_one() {
        let spec = daemon_spec(&[]);
        let down = node(
            &[],
            "Unknown",
            vec![taint("node.kubernetes.io/unreachable", "NoExecute")],
        );
        assert_eq!(placement(&down, &spec), Placement::Keep);
        assert!(plan_node(Some(Placement::Keep), &[]) == NodePlan::default());
        let running = pod("a", 1, "Running", false);
        assert_eq!(
            plan_node(Some(Placement::Keep), &[&running]),
            NodePlan::default()
        );
    }

    #[test]
    fn taints_turn_daemon_pods_away_unless_tolerated() {
        let spec = daemon_spec(&[]);
        let cordoned = node(
            &[],
            "True",
            vec![taint("node.kubernetes.io/unschedulable", "NoSchedule")],
        );
        assert_eq!(placement(&cordoned, &spec), Placement::Run);
        let reserved = node(&[], "True", vec![taint("dedicated", "NoSchedule")]);
        assert_eq!(placement(&reserved, &spec), Placement::Keep);
        let evicting = node(&[], "True", vec![taint("dedicated", "NoExecute")]);
        assert_eq!(placement(&evicting, &spec), Placement::Evict);
        let mut tolerant = spec.clone();
        tolerant.tolerations.as_mut().unwrap().push(Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        });
        assert_eq!(placement(&evicting, &tolerant), Placement::Run);
    }

    #[test]
    fn daemon_tolerations_are_added_once() {
        let mut spec = daemon_spec(&[]);
        add_daemon_tolerations(&mut spec);
        assert_eq!(
            spec.tolerations.as_ref().unwrap().len(),
            DAEMON_TOLERATIONS.len()
        );
    }

    #[test]
    fn one_pod_per_node_the_oldest_stays() {
        assert!(plan_node(Some(Placement::Run), &[]).create);
        let old = pod("old", 1, "Running", false);
        let young = pod("young", 2, "Pending", false);
        let plan = plan_node(Some(Placement::Run), &[&young, &old]);
        assert!(!plan.create);
        assert_eq!(names(&plan.delete), ["young"]);
    }

    #[test]
    fn finished_pods_are_replaced_and_terminating_ones_waited_for() {
        let failed = pod("failed", 1, "Failed", false);
        let plan = plan_node(Some(Placement::Run), &[&failed]);
        assert_eq!(names(&plan.failed), ["failed"]);
        let done = pod("done", 1, "Succeeded", false);
        assert_eq!(
            names(&plan_node(Some(Placement::Run), &[&done]).delete),
            ["done"]
        );
        // A pod being deleted holds the node until it is gone.
        let going = pod("going", 1, "Running", true);
        assert_eq!(
            plan_node(Some(Placement::Run), &[&going]),
            NodePlan::default()
        );
    }

    #[test]
    fn pods_on_evicting_or_vanished_nodes_are_deleted() {
        let a = pod("a", 1, "Running", false);
        let going = pod("going", 1, "Running", true);
        assert_eq!(
            names(&plan_node(Some(Placement::Evict), &[&a, &going]).delete),
            ["a"]
        );
        assert_eq!(names(&plan_node(None, &[&a]).delete), ["a"]);
    }

    #[test]
    fn rolling_updates_replace_unavailable_pods_first_then_within_max_unavailable() {
        let old_1 = pod("old-1", 1, "Running", false);
        let old_2 = pod("old-2", 2, "Running", false);
        let old_broken = pod("old-broken", 3, "Pending", false);
        let new_pod = pod("new", 4, "Running", false);
        let updated = |p: &Pod| p.metadata.name.as_deref() == Some("new");
        let available = |p: &Pod| crate::pods::phase(p) == "Running";

        let all_old = nodes(vec![
            ("a", vec![&old_1]),
            ("b", vec![&old_2]),
            ("c", vec![&old_broken]),
        ]);
        assert_eq!(
            names(&rolling_update(&all_old, updated, available, 1)),
            ["old-broken", "old-1"]
        );
        assert_eq!(
            names(&rolling_update(&all_old, updated, available, 2)),
            ["old-broken", "old-1", "old-2"]
        );
        // A node still missing its new pod uses up the budget.
        let in_progress = nodes(vec![
            ("a", vec![]),
            ("b", vec![&old_2]),
            ("c", vec![&new_pod]),
        ]);
        assert!(rolling_update(&in_progress, updated, available, 1).is_empty());
        let done = nodes(vec![("c", vec![&new_pod])]);
        assert!(rolling_update(&done, updated, available, 1).is_empty());
    }
}
