//! Reading and writing `metadata` of untyped objects.

use serde_json::{Map, Value};

/// A string field at `path` (e.g. `["metadata", "name"]`), if present.
pub fn str_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cursor = object;
    for segment in path {
        cursor = cursor.get(segment)?;
    }
    cursor.as_str()
}

pub fn name(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "name"])
}

pub fn namespace(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "namespace"])
}

pub fn uid(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "uid"])
}

pub fn resource_version(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "resourceVersion"])
}

pub fn deletion_timestamp(object: &Value) -> Option<&str> {
    str_at(object, &["metadata", "deletionTimestamp"])
}

/// The labels of an object (empty when it has none).
pub fn labels(object: &Value) -> Map<String, Value> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `metadata` as a mutable map, created if absent (or replaced if it was not an object).
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    let root = ensure_object(object);
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    ensure_object(metadata)
}

/// Sets `metadata.<field>` to a string.
pub fn set_meta(object: &mut Value, field: &str, value: impl Into<String>) {
    metadata_mut(object).insert(field.to_string(), Value::String(value.into()));
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// Parses a resourceVersion as the store revision it encodes.
pub fn parse_revision(resource_version: &str) -> Option<u64> {
    resource_version.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_is_created_on_demand() {
        let mut object = json!({"kind": "Pod"});
        set_meta(&mut object, "name", "hello");
        assert_eq!(name(&object), Some("hello"));
        assert_eq!(namespace(&object), None);
        assert!(labels(&object).is_empty());
    }
}
