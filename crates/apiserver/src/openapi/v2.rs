//! The OpenAPI v2 (Swagger 2.0) document: every path flotilla serves with its operations, and
//! the schema definitions. kubectl reads it for client-side validation and `explain`, and looks
//! up each kind's PATCH operation to learn which query parameters (`dryRun`,
//! `fieldValidation`) the server honours.

use flotilla_api::resource::{self, ResourceType};
use flotilla_api::schema;
use serde_json::{Map, Value, json};

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in resource::RESOURCES {
        for (path, item) in resource_paths(r) {
            paths.insert(path, item);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::KUBERNETES_VERSION},
        "paths": paths,
        "definitions": schema::definitions(),
    })
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn group_version_root(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The paths of one resource: its collection (per namespace and across namespaces), its
/// objects, and their subresources.
fn resource_paths(r: &ResourceType) -> Vec<(String, Value)> {
    let Some(definition) = schema::definition_name(r) else {
        return Vec::new();
    };
    let root = group_version_root(r.group, r.version);
    let scope = if r.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    };
    let gvk = gvk(r.group, r.version, r.kind);
    let op = |action: &str, verb: &str, response: &str| Operation {
        action: action.to_string(),
        id: operation_id(verb, r),
        gvk: gvk.clone(),
        response: response.to_string(),
    };
    let list = format!("{definition}List");
    let mut paths = vec![(
        scope.clone(),
        path_item(
            r.namespaced,
            false,
            vec![
                ("get", op("list", "list", &list)),
                ("post", op("post", "create", definition)),
                ("delete", op("deletecollection", "deleteCollection", STATUS)),
            ],
        ),
    )];
    paths.push((
        format!("{scope}/{{name}}"),
        path_item(
            r.namespaced,
            true,
            vec![
                ("get", op("get", "read", definition)),
                ("put", op("put", "replace", definition)),
                ("patch", op("patch", "patch", definition)),
                ("delete", op("delete", "delete", STATUS)),
            ],
        ),
    ));
    if r.namespaced {
        paths.push((
            format!("{root}/{}", r.plural),
            path_item(
                false,
                false,
                vec![("get", op("list", "listForAllNamespaces", &list))],
            ),
        ));
    }
    for sub in r.subresources {
        let (response, sub_gvk) = match *sub {
            "status" => (definition.to_string(), gvk.clone()),
            "scale" => (
                "io.k8s.api.autoscaling.v1.Scale".to_string(),
                self::gvk("autoscaling", "v1", "Scale"),
            ),
            _ => continue,
        };
        let title = format!("{}{}", &sub[..1].to_uppercase(), &sub[1..]);
        let sub_op = |action: &str, verb: &str| Operation {
            action: action.to_string(),
            id: format!("{}{title}", operation_id(verb, r)),
            gvk: sub_gvk.clone(),
            response: response.clone(),
        };
        paths.push((
            format!("{scope}/{{name}}/{sub}"),
            path_item(
                r.namespaced,
                true,
                vec![
                    ("get", sub_op("get", "read")),
                    ("put", sub_op("put", "replace")),
                    ("patch", sub_op("patch", "patch")),
                ],
            ),
        ));
    }
    paths
}

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Kubernetes' operation ids: `patchAppsV1NamespacedDeployment`, `listCoreV1Node`.
fn operation_id(verb: &str, r: &ResourceType) -> String {
    let group: String = if r.group.is_empty() {
        "Core".into()
    } else {
        r.group
            .split('.')
            .next()
            .unwrap_or_default()
            .split('-')
            .map(capitalize)
            .collect()
    };
    let scope = if r.namespaced && verb != "listForAllNamespaces" {
        "Namespaced"
    } else {
        ""
    };
    let (verb, suffix) = match verb {
        "listForAllNamespaces" => ("list", "ForAllNamespaces"),
        "deleteCollection" => ("deleteCollection", ""),
        other => (other, ""),
    };
    format!(
        "{verb}{group}{}{scope}{}{suffix}",
        capitalize(r.version),
        r.kind
    )
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

struct Operation {
    action: String,
    id: String,
    gvk: Value,
    /// Definition name of the response body.
    response: String,
}

fn path_item(namespaced: bool, named: bool, operations: Vec<(&str, Operation)>) -> Value {
    let mut item = Map::new();
    let mut shared = Vec::new();
    if named {
        shared.push(path_parameter("name", "name of the object"));
    }
    if namespaced {
        shared.push(path_parameter(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    shared.push(query_parameter(
        "pretty",
        "If 'true', then the output is pretty printed.",
    ));
    item.insert("parameters".into(), Value::Array(shared));
    for (method, operation) in operations {
        item.insert(method.into(), operation_json(operation));
    }
    Value::Object(item)
}

fn operation_json(op: Operation) -> Value {
    let mut parameters: Vec<Value> = query_parameters(&op.action)
        .iter()
        .map(|(name, description)| query_parameter(name, description))
        .collect();
    let consumes: &[&str] = match op.action.as_str() {
        "patch" => &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        ],
        _ => &["*/*"],
    };
    if let Some(body) = body_schema(&op) {
        parameters.insert(
            0,
            json!({"in": "body", "name": "body", "required": true, "schema": {"$ref": format!("{}{body}", schema::REF_PREFIX)}}),
        );
    }
    json!({
        "operationId": op.id,
        "consumes": consumes,
        "produces": ["application/json", "application/yaml"],
        "schemes": ["https"],
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "schema": {"$ref": format!("{}{}", schema::REF_PREFIX, op.response)}},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    })
}

fn body_schema(op: &Operation) -> Option<String> {
    match op.action.as_str() {
        "post" | "put" => Some(op.response.clone()),
        "patch" => Some("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into()),
        "delete" | "deletecollection" => {
            Some("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into())
        }
        _ => None,
    }
}

/// The query parameters flotilla honours for each action.
fn query_parameters(action: &str) -> &'static [(&'static str, &'static str)] {
    const WRITE: &[(&str, &str)] = &[
        (
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        (
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        (
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
        ),
    ];
    const PATCH: &[(&str, &str)] = &[
        (
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        (
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes. Required for apply requests.",
        ),
        (
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
        ),
        (
            "force",
            "Force is going to \"force\" Apply requests: the applier takes the fields other managers own. Must be unset for non-apply patch requests.",
        ),
    ];
    const LIST: &[(&str, &str)] = &[
        (
            "allowWatchBookmarks",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        (
            "continue",
            "The continue option should be set when retrieving more results from the server.",
        ),
        (
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        (
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        (
            "limit",
            "limit is a maximum number of responses to return for a list call.",
        ),
        (
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        (
            "resourceVersionMatch",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        ("timeoutSeconds", "Timeout for the list/watch call."),
        (
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ];
    const DELETE: &[(&str, &str)] = &[
        (
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        (
            "gracePeriodSeconds",
            "The duration in seconds before the object should be deleted.",
        ),
        (
            "orphanDependents",
            "Deprecated: please use the PropagationPolicy.",
        ),
        (
            "propagationPolicy",
            "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
        ),
    ];
    match action {
        "list" => LIST,
        "post" | "put" => WRITE,
        "patch" => PATCH,
        "delete" | "deletecollection" => DELETE,
        _ => &[],
    }
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({"in": "path", "name": name, "description": description, "required": true, "type": "string", "uniqueItems": true})
}

fn query_parameter(name: &str, description: &str) -> Value {
    let kind = match name {
        "allowWatchBookmarks" | "watch" | "force" | "orphanDependents" => "boolean",
        "limit" | "timeoutSeconds" | "gracePeriodSeconds" => "integer",
        _ => "string",
    };
    json!({"in": "query", "name": name, "description": description, "type": kind, "uniqueItems": true})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_patch_names_its_kind_and_takes_dry_run_and_field_validation() {
        let document = document();
        let patch =
            &document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"dryRun") && names.contains(&"fieldValidation"));
    }

    #[test]
    fn operation_ids_follow_kubernetes() {
        let nodes = resource::lookup("", "v1", "nodes").unwrap();
        assert_eq!(operation_id("list", nodes), "listCoreV1Node");
        let leases = resource::lookup("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(
            operation_id("listForAllNamespaces", leases),
            "listCoordinationV1LeaseForAllNamespaces"
        );
    }
}
