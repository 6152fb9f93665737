//! Validation on create and update: names follow the DNS rules Kubernetes uses, each kind's
//! required fields are present, and every problem is reported with its field path (422).

use crate::resource::ResourceType;
use crate::status::{ApiStatus, Cause};
use serde_json::Value;
use std::collections::HashSet;

mod config_data;
mod modules;
mod networking;
mod volumes;
mod workloads;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// A DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
pub fn dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > DNS1123_LABEL_MAX || !label_chars_ok(value) {
        return Err(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), and be at most {DNS1123_LABEL_MAX} characters"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, ≤ 253 characters.
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty()
        || value.len() > DNS1123_SUBDOMAIN_MAX
        || !value.split('.').all(label_chars_ok)
    {
        return Err(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com'), and be at most {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    Ok(())
}

fn label_chars_ok(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn required(field: impl Into<String>) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field: field.into(),
    }
}

/// `Required value: {detail}`, for a required field with a hint about what it takes.
fn required_because(field: impl Into<String>, detail: impl std::fmt::Display) -> Cause {
    Cause {
        message: format!("Required value: {detail}"),
        ..required(field)
    }
}

fn invalid(field: impl Into<String>, value: &str, why: impl std::fmt::Display) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: \"{value}\": {why}"),
        field: field.into(),
    }
}

/// Like [`invalid`] for any JSON value: strings quoted, numbers and objects as JSON, the way
/// Kubernetes prints `Invalid value: -1: must be greater than or equal to 0`.
fn invalid_value(field: impl Into<String>, value: &Value, why: impl std::fmt::Display) -> Cause {
    match value {
        Value::String(text) => invalid(field, text, why),
        other => Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {other}: {why}"),
            field: field.into(),
        },
    }
}

fn forbidden(field: impl Into<String>, why: impl std::fmt::Display) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {why}"),
        field: field.into(),
    }
}

fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
    let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause {
        reason: "FieldValueNotSupported",
        message: format!(
            "Unsupported value: \"{value}\": supported values: {}",
            supported.join(", ")
        ),
        field: field.into(),
    }
}

/// Checks an object about to be written. Returns a 422 naming every invalid field.
pub fn validate(resource: &ResourceType, object: &Value) -> Result<(), ApiStatus> {
    let mut causes = Vec::new();
    let name = crate::meta::name(object).unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause {
            message: "name or generateName is required".into(),
            ..required("metadata.name")
        });
    } else {
        let rule = if resource.kind == "Namespace" {
            dns1123_label(name)
        } else {
            dns1123_subdomain(name)
        };
        if let Err(why) = rule {
            causes.push(invalid("metadata.name", name, why));
        }
    }
    validate_labels(&crate::meta::labels(object), "metadata.labels", &mut causes);
    match resource.kind {
        "Pod" => validate_pod_spec(
            object.get("spec").unwrap_or(&Value::Null),
            "spec",
            &mut causes,
        ),
        "Event" if object.get("involvedObject").is_none() => {
            causes.push(required("involvedObject"))
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" | "ReplicationController" | "Job" => {
            workloads::validate(resource.kind, object, &mut causes)
        }
        "ConfigMap" | "Secret" => config_data::validate(resource.kind, object, &mut causes),
        "Module" => modules::validate(object, &mut causes),
        "Service" => networking::validate_service(object, &mut causes),
        "Ingress" => networking::validate_ingress(object, &mut causes),
        "Function" => networking::validate_function(object, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiStatus::invalid(resource.kind, name, causes))
    }
}

/// Label keys and values of a label map at `path` (`metadata.labels`, a template's labels, a
/// selector's `matchLabels`).
fn validate_labels(labels: &serde_json::Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for (key, value) in labels {
        let field = format!("{path}.{key}");
        let key_name = key.rsplit('/').next().unwrap_or_default();
        if key_name.is_empty() || key_name.len() > 63 || !label_value_ok(key_name) {
            causes.push(invalid(&field, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        match value.as_str() {
            Some(v) if v.is_empty() || (v.len() <= 63 && label_value_ok(v)) => {}
            Some(v) => causes.push(invalid(&field, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
            None => causes.push(invalid(&field, &value.to_string(), "label values must be strings")),
        }
    }
}

fn label_value_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A pod spec at `path`: `spec` of a Pod, `spec.template.spec` of a workload.
fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push(required(format!("{path}.containers")));
        return;
    };
    let volumes = volumes::validate_volumes(spec, path, causes);
    // Names are unique across init containers and containers: logs and statuses are
    // addressed by container name alone.
    let mut seen = HashSet::new();
    let init_containers = spec.get("initContainers").and_then(Value::as_array);
    let lists = [
        ("initContainers", init_containers.map(Vec::as_slice)),
        ("containers", Some(containers.as_slice())),
    ];
    for (list, containers) in lists {
        for (i, container) in containers.unwrap_or_default().iter().enumerate() {
            let field = format!("{path}.{list}[{i}]");
            validate_container(container, &field, &mut seen, causes);
            if list == "initContainers" {
                for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if container.get(kind).is_some() {
                        causes.push(forbidden(
                            format!("{field}.{kind}"),
                            "may not be set for init containers",
                        ));
                    }
                }
            }
            volumes::validate_mounts(container, &field, &volumes, causes);
        }
    }
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
        && !RESTART_POLICIES.contains(&policy)
    {
        causes.push(not_supported(
            format!("{path}.restartPolicy"),
            policy,
            RESTART_POLICIES,
        ));
    }
}

/// One container's name (a unique DNS label) and image.
fn validate_container(
    container: &Value,
    field: &str,
    seen: &mut HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    match container.get("name").and_then(Value::as_str) {
        None | Some("") => causes.push(required(format!("{field}.name"))),
        Some(name) => {
            if let Err(why) = dns1123_label(name) {
                causes.push(invalid(format!("{field}.name"), name, why));
            } else if !seen.insert(name.to_string()) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    message: format!("Duplicate value: \"{name}\""),
                    field: format!("{field}.name"),
                });
            }
        }
    }
    match container.get("image").and_then(Value::as_str) {
        None | Some("") => causes.push(required(format!("{field}.image"))),
        Some(_) => {}
    }
    for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get(kind) {
            validate_probe(probe, &format!("{field}.{kind}"), causes);
        }
    }
}

