//! Pod volumes and the containers' mounts of them (`pkg/apis/core/validation`): each volume
//! has a unique name and exactly one source, and every mount names a declared volume at an
//! absolute path of its own.
//!
//! flotilla mounts volumes as WASI preopened directories, so only sources that are
//! directories on the node are supported; other sources are refused here, with the list of
//! those that work, rather than leaving the pod stuck on its node.

use super::{Cause, dns1123_label, forbidden, invalid, not_supported, required};
use serde_json::Value;
use std::collections::HashSet;

/// The volume sources a node can mount.
pub(super) const SUPPORTED_SOURCES: &[&str] = &["emptyDir", "hostPath", "configMap", "secret"];

/// Checks `spec.volumes` and returns the names declared.
pub(super) fn validate_volumes(
    spec: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) -> HashSet<String> {
    let mut names = HashSet::new();
    let volumes = spec.get("volumes").and_then(Value::as_array);
    for (i, volume) in volumes.into_iter().flatten().enumerate() {
        let field = format!("{path}.volumes[{i}]");
        match volume.get("name").and_then(Value::as_str) {
            None | Some("") => causes.push(required(format!("{field}.name"))),
            Some(name) => {
                if let Err(why) = dns1123_label(name) {
                    causes.push(invalid(format!("{field}.name"), name, why));
                } else if !names.insert(name.to_string()) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate",
                        message: format!("Duplicate value: \"{name}\""),
                        field: format!("{field}.name"),
                    });
                }
            }
        }
        let sources: Vec<&str> = volume
            .as_object()
            .into_iter()
            .flat_map(|v| v.keys())
            .map(String::as_str)
            .filter(|key| *key != "name")
            .collect();
        match sources.as_slice() {
            [] => causes.push(required_source(&field)),
            [source] if SUPPORTED_SOURCES.contains(source) => validate_source(
                source,
                &volume[*source],
                &format!("{field}.{source}"),
                causes,
            ),
            [source] => causes.push(not_supported(
                format!("{field}.{source}"),
                source,
                SUPPORTED_SOURCES,
            )),
            [_, second, ..] => causes.push(forbidden(
                format!("{field}.{second}"),
                "may not specify more than 1 volume type",
            )),
        }
    }
    names
}

fn required_source(field: &str) -> Cause {
    Cause {
        message: format!(
            "Required value: must specify a volume type ({})",
            SUPPORTED_SOURCES.join(", ")
        ),
        ..required(field)
    }
}

fn validate_source(source: &str, value: &Value, field: &str, causes: &mut Vec<Cause>) {
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
    match source {
        "hostPath" => match text("path") {
            "" => causes.push(required(format!("{field}.path"))),
            path if !path.starts_with('/') => causes.push(invalid(
                format!("{field}.path"),
                path,
                "must be an absolute path",
            )),
            _ => {}
        },
        "configMap" if text("name").is_empty() => causes.push(required(format!("{field}.name"))),
        "secret" if text("secretName").is_empty() => {
            causes.push(required(format!("{field}.secretName")))
        }
        _ => {}
    }
    for (i, item) in value
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let item_field = format!("{field}.items[{i}]");
        if item
            .get("key")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(required(format!("{item_field}.key")));
        }
        match item.get("path").and_then(Value::as_str) {
            None | Some("") => causes.push(required(format!("{item_field}.path"))),
            Some(path) => {
                if let Err(why) = relative_path(path) {
                    causes.push(invalid(format!("{item_field}.path"), path, why));
                }
            }
        }
    }
}

/// A file path inside a volume: relative, without `..` elements.
pub(super) fn relative_path(path: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err("must be a relative path");
    }
    if path.split('/').any(|element| element == "..") {
        return Err("must not contain '..'");
    }
    Ok(())
}

/// Checks a container's `volumeMounts` against the declared volumes.
pub(super) fn validate_mounts(
    container: &Value,
    field: &str,
    volumes: &HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    let mut paths = HashSet::new();
    let mounts = container.get("volumeMounts").and_then(Value::as_array);
    for (i, mount) in mounts.into_iter().flatten().enumerate() {
        let field = format!("{field}.volumeMounts[{i}]");
        match mount.get("name").and_then(Value::as_str) {
            None | Some("") => causes.push(required(format!("{field}.name"))),
            Some(name) if !volumes.contains(name) => causes.push(Cause {
                reason: "FieldValueNotFound",
                message: format!("Not found: \"{name}\""),
                field: format!("{field}.name"),
            }),
            Some(_) => {}
        }
        match mount.get("mountPath").and_then(Value::as_str) {
            None | Some("") => causes.push(required(format!("{field}.mountPath"))),
            Some(path) if !path.starts_with('/') => causes.push(invalid(
                format!("{field}.mountPath"),
                path,
                "must be an absolute path (it becomes a WASI preopened directory)",
            )),
            Some(path) if !paths.insert(path.trim_end_matches('/').to_string()) => causes.push(
                invalid(format!("{field}.mountPath"), path, "must be unique"),
            ),
            Some(_) => {}
        }
        if let Some(sub_path) = mount.get("subPath").and_then(Value::as_str)
            && let Err(why) = relative_path(sub_path)
        {
            causes.push(invalid(format!("{field}.subPath"), sub_path, why));
        }
    }
}
