//! Cascading deletion: the finalizers a delete leaves on an object so that the garbage
//! collector deletes (`Foreground`) or orphans (`Orphan`) its dependents before the object
//! itself goes, as the Kubernetes registry computes them
//! (`deletionFinalizersForGarbageCollection`). `Background` deletes the object at once and
//! leaves the dependents to the collector.

use flotilla_api::ApiStatus;
use flotilla_api::resource::ResourceType;
use serde_json::Value;

/// Held while the garbage collector deletes the dependents that block the owner's deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Held while the garbage collector removes the owner from its dependents' ownerReferences.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn parse(text: &str) -> Result<Self, ApiStatus> {
        match text {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(ApiStatus::invalid(
                "DeleteOptions",
                "",
                vec![flotilla_api::Cause {
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                    field: "propagationPolicy".into(),
                }],
            )),
        }
    }

    /// The policy of a delete that names none. Kubernetes keeps the behaviour the old group
    /// versions had before the garbage collector: core/v1 ReplicationControllers and batch/v1
    /// Jobs orphan their pods unless told otherwise; every other kind deletes in the background.
    pub fn default_for(r: &ResourceType) -> Self {
        match (r.group, r.version, r.kind) {
            ("", "v1", "ReplicationController") | ("batch", "v1", "Job") => Propagation::Orphan,
            _ => Propagation::Background,
        }
    }
}

/// Whether a kind's deletion honours the policy: the kinds that own objects and that the
/// garbage collector follows (flotilla-controllers' `gc::Kind`). Any other kind is deleted at
/// once, since no collector would ever remove an orphan or foreground finalizer from it and the
/// delete would hang. Pods own nothing and are deleted gracefully by their node instead;
/// namespaces delete their contents themselves.
pub fn applies_to(r: &ResourceType) -> bool {
    matches!(
        r.kind,
        "Deployment" | "ReplicaSet" | "ReplicationController" | "Job" | "DaemonSet" | "Node"
    )
}

/// What a delete asks for: `propagationPolicy`, or the legacy `orphanDependents`
/// (at most one of them; the caller checks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    pub policy: Option<Propagation>,
    pub orphan_dependents: Option<bool>,
}

/// The finalizers an object holds after a delete: its own, with the orphan and foreground
/// finalizers set as the request (else the finalizers already there, else the kind's default)
/// decides. A second delete can so switch an object that is already going from one policy to
/// another.
pub fn finalizers_after_delete(
    r: &ResourceType,
    current: &[Value],
    asked: Requested,
) -> Vec<Value> {
    let has = |name: &str| current.iter().any(|f| f == name);
    let orphan = match (asked.orphan_dependents, asked.policy) {
        (Some(orphan), _) => orphan,
        (None, Some(policy)) => policy == Propagation::Orphan,
        (None, None) if has(ORPHAN_FINALIZER) => true,
        (None, None) if has(FOREGROUND_FINALIZER) => false,
        (None, None) => Propagation::default_for(r) == Propagation::Orphan,
    };
    let foreground = match (asked.orphan_dependents, asked.policy) {
        (Some(_), _) => false,
        (None, Some(policy)) => policy == Propagation::Foreground,
        (None, None) => has(FOREGROUND_FINALIZER),
    };
    let mut finalizers: Vec<Value> = current
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    if orphan {
        finalizers.push(Value::from(ORPHAN_FINALIZER));
    }
    if foreground {
        finalizers.push(Value::from(FOREGROUND_FINALIZER));
    }
    // Keep the stored order when nothing changes, so a repeated delete writes nothing.
    let same = finalizers.len() == current.len() && finalizers.iter().all(|f| current.contains(f));
    if same { current.to_vec() } else { finalizers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resource::lookup;
    use serde_json::json;

    fn after(plural: &str, current: Value, asked: Requested) -> Value {
        let group = if plural == "jobs" {
            "batch"
        } else if plural == "replicationcontrollers" || plural == "configmaps" {
            ""
        } else {
            "apps"
        };
        let r = lookup(group, "v1", plural).unwrap();
        let current: Vec<Value> = serde_json::from_value(current).unwrap();
        json!(finalizers_after_delete(r, &current, asked))
    }

    fn policy(p: Propagation) -> Requested {
        Requested {
            policy: Some(p),
            orphan_dependents: None,
        }
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let none = Requested::default();
        assert_eq!(after("deployments", json!([]), none), json!([]));
        assert_eq!(after("configmaps", json!([]), none), json!([]));
        assert_eq!(after("jobs", json!([]), none), json!(["orphan"]));
        assert_eq!(
            after("replicationcontrollers", json!([]), none),
            json!(["orphan"])
        );
    }

    #[test]
    fn explicit_policies_win() {
        use Propagation::*;
        assert_eq!(
            after("deployments", json!(["x"]), policy(Foreground)),
            json!(["x", "foregroundDeletion"])
        );
        assert_eq!(after("jobs", json!([]), policy(Background)), json!([]));
        assert_eq!(
            after("deployments", json!(["foregroundDeletion"]), policy(Orphan)),
            json!(["orphan"])
        );
        let legacy = Requested {
            policy: None,
            orphan_dependents: Some(false),
        };
        assert_eq!(after("jobs", json!(["orphan"]), legacy), json!([]));
    }

    #[test]
    fn a_repeated_delete_keeps_the_policy_under_way() {
        let none = Requested::default();
        assert_eq!(
            after("jobs", json!(["foregroundDeletion", "x"]), none),
            json!(["foregroundDeletion", "x"])
        );
    }
}
