//! Server-side tables: what `kubectl get` prints, computed where the objects are, as the
//! Kubernetes apiserver does (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

use crate::rest::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::meta;
use flotilla_api::resource::ResourceType;
use flotilla_api::selector::LabelSelector;
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
const CONTAINERS: Column = column("Containers", "string", 1);
const IMAGES: Column = column("Images", "string", 1);
const SELECTOR: Column = column("Selector", "string", 1);

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
        "Secret" => vec![
            NAME,
            column("Type", "string", 0),
            column("Data", "integer", 0),
            AGE,
        ],
        "Deployment" => vec![
            NAME,
            column("Ready", "string", 0),
            column("Up-to-date", "integer", 0),
            column("Available", "integer", 0),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "ReplicaSet" | "ReplicationController" => vec![
            NAME,
            column("Desired", "integer", 0),
            column("Current", "integer", 0),
            column("Ready", "integer", 0),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "DaemonSet" => vec![
            NAME,
            column("Desired", "integer", 0),
            column("Current", "integer", 0),
            column("Ready", "integer", 0),
            column("Up-to-date", "integer", 0),
            column("Available", "integer", 0),
            column("Node Selector", "string", 0),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "Job" => vec![
            NAME,
            column("Status", "string", 0),
            column("Completions", "string", 0),
            column("Duration", "string", 0),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "Lease" => vec![NAME, column("Holder", "string", 0), AGE],
        "Service" => vec![
            NAME,
            column("Type", "string", 0),
            column("Cluster-IP", "string", 0),
            column("External-IP", "string", 0),
            column("Port(s)", "string", 0),
            AGE,
            SELECTOR,
        ],
        "Endpoints" => vec![NAME, column("Endpoints", "string", 0), AGE],
        "EndpointSlice" => vec![
            NAME,
            column("AddressType", "string", 0),
            column("Ports", "string", 0),
            column("Endpoints", "string", 0),
            AGE,
        ],
        "Ingress" => vec![
            NAME,
            column("Class", "string", 0),
            column("Hosts", "string", 0),
            column("Address", "string", 0),
            column("Ports", "string", 0),
            AGE,
        ],
        "Function" => vec![
            NAME,
            column("URL", "string", 0),
            column("Ready", "string", 0),
            column("Desired", "integer", 0),
            AGE,
            column("Image", "string", 1),
        ],
        "Module" => vec![
            NAME,
            column("Tags", "string", 0),
            AGE,
            column("Digests", "string", 1),
        ],
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
            let address = object["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str())
                .unwrap_or("<none>");
            vec![
                name,
                json!(node_status(object)),
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
        "Secret" => vec![
            name,
            json!(object["type"].as_str().unwrap_or("Opaque")),
            json!(object["data"].as_object().map_or(0, |d| d.len())),
            created,
        ],
        "Deployment" => {
            let status = &object["status"];
            let mut row = vec![
                name,
                json!(format!(
                    "{}/{}",
                    count(&status["readyReplicas"]),
                    count(&object["spec"]["replicas"])
                )),
                json!(count(&status["updatedReplicas"])),
                json!(count(&status["availableReplicas"])),
                created,
            ];
            row.extend(template_cells(kind, object));
            row
        }
        "ReplicaSet" | "ReplicationController" => {
            let status = &object["status"];
            let mut row = vec![
                name,
                json!(count(&object["spec"]["replicas"])),
                json!(count(&status["replicas"])),
                json!(count(&status["readyReplicas"])),
                created,
            ];
            row.extend(template_cells(kind, object));
            row
        }
        "DaemonSet" => {
            let status = &object["status"];
            let node_selector = object["spec"]["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|labels| {
                    let mut pairs: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    pairs.sort();
                    pairs.join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into());
            let mut row = vec![
                name,
                json!(count(&status["desiredNumberScheduled"])),
                json!(count(&status["currentNumberScheduled"])),
                json!(count(&status["numberReady"])),
                json!(count(&status["updatedNumberScheduled"])),
                json!(count(&status["numberAvailable"])),
                json!(node_selector),
                created,
            ];
            row.extend(template_cells(kind, object));
            row
        }
        "Job" => {
            let mut row = vec![
                name,
                json!(job_status(object)),
                json!(job_completions(object)),
                json!(job_duration(object)),
                created,
            ];
            row.extend(template_cells(kind, object));
            row
        }
        "Service" => {
            let spec = &object["spec"];
            let ports: Vec<String> = (spec["ports"].as_array().into_iter().flatten())
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            vec![
                name,
                json!(spec["type"].as_str().unwrap_or("ClusterIP")),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!(none_if_empty(ports.join(","))),
                created,
                json!(selector_text(&spec["selector"])),
            ]
        }
        "Endpoints" => {
            let mut addresses = Vec::new();
            for subset in object["subsets"].as_array().into_iter().flatten() {
                for address in subset["addresses"].as_array().into_iter().flatten() {
                    for port in subset["ports"].as_array().into_iter().flatten() {
                        addresses.push(format!(
                            "{}:{}",
                            address["ip"].as_str().unwrap_or_default(),
                            port["port"]
                        ));
                    }
                }
            }
            vec![name, json!(shortened(addresses)), created]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = (object["ports"].as_array().into_iter().flatten())
                .map(|p| p["port"].to_string())
                .collect();
            let addresses: Vec<String> = (object["endpoints"].as_array().into_iter().flatten())
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            vec![
                name,
                json!(object["addressType"].as_str().unwrap_or_default()),
                json!(none_if_empty(ports.join(","))),
                json!(shortened(addresses)),
                created,
            ]
        }
        "Ingress" => {
            let hosts: Vec<String> = (object["spec"]["rules"].as_array().into_iter().flatten())
                .map(|r| r["host"].as_str().unwrap_or("*").to_string())
                .collect();
            let address: Vec<String> = (object["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten())
            .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
            .map(str::to_string)
            .collect();
            vec![
                name,
                json!(
                    object["spec"]["ingressClassName"]
                        .as_str()
                        .unwrap_or("<none>")
                ),
                json!(if hosts.is_empty() {
                    "*".into()
                } else {
                    hosts.join(",")
                }),
                json!(address.join(",")),
                json!("80"),
                created,
            ]
        }
        "Function" => {
            let status = &object["status"];
            vec![
                name,
                json!(status["url"].as_str().unwrap_or("<pending>")),
                json!(format!(
                    "{}/{}",
                    count(&status["readyInstances"]),
                    count(&status["instances"])
                )),
                json!(count(&status["desiredInstances"])),
                created,
                json!(object["spec"]["image"].as_str().unwrap_or_default()),
            ]
        }
        "Module" => {
            let tags = object["spec"]["tags"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let list = |field: &str, width: usize| {
                let items: Vec<String> = tags
                    .iter()
                    .filter_map(|t| t[field].as_str())
                    .map(|v| v.chars().take(width).collect())
                    .collect();
                if items.is_empty() {
                    "<none>".to_string()
                } else {
                    items.join(",")
                }
            };
            // Short digests (sha256: and 12 digits), as `docker images` shows image IDs.
            vec![
                name,
                json!(list("name", 128)),
                created,
                json!(list("digest", 19)),
            ]
        }
        "Lease" => vec![
            name,
            json!(
                object["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or_default()
            ),
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

/// An integer count that Kubernetes omits when zero.
fn count(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The `-o wide` cells every workload shares: CONTAINERS, IMAGES and SELECTOR of its template.
fn template_cells(kind: &str, object: &Value) -> [Value; 3] {
    let containers = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let join = |field: &str| {
        let values: Vec<&str> = containers
            .iter()
            .filter_map(|c| c[field].as_str())
            .collect();
        values.join(",")
    };
    let selector = &object["spec"]["selector"];
    let selector = if kind == "ReplicationController" {
        selector
            .as_object()
            .map_or(Ok(LabelSelector::default()), LabelSelector::from_labels)
    } else {
        LabelSelector::from_label_selector(selector)
    };
    let selector = match selector.map(|s| s.to_string()) {
        Ok(text) if !text.is_empty() => text,
        _ => "<none>".into(),
    };
    [json!(join("name")), json!(join("image")), json!(selector)]
}

/// The STATUS column of `kubectl get nodes`: Ready or NotReady by the Ready condition
/// (Unknown without one), plus SchedulingDisabled for a cordoned node.
fn node_status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True");
    let mut status = match ready {
        Some(true) => "Ready",
        Some(false) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn has_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// The STATUS column of `kubectl get jobs`, in kubectl's order of precedence.
fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if meta::deletion_timestamp(job).is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// The COMPLETIONS column: `succeeded/completions`; a Job without completions is done after
/// one success, shown as `n/1` (with its parallelism when that is above one).
fn job_completions(job: &Value) -> String {
    let succeeded = count(&job["status"]["succeeded"]);
    let spec = &job["spec"];
    match (spec["completions"].as_i64(), spec["parallelism"].as_i64()) {
        (Some(completions), _) => format!("{succeeded}/{completions}"),
        (None, None) => "0/1".into(),
        (None, Some(parallelism)) if parallelism > 1 => {
            format!("{succeeded}/1 of {parallelism}")
        }
        (None, Some(_)) => format!("{succeeded}/1"),
    }
}

/// The DURATION column: from start to completion, or to now while the Job runs.
fn job_duration(job: &Value) -> String {
    let time = |field: &str| {
        job["status"][field]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    let Some(start) = time("startTime") else {
        return String::new();
    };
    let end = time("completionTime").unwrap_or_else(jiff::Timestamp::now);
    human_duration((end - start).get_seconds())
}

/// The STATUS column of `kubectl get pods`: the most telling container reason, else the phase.
pub fn pod_status(pod: &Value) -> String {
    if meta::deletion_timestamp(pod).is_some() {
        return "Terminating".into();
    }
    if let Some(initializing) = init_status(pod) {
        return initializing;
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

/// While init containers have not all succeeded, what kubectl shows for them: the first
/// unfinished one's reason (`Init:Error`, `Init:CrashLoopBackOff`) or progress (`Init:1/2`).
fn init_status(pod: &Value) -> Option<String> {
    let statuses = pod["status"]["initContainerStatuses"].as_array()?;
    let total = pod["spec"]["initContainers"]
        .as_array()
        .map_or(statuses.len(), Vec::len);
    for (done, status) in statuses.iter().enumerate() {
        let state = &status["state"];
        let terminated = &state["terminated"];
        if terminated["exitCode"] == 0 {
            continue;
        }
        if terminated.is_object() {
            return Some(match terminated["reason"].as_str() {
                Some(reason) if !reason.is_empty() => format!("Init:{reason}"),
                _ => format!("Init:ExitCode:{}", terminated["exitCode"]),
            });
        }
        return Some(match state["waiting"]["reason"].as_str() {
            Some(reason) if reason != "PodInitializing" => format!("Init:{reason}"),
            _ => format!("Init:{done}/{total}"),
        });
    }
    None
}

/// Age in Kubernetes' short form: `45s`, `3m12s`, `17m`, `5h3m`, `20h`, `12d`.
fn age(timestamp: Option<&str>) -> String {
    let Some(then) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration((jiff::Timestamp::now() - then).get_seconds())
}

/// A duration the way kubectl prints ages and job durations.
fn human_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
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

/// `<none>` for an empty cell, as kubectl prints one.
fn none_if_empty(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

/// A label selector map as `a=b,c=d`, or `<none>`.
fn selector_text(selector: &Value) -> String {
    let mut pairs: Vec<String> = (selector.as_object().into_iter().flatten())
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    none_if_empty(pairs.join(","))
}

/// The first three items and how many more, as kubectl shows endpoints.
fn shortened(items: Vec<String>) -> String {
    match items.len() {
        0 => "<none>".into(),
        1..=3 => items.join(","),
        n => format!("{} + {} more...", items[..3].join(","), n - 3),
    }
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
        let initializing = |states: Value| {
            json!({"spec": {"initContainers": [{}, {}]},
                "status": {"phase": "Pending", "initContainerStatuses": states}})
        };
        let done = json!({"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let running = json!({"state": {"running": {}}});
        let failed = json!({"state": {"terminated": {"exitCode": 2, "reason": "Error"}}});
        let backoff = json!({"state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        assert_eq!(
            pod_status(&initializing(json!([done, running]))),
            "Init:1/2"
        );
        assert_eq!(pod_status(&initializing(json!([failed]))), "Init:Error");
        assert_eq!(
            pod_status(&initializing(json!([backoff]))),
            "Init:CrashLoopBackOff"
        );
    }

    fn row(kind: &str, object: Value) -> Vec<Value> {
        let cells = cells(kind, &object);
        assert_eq!(cells.len(), columns(kind).len(), "{kind}");
        cells
    }

    #[test]
    fn workloads_show_kubectl_columns() {
        let deployment = json!({"metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [
                         {"name": "a", "image": "a.wasm"}, {"name": "b", "image": "b.wasm"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let cells = row("Deployment", deployment);
        assert_eq!(cells[1..4], [json!("2/3"), json!(3), json!(2)]);
        assert_eq!(
            cells[5..],
            [json!("a,b"), json!("a.wasm,b.wasm"), json!("app=web")]
        );

        let rc =
            json!({"metadata": {"name": "rc"}, "spec": {"replicas": 2, "selector": {"app": "x"}}});
        let cells = row("ReplicationController", rc);
        assert_eq!(cells[1..4], [json!(2), json!(0), json!(0)]);
        assert_eq!(cells[7], json!("app=x"));

        let ds = json!({"metadata": {"name": "ds"}, "spec": {"template": {"spec": {
            "nodeSelector": {"zone": "a", "disk": "ssd"}}}}, "status": {"desiredNumberScheduled": 2}});
        let cells = row("DaemonSet", ds);
        assert_eq!(cells[1], json!(2));
        assert_eq!(cells[6], json!("disk=ssd,zone=a"));

        let lease = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
        assert_eq!(row("Lease", lease)[1], json!("n1"));
    }

    #[test]
    fn jobs_show_status_completions_and_duration() {
        let done = json!({"metadata": {"name": "pi"}, "spec": {"completions": 1, "parallelism": 1},
            "status": {"succeeded": 1, "startTime": "2026-01-01T00:00:00Z",
                       "completionTime": "2026-01-01T00:00:07Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        let cells = row("Job", done);
        assert_eq!(cells[1..4], [json!("Complete"), json!("1/1"), json!("7s")]);
        let work_queue = json!({"spec": {"parallelism": 3}, "status": {
            "conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_completions(&work_queue), "0/1 of 3");
        assert_eq!(job_status(&work_queue), "Suspended");
        assert_eq!(job_duration(&work_queue), "");
    }

    #[test]
    fn nodes_show_readiness_and_cordoning() {
        let node = |status: &str, unschedulable: bool| {
            json!({"spec": {"unschedulable": unschedulable},
                   "status": {"conditions": [{"type": "Ready", "status": status}]}})
        };
        assert_eq!(node_status(&node("True", false)), "Ready");
        assert_eq!(node_status(&node("Unknown", false)), "NotReady");
        assert_eq!(
            node_status(&node("False", true)),
            "NotReady,SchedulingDisabled"
        );
        assert_eq!(node_status(&json!({})), "Unknown");
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
