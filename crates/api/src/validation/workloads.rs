//! Validation of the workloads that make pods: Deployments, ReplicaSets, DaemonSets,
//! ReplicationControllers and Jobs, with Kubernetes' field paths and messages
//! (`pkg/apis/apps/validation`, `pkg/apis/batch/validation`).
//!
//! Every workload carries a pod template that must be a valid pod, and a selector that must
//! select the pods the template makes; otherwise its controller would create pods it cannot
//! find again, without end.

use super::{
    Cause, RESTART_POLICIES, forbidden, invalid, invalid_value, not_supported, required,
    required_because, validate_labels, validate_pod_spec,
};
use crate::defaults::{JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL};
use crate::selector::LabelSelector;
use serde_json::{Map, Value};

/// Checks a workload on its own, appending a cause per invalid field.
pub(super) fn validate(kind: &str, object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let always = &["Always"][..];
    match kind {
        "Deployment" => {
            nonnegative(spec, "replicas", causes);
            nonnegative(spec, "minReadySeconds", causes);
            nonnegative(spec, "revisionHistoryLimit", causes);
            progress_deadline(spec, causes);
            deployment_strategy(spec, causes);
            let selector = apps_selector(spec, "deployment", causes);
            pod_template(kind, spec, selector.as_ref(), always, causes);
        }
        "ReplicaSet" => {
            nonnegative(spec, "replicas", causes);
            nonnegative(spec, "minReadySeconds", causes);
            // Kubernetes words the ReplicaSet error as for Deployments.
            let selector = apps_selector(spec, "deployment", causes);
            pod_template(kind, spec, selector.as_ref(), always, causes);
        }
        "DaemonSet" => {
            nonnegative(spec, "minReadySeconds", causes);
            nonnegative(spec, "revisionHistoryLimit", causes);
            daemon_set_strategy(spec, causes);
            let selector = apps_selector(spec, "daemonset", causes);
            pod_template(kind, spec, selector.as_ref(), always, causes);
        }
        "ReplicationController" => {
            nonnegative(spec, "replicas", causes);
            nonnegative(spec, "minReadySeconds", causes);
            let selector = controller_selector(spec, causes);
            if spec.get("template").is_none_or(Value::is_null) {
                causes.push(required("spec.template"));
            } else {
                pod_template(kind, spec, selector.as_ref(), always, causes);
            }
        }
        "Job" => job(object, spec, causes),
        _ => {}
    }
}

/// An optional integer field of `spec` that may not be negative.
fn nonnegative(spec: &Value, key: &str, causes: &mut Vec<Cause>) -> Option<i64> {
    let value = spec.get(key).filter(|v| !v.is_null())?;
    let field = format!("spec.{key}");
    match value.as_i64() {
        Some(n) if n < 0 => {
            causes.push(invalid_value(
                field,
                value,
                "must be greater than or equal to 0",
            ));
            None
        }
        Some(n) => Some(n),
        None => {
            causes.push(invalid_value(field, value, "must be an integer"));
            None
        }
    }
}

fn progress_deadline(spec: &Value, causes: &mut Vec<Cause>) {
    let Some(deadline) = nonnegative(spec, "progressDeadlineSeconds", causes) else {
        return;
    };
    let min_ready = spec["minReadySeconds"].as_i64().unwrap_or(0);
    if deadline <= min_ready {
        causes.push(invalid_value(
            "spec.progressDeadlineSeconds",
            &spec["progressDeadlineSeconds"],
            "must be greater than minReadySeconds",
        ));
    }
}

/// `spec.selector` of an apps/v1 workload: required, well formed and not empty (an empty
/// selector would adopt every pod in the namespace).
fn apps_selector(spec: &Value, noun: &str, causes: &mut Vec<Cause>) -> Option<LabelSelector> {
    let selector = match spec.get("selector") {
        None | Some(Value::Null) => {
            causes.push(required("spec.selector"));
            return None;
        }
        Some(selector) => selector,
    };
    let parsed = label_selector(selector, "spec.selector", causes)?;
    if parsed.is_empty() {
        causes.push(invalid_value(
            "spec.selector",
            selector,
            format!("empty selector is invalid for {noun}"),
        ));
        return None;
    }
    Some(parsed)
}

