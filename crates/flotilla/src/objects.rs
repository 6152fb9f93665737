//! Untyped objects for the user commands: manifests in, dynamic API handles out.

use anyhow::{Context, Result, bail};
use flotilla_api::resource::{self, ResourceType};
use kube::api::{Api, ApiResource, DynamicObject};
use std::path::Path;

/// The documents of a YAML or JSON manifest (`-` reads standard input); `List` kinds are
/// unpacked and empty documents skipped.
pub fn read_manifest(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(document).with_context(|| {
                format!(
                    "{}: document {} is not valid YAML or JSON",
                    path.display(),
                    index + 1
                )
            })?;
        match value {
            serde_json::Value::Null => {}
            value
                if value["kind"].as_str().is_some_and(|k| k.ends_with("List"))
                    && value["items"].is_array() =>
            {
                documents.extend(value["items"].as_array().cloned().unwrap_or_default());
            }
            value => documents.push(value),
        }
    }
    Ok(documents)
}

/// The resource type an object declares with `apiVersion` and `kind`.
pub fn resource_of(object: &serde_json::Value) -> Result<&'static ResourceType> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        bail!("every object needs apiVersion and kind");
    }
    resource::lookup_kind(api_version, kind)
        .with_context(|| format!("flotilla does not serve {kind} in {api_version}"))
}

/// The resource type a person names on the command line (`pods`, `po`, `pod`, `Pod`).
pub fn resource_named(name: &str) -> Result<&'static ResourceType> {
    resource::lookup_any(name).with_context(|| {
        let known: Vec<&str> = resource::RESOURCES.iter().map(|r| r.plural).collect();
        format!(
            "the server doesn't have a resource type {name:?} (known: {})",
            known.join(", ")
        )
    })
}

/// A dynamic API handle for one resource type in `namespace` (ignored for cluster-scoped ones;
/// `None` means all namespaces).
pub fn api(client: &kube::Client, r: &ResourceType, namespace: Option<&str>) -> Api<DynamicObject> {
    let api_resource = ApiResource {
        group: r.group.into(),
        version: r.version.into(),
        api_version: r.api_version(),
        kind: r.kind.into(),
        plural: r.plural.into(),
    };
    match (r.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &api_resource),
        _ => Api::all_with(client.clone(), &api_resource),
    }
}
