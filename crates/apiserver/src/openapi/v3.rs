//! OpenAPI v3 documents, one per group version, derived from the v2 document the way
//! Kubernetes publishes them: current kubectl reads these for `explain` and to learn which
//! query parameters each kind's PATCH takes.

use serde_json::{Map, Value, json};

const V2_REF: &str = "#/definitions/";
const V3_REF: &str = "#/components/schemas/";

/// The URL path of a group version below `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
pub fn group_version_path(group: &str, version: &str) -> String {
    super::v2::group_version_root(group, version)
        .trim_start_matches('/')
        .to_string()
}

/// The document of one group version: its paths, and every schema (the paths reach most of
/// them, and clients resolve references within the one document).
pub fn group_version_document(v2: &Value, group: &str, version: &str) -> Value {
    let root = super::v2::group_version_root(group, version);
    let prefix = format!("{root}/");
    let paths: Map<String, Value> = v2["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, _)| path.starts_with(&prefix))
        .map(|(path, item)| (path.clone(), path_item(item)))
        .collect();
    let schemas: Map<String, Value> = v2["definitions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| (name.clone(), schema_v3(schema)))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": v2["info"].clone(),
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// A v2 schema in v3 form: references point into `components/schemas`, and a reference with
/// siblings (a field's description beside its type) becomes `allOf: [$ref]`, since v3 ignores
/// siblings of `$ref`.
fn schema_v3(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(key, _)| *key != "$ref")
                .map(|(key, value)| (key.clone(), schema_v3(value)))
                .collect();
            if let Some(Value::String(target)) = map.get("$ref") {
                let reference = json!({"$ref": target.replacen(V2_REF, V3_REF, 1)});
                if out.is_empty() {
                    return reference;
                }
                out.insert("allOf".into(), json!([reference]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema_v3).collect()),
        other => other.clone(),
    }
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = if key == "parameters" {
            parameters(value)
        } else {
            operation(value)
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let consumes = op["consumes"].as_array().cloned().unwrap_or_default();
    for (key, value) in op.as_object().into_iter().flatten() {
        match key.as_str() {
            "consumes" | "produces" | "schemes" => {}
            "parameters" => {
                out.insert(key.clone(), parameters(value));
                let body = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["in"] == "body");
                if let Some(body) = body {
                    out.insert("requestBody".into(), request_body(body, &consumes));
                }
            }
            "responses" => {
                out.insert(key.clone(), responses(value));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// Non-body parameters, with their type moved into `schema`.
fn parameters(list: &Value) -> Value {
    let converted = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] != "body")
        .map(|p| {
            let mut parameter = Map::new();
            let mut schema = Map::new();
            for (key, value) in p.as_object().into_iter().flatten() {
                match key.as_str() {
                    "type" | "uniqueItems" => {
                        schema.insert(key.clone(), value.clone());
                    }
                    _ => {
                        parameter.insert(key.clone(), value.clone());
                    }
                }
            }
            parameter.insert("schema".into(), Value::Object(schema));
            Value::Object(parameter)
        })
        .collect();
    Value::Array(converted)
}

fn request_body(body: &Value, consumes: &[Value]) -> Value {
    let schema = schema_v3(&body["schema"]);
    let content: Map<String, Value> = consumes
        .iter()
        .filter_map(Value::as_str)
        .map(|media| (media.to_string(), json!({"schema": schema})))
        .collect();
    json!({"content": content, "required": true})
}

fn responses(responses: &Value) -> Value {
    let converted = responses
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, response)| {
            let mut out = json!({"description": response["description"]});
            if let Some(schema) = response.get("schema") {
                let schema = schema_v3(schema);
                out["content"] = json!({
                    "application/json": {"schema": schema},
                    "application/yaml": {"schema": schema},
                });
            }
            (code.clone(), out)
        })
        .collect();
    Value::Object(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_version_document_has_only_its_paths_and_v3_references() {
        let v2 = super::super::v2::document();
        let apps = group_version_document(&v2, "apps", "v1");
        let paths = apps["paths"].as_object().unwrap();
        assert!(paths.keys().all(|p| p.starts_with("/apis/apps/v1/")));
        let patch = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/apply-patch+yaml")
                .is_some()
        );
        let field_validation = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "fieldValidation")
            .unwrap();
        assert_eq!(field_validation["in"], "query");
        assert_eq!(field_validation["schema"]["type"], "string");
        let spec =
            &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
        assert_eq!(
            spec["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert!(!apps.to_string().contains("#/definitions/"));
    }
}
