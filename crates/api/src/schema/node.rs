//! Walking an object and its schema together.

use super::REF_PREFIX;
use serde_json::{Map, Value};

/// A position in an OpenAPI v2 schema: the schema of one value of an object. `$ref`s are
/// followed into the definitions; a field's own annotations (its patch strategy, merge key,
/// list type) sit on the property beside the `$ref` and are read from there first.
///
/// A node may be *unknown* (no schema: a field the schema does not declare, or the values of
/// a free-form map). Walking on from an unknown node stays unknown, and lists there are atomic.
#[derive(Debug, Clone, Copy)]
pub struct SchemaNode<'a> {
    /// The schema as written at this position (possibly just a `$ref` with annotations).
    local: Option<&'a Value>,
    /// `local` with its `$ref` followed.
    resolved: Option<&'a Value>,
    definitions: &'a Map<String, Value>,
}

impl<'a> SchemaNode<'a> {
    /// The node of the definition `name` (e.g. `io.k8s.api.core.v1.Pod`); unknown if missing.
    pub fn definition(definitions: &'a Map<String, Value>, name: &str) -> Self {
        Self::at(definitions, definitions.get(name))
    }

    /// A node without schema.
    pub fn unknown(definitions: &'a Map<String, Value>) -> Self {
        Self::at(definitions, None)
    }

    /// The node of a served kind, from the flotilla definitions.
    pub fn of_kind(r: &crate::resource::ResourceType) -> SchemaNode<'static> {
        let definitions = super::definitions();
        match super::definition_name(r) {
            Some(name) => SchemaNode::definition(definitions, name),
            None => SchemaNode::unknown(definitions),
        }
    }

    fn at(definitions: &'a Map<String, Value>, local: Option<&'a Value>) -> Self {
        let mut resolved = local;
        // Follow chains of references; a cycle of bare references would be a broken schema.
        for _ in 0..8 {
            match resolved
                .and_then(|s| s.get("$ref"))
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                Some(name) => resolved = definitions.get(name),
                None => break,
            }
        }
        SchemaNode {
            local,
            resolved,
            definitions,
        }
    }

    /// Whether there is a schema here.
    pub fn is_known(&self) -> bool {
        self.resolved.is_some()
    }

    /// The schema of field `name` of an object: a declared property, else the schema of the
    /// map's values (`additionalProperties`), else unknown.
    pub fn field(&self, name: &str) -> Self {
        let Some(schema) = self.resolved else {
            return *self;
        };
        if let Some(property) = schema.get("properties").and_then(|p| p.get(name)) {
            return Self::at(self.definitions, Some(property));
        }
        match schema.get("additionalProperties") {
            Some(values @ Value::Object(_)) => Self::at(self.definitions, Some(values)),
            _ => Self::unknown(self.definitions),
        }
    }

    /// Whether the object schema here declares field `name`, or takes any field.
    pub fn declares(&self, name: &str) -> bool {
        let Some(schema) = self.resolved else {
            return true;
        };
        schema.get("properties").and_then(|p| p.get(name)).is_some()
            || schema.get("additionalProperties").is_some()
            || self.takes_anything()
    }

    /// Whether any value fits here: no schema, or one that keeps unknown fields or holds
    /// arbitrary JSON (`RawExtension`, int-or-string, quantities and other scalars).
    pub fn takes_anything(&self) -> bool {
        let Some(schema) = self.resolved else {
            return true;
        };
        schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
            || (schema.get("properties").is_none()
                && schema.get("additionalProperties").is_none()
                && schema.get("type").is_none_or(|t| t == "object"))
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Self {
        match self.resolved.and_then(|s| s.get("items")) {
            Some(items) => Self::at(self.definitions, Some(items)),
            None => Self::unknown(self.definitions),
        }
    }

    /// The declared `type`, if any.
    pub fn type_name(&self) -> Option<&'a str> {
        self.resolved?.get("type")?.as_str()
    }

    /// An annotation of this field: the property's own first, then its definition's.
    fn annotation(&self, key: &str) -> Option<&'a Value> {
        self.local
            .and_then(|s| s.get(key))
            .or_else(|| self.resolved.and_then(|s| s.get(key)))
    }

    /// `x-kubernetes-patch-strategy`, split: `merge`, `retainKeys`, `replace`.
    pub fn patch_strategies(&self) -> Vec<&'a str> {
        self.annotation("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| s.split(',').map(str::trim).collect())
            .unwrap_or_default()
    }

    /// `x-kubernetes-patch-merge-key`: the field that identifies an item of a merged list.
    pub fn patch_merge_key(&self) -> Option<&'a str> {
        self.annotation("x-kubernetes-patch-merge-key")?.as_str()
    }

    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`; lists without one are atomic.
    pub fn list_type(&self) -> &'a str {
        self.annotation("x-kubernetes-list-type")
            .and_then(Value::as_str)
            .unwrap_or("atomic")
    }

    /// `x-kubernetes-list-map-keys`: the fields that identify an item of a `map` list.
    pub fn list_map_keys(&self) -> Vec<&'a str> {
        self.annotation("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The schema's description, for documentation.
    pub fn description(&self) -> Option<&'a str> {
        self.annotation("description")?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource;

    #[test]
    fn walks_from_a_deployment_to_its_containers_env() {
        let deployment = resource::lookup("apps", "v1", "deployments").unwrap();
        let containers = SchemaNode::of_kind(deployment)
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(containers.list_type(), "map");
        let env = containers.items().field("env");
        assert_eq!(env.patch_merge_key(), Some("name"));
        assert_eq!(env.items().field("value").type_name(), Some("string"));
        assert!(!containers.items().declares("imagee"));
    }

    #[test]
    fn labels_are_a_map_of_strings_and_unknown_fields_stay_unknown() {
        let pods = resource::lookup("", "v1", "pods").unwrap();
        let labels = SchemaNode::of_kind(pods).field("metadata").field("labels");
        assert_eq!(labels.field("app").type_name(), Some("string"));
        let unknown = SchemaNode::of_kind(pods).field("nonsense");
        assert!(!unknown.is_known());
        assert!(!unknown.field("deeper").is_known());
        assert_eq!(unknown.list_type(), "atomic");
    }
}
