//! Server-side tables: what `kubectl get` prints, computed where the objects are, as the
//! Kubernetes apiserver does (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

use crate::rest::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::meta;
use flotilla_api::resource::ResourceType;
use serde_json::{Value, json};

/// Whether the client asked for a Table.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("as=Table"))
}

pub fn respond(table: Value) -> Response {
    (StatusCode::OK, axum::Json(table)).into_response()
}

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    priority: u8,
}

const fn column(name: &'static str, kind: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
};
const AGE: Column = column("Age", "string", 0);

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            NAME,
            column("Ready", "string", 0),
            column("Status", "string", 0),
            column("Restarts", "string", 0),
            AGE,
            column("IP", "string", 1),
            column("Node", "string", 1),
        ],
        "Node" => vec![
            NAME,
            column("Status", "string", 0),
            column("Roles", "string", 0),
            AGE,
            column("Version", "string", 0),
            column("Internal-IP", "string", 1),
        ],
        "Namespace" => vec![NAME, column("Status", "string", 0), AGE],
        "ConfigMap" => vec![NAME, column("Data", "integer", 0), AGE],
        "Event" => vec![
            column("Last Seen", "string", 0),
            column("Type", "string", 0),
            column("Reason", "string", 0),
            column("Object", "string", 0),
            column("Message", "string", 0),
        ],
        _ => vec![NAME, AGE],
    }
}

fn cells(kind: &str, object: &Value) -> Vec<Value> {
    let name = json!(meta::name(object).unwrap_or_default());
    let created = json!(age(meta::str_at(
        object,
        &["metadata", "creationTimestamp"]
    )));
    match kind {
        "Pod" => {
            let statuses = object["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = object["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|s| s["restartCount"].as_i64())
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(object)),
                json!(restarts.to_string()),
                created.clone(),
                json!(object["status"]["podIP"].as_str().unwrap_or("<none>")),
                json!(object["spec"]["nodeName"].as_str().unwrap_or("<none>")),
            ]
        }
        "Node" => {
            let ready = object["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"] == "True");
            let status = match ready {
                Some(true) => "Ready",
                Some(false) => "NotReady",
                None => "Unknown",
            };
            let address = object["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str())
                .unwrap_or("<none>");
            vec![
                name,
                json!(status),
                json!("<none>"),
                created.clone(),
                json!(
                    object["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                ),
                json!(address),
            ]
        }
        "Namespace" => vec![
            name,
            json!(object["status"]["phase"].as_str().unwrap_or("Active")),
            created,
        ],
        "ConfigMap" => vec![
            name,
            json!(object["data"].as_object().map_or(0, |d| d.len())),
            created,
        ],
        "Event" => {
            let seen = meta::str_at(object, &["lastTimestamp"])
                .or_else(|| meta::str_at(object, &["eventTime"]))
                .or_else(|| meta::str_at(object, &["metadata", "creationTimestamp"]));
            let involved = &object["involvedObject"];
            vec![
                json!(age(seen)),
                json!(object["type"].as_str().unwrap_or("Normal")),
                json!(object["reason"].as_str().unwrap_or("")),
                json!(format!(
                    "{}/{}",
                    involved["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                    involved["name"].as_str().unwrap_or("")
                )),
                json!(object["message"].as_str().unwrap_or("")),
            ]
        }
        _ => vec![name, created],
    }
}

/// The STATUS column of `kubectl get pods`: the most telling container reason, else the phase.
pub fn pod_status(pod: &Value) -> String {
    if meta::deletion_timestamp(pod).is_some() {
        return "Terminating".into();
    }
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for status in &statuses {
        if let Some(reason) = status["state"]["waiting"]["reason"].as_str() {
            return reason.into();
        }
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    for status in &statuses {
        if let Some(reason) = status["state"]["terminated"]["reason"].as_str()
            && phase != "Running"
        {
            return reason.into();
        }
    }
    phase.into()
}

/// Age in Kubernetes' short form: `45s`, `3m12s`, `17m`, `5h3m`, `20h`, `12d`.
fn age(timestamp: Option<&str>) -> String {
    let Some(then) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let seconds = (jiff::Timestamp::now() - then).get_seconds().max(0);
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        _ => format!("{d}d"),
    }
}

/// A `meta.k8s.io/v1` Table of `objects`. Each row carries the object's metadata (or the whole
/// object with `includeObject=Object`), which kubectl reads for namespaces and `-o name`.
pub fn render(resource: &ResourceType, objects: &[Value], revision: u64, query: &Query) -> Value {
    let definitions: Vec<Value> = columns(resource.kind)
        .iter()
        .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": "", "priority": c.priority}))
        .collect();
    let include = query
        .get("includeObject")
        .map_or("Metadata", String::as_str);
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(resource.kind, object)});
            match include {
                "None" => {}
                "Object" => row["object"] = object.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object["metadata"].clone(),
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_prefers_container_reasons() {
        let waiting = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        assert_eq!(pod_status(&waiting), "ErrImagePull");
        let done = json!({"status": {"phase": "Succeeded", "containerStatuses": [
            {"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}});
        assert_eq!(pod_status(&done), "Completed");
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(pod_status(&deleting), "Terminating");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let ago =
            |s: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)).to_string();
        assert_eq!(age(Some(&ago(5))), "5s");
        assert_eq!(age(Some(&ago(200))), "3m20s");
        assert_eq!(age(Some(&ago(3 * 86400))), "3d");
        assert_eq!(age(None), "<unknown>");
    }
}
