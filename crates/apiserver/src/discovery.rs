//! Discovery: the documents kubectl and client libraries read to learn which resources exist.

use axum::Json;
use flotilla_api::resource::{self, ResourceType};
use serde_json::{Value, json};

pub async fn healthy() -> &'static str {
    "ok"
}

/// The Kubernetes version flotilla's API corresponds to.
pub const KUBERNETES_VERSION: &str = "v1.34.0";

/// The Kubernetes version flotilla's API corresponds to, so kubectl's skew check is satisfied.
pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "34",
        "gitVersion": concat!("v1.34.0+flotilla-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (Rust)",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    }))
}

pub async fn core_versions() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }))
}

pub async fn core_resources() -> Json<Value> {
    Json(resource_list("", "v1"))
}

pub async fn groups() -> Json<Value> {
    let groups: Vec<Value> = resource::groups()
        .into_iter()
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `APIResourceList` of one group version, with each served subresource listed as
/// `plural/subresource` the way the Kubernetes apiserver lists them.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in resource::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(describe(r));
        for sub in r.subresources {
            let verbs: &[&str] = match *sub {
                "status" | "scale" => &["get", "patch", "update"],
                "binding" => &["create"],
                // As Kubernetes lists `services/proxy`.
                "proxy" => &["create", "delete", "get", "patch", "update"],
                _ => &["get"],
            };
            let kind = match *sub {
                "binding" => "Binding",
                "log" => "Pod",
                "scale" => "Scale",
                _ => r.kind,
            };
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            // A Scale belongs to another group than its parent; discovery says which, so
            // clients decode it with the right type.
            if *sub == "scale" {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn describe(r: &ResourceType) -> Value {
    json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": resource::verbs(),
        "shortNames": r.short_names,
        "categories": r.categories(),
    })
}