/// A `LabelSelector` object at `path`, each malformed part reported with its own path.
fn label_selector(selector: &Value, path: &str, causes: &mut Vec<Cause>) -> Option<LabelSelector> {
    let before = causes.len();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        validate_labels(labels, &format!("{path}.matchLabels"), causes);
    }
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    for (i, expression) in expressions.into_iter().flatten().enumerate() {
        let field = format!("{path}.matchExpressions[{i}]");
        if expression["key"].as_str().is_none_or(str::is_empty) {
            causes.push(required(format!("{field}.key")));
        }
        let has_values = expression["values"]
            .as_array()
            .is_some_and(|v| !v.is_empty());
        match expression["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if !has_values => causes.push(required_because(
                format!("{field}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => causes.push(forbidden(
                format!("{field}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(invalid(
                format!("{field}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
    }
    if causes.len() > before {
        return None;
    }
    match LabelSelector::from_label_selector(selector) {
        Ok(parsed) => Some(parsed),
        Err(why) => {
            causes.push(invalid_value(path, selector, why));
            None
        }
    }
}

/// `spec.selector` of a ReplicationController: a non-empty map of labels.
fn controller_selector(spec: &Value, causes: &mut Vec<Cause>) -> Option<LabelSelector> {
    let Some(labels) = spec["selector"].as_object().filter(|l| !l.is_empty()) else {
        causes.push(required("spec.selector"));
        return None;
    };
    let before = causes.len();
    validate_labels(labels, "spec.selector", causes);
    if causes.len() > before {
        return None;
    }
    LabelSelector::from_labels(labels).ok()
}

/// `spec.template`: labels the selector matches, a valid pod spec, and a restart policy
/// among `policies`.
fn pod_template(
    kind: &str,
    spec: &Value,
    selector: Option<&LabelSelector>,
    policies: &[&str],
    causes: &mut Vec<Cause>,
) {
    let template = spec.get("template").unwrap_or(&Value::Null);
    let labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    validate_labels(&labels, "spec.template.metadata.labels", causes);
    if let Some(selector) = selector
        && !selector.is_empty()
        && !selector.matches_labels(&labels)
    {
        causes.push(invalid_value(
            "spec.template.metadata.labels",
            &Value::Object(labels),
            "`selector` does not match template `labels`",
        ));
    }
    let pod_spec = template.get("spec").unwrap_or(&Value::Null);
    validate_pod_spec(pod_spec, "spec.template.spec", causes);
    let field = "spec.template.spec.restartPolicy";
    match pod_spec["restartPolicy"].as_str() {
        // The job's own rule: Always is a default there, not a choice, so it reads as missing.
        None | Some("Always") if kind == "Job" => causes.push(required_because(
            field,
            r#"valid values: "OnFailure", "Never""#,
        )),
        Some(policy) if RESTART_POLICIES.contains(&policy) && !policies.contains(&policy) => {
            causes.push(not_supported(field, policy, policies))
        }
        _ => {}
    }
    if kind != "Job" && !pod_spec["activeDeadlineSeconds"].is_null() {
        causes.push(forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// The numeric value of an int-or-percent (`3` or `"25%"`), checked to be one.
fn int_or_percent(value: &Value, field: &str, causes: &mut Vec<Cause>) -> Option<(i64, bool)> {
    match value {
        Value::Null => Some((0, false)),
        Value::String(text) => {
            let number = text
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok());
            if number.is_none() {
                causes.push(invalid(field, text, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
            }
            number.map(|n| (n, true))
        }
        Value::Number(n) => match n.as_i64() {
            Some(n) if n >= 0 => Some((n, false)),
            _ => {
                causes.push(invalid_value(
                    field,
                    value,
                    "must be greater than or equal to 0",
                ));
                None
            }
        },
        other => {
            causes.push(invalid_value(
                field,
                other,
                "must be an integer or percentage (e.g '5%')",
            ));
            None
        }
    }
}

fn not_over_100_percent(value: Option<(i64, bool)>, field: &str, raw: &Value) -> Option<Cause> {
    matches!(value, Some((n, true)) if n > 100)
        .then(|| invalid_value(field, raw, "must not be greater than 100%"))
}

fn deployment_strategy(spec: &Value, causes: &mut Vec<Cause>) {
    let strategy = &spec["strategy"];
    let rolling = &strategy["rollingUpdate"];
    match strategy["type"].as_str().unwrap_or_default() {
        "Recreate" if !rolling.is_null() => causes.push(forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        )),
        "Recreate" => {}
        "RollingUpdate" => {
            let path = "spec.strategy.rollingUpdate";
            let unavailable_field = format!("{path}.maxUnavailable");
            let unavailable =
                int_or_percent(&rolling["maxUnavailable"], &unavailable_field, causes);
            let surge = int_or_percent(&rolling["maxSurge"], &format!("{path}.maxSurge"), causes);
            if let (Some((0, _)), Some((0, _))) = (unavailable, surge) {
                causes.push(invalid_value(
                    &unavailable_field,
                    &rolling["maxUnavailable"],
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            causes.extend(not_over_100_percent(
                unavailable,
                &unavailable_field,
                &rolling["maxUnavailable"],
            ));
        }
        other => causes.push(not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn daemon_set_strategy(spec: &Value, causes: &mut Vec<Cause>) {
    let strategy = &spec["updateStrategy"];
    match strategy["type"].as_str().unwrap_or_default() {
        "OnDelete" => {}
        "RollingUpdate" => {
            let rolling = &strategy["rollingUpdate"];
            let path = "spec.updateStrategy.rollingUpdate";
            let (unavailable_field, surge_field) =
                (format!("{path}.maxUnavailable"), format!("{path}.maxSurge"));
            let unavailable =
                int_or_percent(&rolling["maxUnavailable"], &unavailable_field, causes);
            let surge = int_or_percent(&rolling["maxSurge"], &surge_field, causes);
            causes.extend(not_over_100_percent(
                unavailable,
                &unavailable_field,
                &rolling["maxUnavailable"],
            ));
            causes.extend(not_over_100_percent(
                surge,
                &surge_field,
                &rolling["maxSurge"],
            ));
            // A DaemonSet runs one pod per node: it either takes nodes down or surges, not both.
            match (unavailable, surge) {
                (Some((u, _)), Some((s, _))) if u != 0 && s != 0 => causes.push(invalid_value(
                    surge_field,
                    &rolling["maxSurge"],
                    "may not be set when maxUnavailable is non-zero",
                )),
                (Some((0, _)), Some((0, _))) => causes.push(required_because(
                    unavailable_field,
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => causes.push(not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

fn job(object: &Value, spec: &Value, causes: &mut Vec<Cause>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonnegative(spec, key, causes);
    }
    match spec["completionMode"].as_str() {
        None | Some("NonIndexed") => {}
        Some("Indexed") if spec["completions"].is_null() => causes.push(required_because(
            "spec.completions",
            "when completion mode is Indexed",
        )),
        Some("Indexed") => {}
        Some(other) => causes.push(not_supported(
            "spec.completionMode",
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    let selector = match spec.get("selector") {
        None | Some(Value::Null) => {
            causes.push(required("spec.selector"));
            None
        }
        Some(selector) => label_selector(selector, "spec.selector", causes),
    };
    pod_template(
        "Job",
        spec,
        selector.as_ref(),
        &["OnFailure", "Never"],
        causes,
    );
    if spec["manualSelector"] != true
        && let Some(selector) = &selector
    {
        generated_selector(object, selector, causes);
    }
}

/// A Job that did not ask for a manual selector must select (and label its pods with) its
/// own uid and name, so two Jobs never fight over one pod.
fn generated_selector(object: &Value, selector: &LabelSelector, causes: &mut Vec<Cause>) {
    let (Some(uid), Some(name)) = (crate::meta::uid(object), crate::meta::name(object)) else {
        return;
    };
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut expected = Map::new();
    for (key, value) in [
        ("controller-uid", uid),
        ("job-name", name),
        (JOB_CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ] {
        let field = format!("spec.template.metadata.labels[{key}]");
        let why = format!("must be '{value}'");
        match labels.get(key).and_then(Value::as_str) {
            None => causes.push(required_because(field, why)),
            Some(actual) if actual != value => causes.push(invalid(field, actual, why)),
            Some(_) => {}
        }
        if key.contains('/') {
            expected.insert(key.into(), Value::String(value.into()));
        }
    }
    if !selector.matches_labels(&expected) {
        causes.push(invalid_value(
            "spec.selector",
            &object["spec"]["selector"],
            "`selector` not auto-generated",
        ));
    }
}

/// Fields a workload may not change once created.
pub(super) fn validate_update(kind: &str, current: &Value, next: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (old, new) = (&current["spec"], &next["spec"]);
    let mut immutable = |key: &str| {
        if old[key] != new[key] {
            causes.push(invalid_value(
                format!("spec.{key}"),
                &new[key],
                "field is immutable",
            ));
        }
    };
    match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => immutable("selector"),
        "Job" => {
            immutable("selector");
            immutable("completionMode");
            immutable("podFailurePolicy");
            // Elastic indexed Jobs scale completions together with parallelism.
            let elastic = new["completionMode"] == "Indexed"
                && old["completionMode"] == "Indexed"
                && new["completions"] == new["parallelism"];
            if !elastic {
                immutable("completions");
            }
            if job_template(current, next) != new["template"] {
                causes.push(invalid_value(
                    "spec.template",
                    &new["template"],
                    "field is immutable",
                ));
            }
        }
        _ => {}
    }
    causes
}

/// The template an update may leave a Job with. A suspended Job that never started may still
/// move its pods: labels, annotations and scheduling directives are then taken from the update,
/// as Kubernetes allows.
fn job_template(current: &Value, next: &Value) -> Value {
    let mut template = current["spec"]["template"].clone();
    let suspended = current["spec"]["suspend"] == true;
    let never_started = current["status"]["startTime"].is_null();
    if !(suspended && never_started) {
        return template;
    }
    let new = &next["spec"]["template"];
    for (section, key) in [
        ("metadata", "labels"),
        ("metadata", "annotations"),
        ("spec", "nodeSelector"),
        ("spec", "tolerations"),
        ("spec", "affinity"),
        ("spec", "schedulingGates"),
    ] {
        let Some(section_of) = template.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        match new[section].get(key) {
            Some(value) => section_of.insert(key.into(), value.clone()),
            None => section_of.remove(key),
        };
    }
    template
}

#[cfg(test)]
mod tests {
    use crate::resource::lookup;
    use crate::validation::{validate, validate_update};
    use serde_json::{Value, json};

    fn fields(group: &str, plural: &str, object: &Value) -> Vec<String> {
        let r = lookup(group, "v1", plural).unwrap();
        match validate(r, object) {
            Ok(()) => Vec::new(),
            Err(status) => {
                assert_eq!(status.code, 422);
                status.causes.into_iter().map(|c| c.field).collect()
            }
        }
    }

    fn deployment() -> Value {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web.wasm"}]}}}});
        crate::defaults::apply("Deployment", &mut d);
        d
    }

    #[test]
    fn a_good_deployment_passes() {
        assert_eq!(
            fields("apps", "deployments", &deployment()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_selector_must_match_the_template() {
        let mut d = deployment();
        d["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        assert_eq!(
            fields("apps", "deployments", &d),
            ["spec.template.metadata.labels"]
        );
        let r = lookup("apps", "v1", "deployments").unwrap();
        let message = validate(r, &d).unwrap_err().message;
        assert!(
            message.contains("`selector` does not match template `labels`"),
            "{message}"
        );

        d["spec"]["selector"] = json!({});
        assert_eq!(fields("apps", "deployments", &d), ["spec.selector"]);
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(fields("apps", "deployments", &d), ["spec.selector"]);
    }

    #[test]
    fn deployment_numbers_and_strategy_are_checked() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": "0%"});
        assert_eq!(
            fields("apps", "deployments", &d),
            [
                "spec.replicas",
                "spec.strategy.rollingUpdate.maxUnavailable",
                "spec.template.spec.restartPolicy"
            ]
        );
        d = deployment();
        d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
        d["spec"]["template"]["spec"]["containers"] = json!([]);
        assert_eq!(
            fields("apps", "deployments", &d),
            [
                "spec.strategy.rollingUpdate",
                "spec.template.spec.containers"
            ]
        );
        d = deployment();
        d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!("lots");
        assert_eq!(
            fields("apps", "deployments", &d),
            ["spec.strategy.rollingUpdate.maxSurge"]
        );
    }

    #[test]
    fn replication_controllers_select_by_map() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {
            "template": {"metadata": {"labels": {"app": "a"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        crate::defaults::apply("ReplicationController", &mut rc);
        assert_eq!(
            fields("", "replicationcontrollers", &rc),
            Vec::<String>::new()
        );
        rc["spec"]["selector"] = json!({"app": "b"});
        assert_eq!(
            fields("", "replicationcontrollers", &rc),
            ["spec.template.metadata.labels"]
        );
        let bare = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1}});
        assert_eq!(
            fields("", "replicationcontrollers", &bare),
            ["spec.selector", "spec.template"]
        );
    }

    #[test]
    fn daemon_sets_take_one_of_surge_and_unavailable() {
        let mut ds = deployment();
        ds["spec"].as_object_mut().unwrap().remove("strategy");
        for key in ["replicas", "progressDeadlineSeconds"] {
            ds["spec"].as_object_mut().unwrap().remove(key);
        }
        crate::defaults::apply("DaemonSet", &mut ds);
        assert_eq!(fields("apps", "daemonsets", &ds), Vec::<String>::new());
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!(1);
        assert_eq!(
            fields("apps", "daemonsets", &ds),
            ["spec.updateStrategy.rollingUpdate.maxSurge"]
        );
    }

    fn job() -> Value {
        let mut j = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "pi", "image": "pi.wasm"}]}}}});
        crate::defaults::apply("Job", &mut j);
        j
    }

    #[test]
    fn jobs_restart_on_failure_or_never() {
        assert_eq!(fields("batch", "jobs", &job()), Vec::<String>::new());
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        j["spec"]["backoffLimit"] = json!(-1);
        assert_eq!(
            fields("batch", "jobs", &j),
            ["spec.backoffLimit", "spec.template.spec.restartPolicy"]
        );
    }

    #[test]
    fn job_selectors_must_be_generated_unless_manual() {
        let mut j = job();
        j["spec"]["template"]["metadata"]["labels"]["controller-uid"] = json!("other");
        assert_eq!(
            fields("batch", "jobs", &j),
            ["spec.template.metadata.labels[controller-uid]"]
        );
        let mut manual = job();
        manual["spec"]["manualSelector"] = json!(true);
        manual["spec"]["selector"] = json!({"matchLabels": {"job-name": "pi"}});
        assert_eq!(fields("batch", "jobs", &manual), Vec::<String>::new());
    }

    #[test]
    fn selectors_and_job_templates_are_immutable() {
        let deployments = lookup("apps", "v1", "deployments").unwrap();
        let d = deployment();
        let mut moved = d.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        let err = validate_update(deployments, &d, &moved).unwrap_err();
        assert_eq!(err.causes[0].field, "spec.selector");
        assert!(
            err.message.contains("field is immutable"),
            "{}",
            err.message
        );
        let mut scaled = d.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(validate_update(deployments, &d, &scaled).is_ok());

        let jobs = lookup("batch", "v1", "jobs").unwrap();
        let j = job();
        let mut changed = j.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
        changed["spec"]["completions"] = json!(3);
        changed["spec"]["parallelism"] = json!(3);
        let fields: Vec<String> = validate_update(jobs, &j, &changed)
            .unwrap_err()
            .causes
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.completions", "spec.template"]);

        let mut suspended = j.clone();
        suspended["spec"]["suspend"] = json!(true);
        let mut placed = suspended.clone();
        placed["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert!(validate_update(jobs, &suspended, &placed).is_ok());
    }
}
