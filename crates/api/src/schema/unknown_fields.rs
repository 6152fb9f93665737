//! Fields an object carries that its schema does not declare: usually a typo
//! (`imagee`) or a field at the wrong level, which Kubernetes would silently drop.

use super::SchemaNode;
use serde_json::Value;

/// The paths of the undeclared fields of `object` (or of a patch to it), in Kubernetes' notation
/// (`spec.containers[0].imagee`), in document order.
pub fn unknown_fields(object: &Value, schema: SchemaNode<'_>) -> Vec<String> {
    let mut found = Vec::new();
    walk(object, schema, "", &mut found);
    found
}

fn walk(value: &Value, schema: SchemaNode<'_>, path: &str, found: &mut Vec<String>) {
    if !schema.is_known() {
        return;
    }
    match value {
        Value::Object(fields) => {
            // `$`-keys are strategic merge patch directives, not fields.
            for (name, field) in fields.iter().filter(|(name, _)| !name.starts_with('$')) {
                let field_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                if schema.declares(name) {
                    walk(field, schema.field(name), &field_path, found);
                } else {
                    found.push(field_path);
                }
            }
        }
        Value::Array(items) if schema.type_name() == Some("array") => {
            for (index, item) in items.iter().enumerate() {
                walk(item, schema.items(), &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource;
    use serde_json::json;

    fn deployments() -> SchemaNode<'static> {
        SchemaNode::of_kind(resource::lookup("apps", "v1", "deployments").unwrap())
    }

    #[test]
    fn finds_a_misspelt_field_deep_in_a_template() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"anything": "goes"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "web", "resources": {"limits": {"cpu": 1}}},
                        {"name": "b", "imagee": "web"}
                    ]}
                },
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "replica": 3
            }
        });
        assert_eq!(
            unknown_fields(&deployment, deployments()),
            ["spec.replica", "spec.template.spec.containers[1].imagee"]
        );
    }

    #[test]
    fn a_well_formed_object_has_none() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "hello", "args": ["1"]}]},
            "status": {"phase": "Pending"}});
        let pods = SchemaNode::of_kind(resource::lookup("", "v1", "pods").unwrap());
        assert!(unknown_fields(&pod, pods).is_empty());
    }
}