/// A probe's action: `exec`, where `command[0]` names the export to call, or `httpGet` of an
/// HTTP component, which needs a port.
fn validate_probe(probe: &Value, field: &str, causes: &mut Vec<Cause>) {
    for unsupported in ["tcpSocket", "grpc"] {
        if probe.get(unsupported).is_some() {
            causes.push(forbidden(
                format!("{field}.{unsupported}"),
                "flotilla runs exec and httpGet probes: exec.command: [EXPORT] calls a \
                 function the module exports (0 or nothing returned is success); httpGet asks \
                 an HTTP component",
            ));
            return;
        }
    }
    if let Some(get) = probe.get("httpGet") {
        let port = get.get("port");
        let valid = match port {
            Some(Value::Number(n)) => n.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
            Some(Value::String(name)) => !name.is_empty(),
            _ => false,
        };
        if !valid {
            causes.push(required_because(
                format!("{field}.httpGet.port"),
                "a port number (1-65535) or the name of a container port",
            ));
        }
        return;
    }
    let command = probe.pointer("/exec/command").and_then(Value::as_array);
    if command.is_none_or(|c| c.first().and_then(Value::as_str).is_none_or(str::is_empty)) {
        causes.push(required_because(
            format!("{field}.exec.command"),
            "the name of a function the module exports",
        ));
    }
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

/// Checks an update against the object it replaces: the fields a kind does not let change.
/// Runs besides [`validate`], which checks the new object on its own.
pub fn validate_update(
    resource: &ResourceType,
    current: &Value,
    next: &Value,
) -> Result<(), ApiStatus> {
    if resource.kind == "Pod" {
        return validate_pod_update(current, next);
    }
    let causes = workloads::validate_update(resource.kind, current, next);
    if causes.is_empty() {
        Ok(())
    } else {
        let name = crate::meta::name(current).unwrap_or_default();
        Err(ApiStatus::invalid(resource.kind, name, causes))
    }
}

/// Pod specs are immutable once created, except container images and the deadline, as in
/// Kubernetes; `spec.nodeName` is set only through binding.
pub fn validate_pod_update(current: &Value, next: &Value) -> Result<(), ApiStatus> {
    let comparable = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            map.remove("activeDeadlineSeconds");
            if let Some(Value::Array(containers)) = map.get_mut("containers") {
                for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                    container.remove("image");
                }
            }
        }
        spec
    };
    if comparable(current) == comparable(next) {
        return Ok(());
    }
    let name = crate::meta::name(current).unwrap_or_default();
    Err(ApiStatus::invalid(
        "Pod",
        name,
        vec![Cause {
            reason: "FieldValueForbidden",
            message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image` or `spec.activeDeadlineSeconds`; delete and recreate the pod instead".into(),
            field: "spec".into(),
        }],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    fn pods() -> &'static ResourceType {
        lookup("", "v1", "pods").unwrap()
    }

    #[test]
    fn names_follow_dns_rules() {
        assert!(dns1123_subdomain("hello.world-1").is_ok());
        for bad in ["", "Hello", "-a", "a-", "a_b", "a..b", &"x".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad} accepted");
        }
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label(&"x".repeat(64)).is_err());
    }

    #[test]
    fn pod_without_containers_names_the_field() {
        let err = validate(pods(), &json!({"metadata": {"name": "p"}, "spec": {}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(err.causes[0].field, "spec.containers");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let pod = json!({
            "metadata": {"name": "Bad_Name", "labels": {"app": "-x"}},
            "spec": {"restartPolicy": "Sometimes", "containers": [
                {"name": "a", "image": "hello"}, {"name": "a"}
            ]}
        });
        let fields: Vec<String> = validate(pods(), &pod)
            .unwrap_err()
            .causes
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "metadata.labels.app",
                "spec.containers[1].name",
                "spec.containers[1].image",
                "spec.restartPolicy"
            ]
        );
    }

    #[test]
    fn a_good_pod_passes() {
        let pod = json!({"metadata": {"name": "hello", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "hello", "image": "hello"}]}});
        assert!(validate(pods(), &pod).is_ok());
    }

    #[test]
    fn pod_updates_may_change_only_images() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n", "containers": [{"name": "a", "image": "v1"}]}});
        let mut new_image = pod.clone();
        new_image["spec"]["containers"][0]["image"] = json!("v2");
        assert!(validate_pod_update(&pod, &new_image).is_ok());
        let mut moved = pod.clone();
        moved["spec"]["nodeName"] = json!("elsewhere");
        assert_eq!(
            validate_pod_update(&pod, &moved).unwrap_err().causes[0].field,
            "spec"
        );
    }
}
