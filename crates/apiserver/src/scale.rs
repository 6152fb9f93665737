//! The `scale` subresource of Deployments, ReplicaSets and ReplicationControllers: an
//! autoscaling/v1 `Scale` view of the parent, through which `kubectl scale` and autoscalers
//! read and set `spec.replicas` without knowing the parent's kind.
//!
//! A write to the Scale changes only the parent's `spec.replicas` and goes through the same
//! update path as a write to the parent, so resourceVersion preconditions, generation bumps
//! and validation behave alike.

use crate::ApiState;
use crate::error::{ApiError, Result};
use crate::objects::{self, Part, WriteOptions, reject};
use crate::patching::{self, PatchType};
use crate::path::ResourceRequest;
use flotilla_api::field_manager::Manager;
use flotilla_api::resource::ResourceType;
use flotilla_api::schema::{self, SchemaNode};
use flotilla_api::selector::LabelSelector;
use flotilla_api::{ApiStatus, Cause, meta};
use flotilla_store::Mutation;
use serde_json::{Map, Value, json};

/// The `Scale` of a parent object.
pub fn scale_of(r: &ResourceType, parent: &Value) -> Value {
    let mut metadata = Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(value) = parent["metadata"].get(key) {
            metadata.insert(key.into(), value.clone());
        }
    }
    let selector = &parent["spec"]["selector"];
    // A ReplicationController selects with a plain map of labels, the apps kinds with a
    // LabelSelector; either way the Scale carries it in query-string form for autoscalers.
    let selector = if r.kind == "ReplicationController" {
        selector
            .as_object()
            .map_or(Ok(LabelSelector::default()), LabelSelector::from_labels)
    } else {
        LabelSelector::from_label_selector(selector)
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": parent["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": parent["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector.map(|s| s.to_string()).unwrap_or_default(),
        },
    })
}

/// `GET .../{name}/scale`.
pub async fn get(state: &ApiState, request: &ResourceRequest) -> Result<Value> {
    let parent = state
        .store()
        .get(&request.key())
        .await?
        .ok_or_else(|| ApiError(objects::not_found(request)))?;
    Ok(scale_of(request.resource, &parent))
}

/// `PUT .../{name}/scale`.
pub async fn replace(
    state: &ApiState,
    request: &ResourceRequest,
    scale: Value,
    options: &WriteOptions,
) -> Result<Value> {
    write(state, request, options, move |_, _| Ok(scale)).await
}

/// `PATCH .../{name}/scale`: the patch applies to the current Scale, as in Kubernetes.
pub async fn patch(
    state: &ApiState,
    request: &ResourceRequest,
    patch_type: PatchType,
    patch: Value,
    options: &WriteOptions,
) -> Result<Value> {
    if patch_type == PatchType::Apply {
        return Err(ApiError(ApiStatus::unsupported_media_type(
            "server-side apply to the scale subresource is not supported; apply the object itself, or use a merge patch",
        )));
    }
    write(state, request, options, move |r, current| {
        let scale_schema =
            SchemaNode::definition(schema::definitions(), "io.k8s.api.autoscaling.v1.Scale");
        patching::apply(&scale_of(r, current), patch_type, &patch, scale_schema)
    })
    .await
}

/// Sets the parent's replicas to those of the Scale `desired` makes of the current parent.
async fn write(
    state: &ApiState,
    request: &ResourceRequest,
    options: &WriteOptions,
    desired: impl FnOnce(&ResourceType, &Value) -> Result<Value, ApiStatus> + Send + 'static,
) -> Result<Value> {
    let r = request.resource;
    let missing = objects::not_found(request);
    let manager_name = options.manager.clone();
    let decide = move |current: Option<&Value>| {
        let current = current.ok_or_else(|| reject(missing))?;
        let scale = desired(r, current).map_err(reject)?;
        let (api_version, now) = (r.api_version(), flotilla_api::now_rfc3339());
        let manager = Manager {
            name: &manager_name,
            api_version: &api_version,
            time: &now,
        };
        parent_update(r, current, &scale, &manager).map_err(reject)
    };
    let parent = objects::write(state, request, options.dry_run, decide).await?;
    Ok(scale_of(r, &parent))
}

/// The parent with the Scale's replicas, carrying the Scale's resourceVersion (if any) as the
/// precondition of the write.
fn parent_update(
    r: &ResourceType,
    current: &Value,
    scale: &Value,
    manager: &Manager,
) -> Result<Mutation, ApiStatus> {
    let name = meta::name(current).unwrap_or_default();
    if let Some(kind) = scale.get("kind").and_then(Value::as_str)
        && kind != "Scale"
    {
        return Err(ApiStatus::bad_request(format!(
            "the body of a scale request must be an autoscaling/v1 Scale, not a {kind}"
        )));
    }
    if let Some(body_name) = meta::name(scale)
        && body_name != name
    {
        return Err(ApiStatus::bad_request(format!(
            "the name of the object ({body_name}) does not match the name in the URL ({name})"
        )));
    }
    // `spec.replicas` is omitted when zero in autoscaling/v1, so absent means zero.
    let replicas = &scale["spec"]["replicas"];
    let replicas = match replicas {
        Value::Null => 0,
        value => value.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            let why = if value.is_i64() || value.is_u64() {
                "must be greater than or equal to 0"
            } else {
                "must be an integer"
            };
            ApiStatus::invalid(
                "Scale",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: {value}: {why}"),
                    field: "spec.replicas".into(),
                }],
            )
        })?,
    };
    let mut parent = current.clone();
    parent["spec"]["replicas"] = json!(replicas);
    match meta::resource_version(scale).filter(|rv| !rv.is_empty()) {
        Some(rv) => meta::set_meta(&mut parent, "resourceVersion", rv),
        None => {
            meta::metadata_mut(&mut parent).remove("resourceVersion");
        }
    }
    objects::next_version(r, Part::Main, current, parent, Some(manager))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resource::lookup;

    #[test]
    fn scales_show_replicas_and_the_selector_string() {
        let deployments = lookup("apps", "v1", "deployments").unwrap();
        let parent = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u",
                "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"tier": "x", "app": "web"}}},
            "status": {"replicas": 2}});
        let scale = scale_of(deployments, &parent);
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["apiVersion"], "autoscaling/v1");
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
        assert!(scale["metadata"].get("labels").is_none());
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(
            scale["status"],
            json!({"replicas": 2, "selector": "app=web,tier=x"})
        );

        let rcs = lookup("", "v1", "replicationcontrollers").unwrap();
        let rc =
            json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": {"app": "a"}}});
        let scale = scale_of(rcs, &rc);
        assert_eq!(scale["status"], json!({"replicas": 0, "selector": "app=a"}));
    }
}
