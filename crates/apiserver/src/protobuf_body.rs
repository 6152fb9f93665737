//! Request bodies in Kubernetes' protobuf encoding.
//!
//! kubectl's typed clients send protobuf and never fall back to JSON, so `kubectl create
//! namespace` and `kubectl create configmap` only work if the server reads it. The envelope
//! is the magic `k8s\0` and a `runtime.Unknown` naming the kind; the object inside is decoded
//! with k8s-pb's message types and turned into the JSON the rest of the server handles. Kinds
//! without a conversion here are refused with 415 and a way around.

use crate::error::{ApiError, Result};
use base64::Engine;
use flotilla_api::ApiStatus;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf request body into the object's JSON form.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let envelope = bytes
        .strip_prefix(MAGIC)
        .and_then(|rest| Unknown::decode(rest).ok())
        .ok_or_else(|| {
            ApiError(ApiStatus::bad_request(
                "the protobuf body is malformed: it must start with k8s\\0 and a runtime.Unknown",
            ))
        })?;
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = envelope.raw.unwrap_or_default();
    let malformed = |e: prost::DecodeError| {
        ApiError(ApiStatus::bad_request(format!(
            "the protobuf {kind} is malformed: {e}"
        )))
    };
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            namespace(core::Namespace::decode(raw.as_slice()).map_err(malformed)?)
        }
        ("v1", "ConfigMap") => {
            config_map(core::ConfigMap::decode(raw.as_slice()).map_err(malformed)?)
        }
        ("v1", "Secret") => secret(core::Secret::decode(raw.as_slice()).map_err(malformed)?),
        _ => {
            return Err(ApiError(ApiStatus::unsupported_media_type(format!(
                "flotilla reads protobuf bodies only for Namespaces, ConfigMaps and Secrets, not {kind} \
                 ({api_version}); send JSON or YAML instead, e.g. `kubectl create … \
                 --dry-run=client -o yaml | kubectl apply -f -`"
            ))));
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

fn namespace(namespace: core::Namespace) -> Value {
    let mut object = json!({"metadata": object_meta(namespace.metadata.unwrap_or_default())});
    if let Some(spec) = namespace.spec.filter(|s| !s.finalizers.is_empty()) {
        object["spec"] = json!({"finalizers": spec.finalizers});
    }
    object
}

fn config_map(config_map: core::ConfigMap) -> Value {
    let mut object = json!({"metadata": object_meta(config_map.metadata.unwrap_or_default())});
    if !config_map.data.is_empty() {
        object["data"] = json!(config_map.data);
    }
    if !config_map.binary_data.is_empty() {
        object["binaryData"] = base64_map(config_map.binary_data);
    }
    if let Some(immutable) = config_map.immutable {
        object["immutable"] = json!(immutable);
    }
    object
}

/// `kubectl create secret` sends this; bytes become base64 strings, as in JSON.
fn secret(secret: core::Secret) -> Value {
    let mut object = json!({"metadata": object_meta(secret.metadata.unwrap_or_default())});
    if !secret.data.is_empty() {
        object["data"] = base64_map(secret.data);
    }
    if !secret.string_data.is_empty() {
        object["stringData"] = json!(secret.string_data);
    }
    if let Some(type_) = secret.r#type {
        object["type"] = json!(type_);
    }
    if let Some(immutable) = secret.immutable {
        object["immutable"] = json!(immutable);
    }
    object
}

fn base64_map(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Value {
    let encoded: Map<String, Value> = entries
        .into_iter()
        .map(|(key, bytes)| {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            (key, Value::String(text))
        })
        .collect();
    Value::Object(encoded)
}

/// The metadata a client may set on create; the server fills in the rest.
fn object_meta(meta: meta::ObjectMeta) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.into(), value);
    };
    // Go's protobuf encoding sends empty strings for unset fields.
    let set = |value: Option<String>| value.filter(|v| !v.is_empty());
    if let Some(name) = set(meta.name) {
        put("name", json!(name));
    }
    if let Some(prefix) = set(meta.generate_name) {
        put("generateName", json!(prefix));
    }
    if let Some(namespace) = set(meta.namespace) {
        put("namespace", json!(namespace));
    }
    if !meta.labels.is_empty() {
        put("labels", json!(meta.labels));
    }
    if !meta.annotations.is_empty() {
        put("annotations", json!(meta.annotations));
    }
    if !meta.finalizers.is_empty() {
        put("finalizers", json!(meta.finalizers));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    #[test]
    fn a_namespace_as_kubectl_create_sends_it() {
        let namespace = core::Namespace {
            metadata: Some(meta::ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "Namespace", namespace.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        );
    }

    #[test]
    fn a_config_map_keeps_data_and_binary_data() {
        let mut config_map = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: Some("settings".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        config_map.data.insert("color".into(), "blue".into());
        config_map.binary_data.insert("raw".into(), vec![0, 1, 2]);
        let object = decode(&envelope("v1", "ConfigMap", config_map.encode_to_vec())).unwrap();
        assert_eq!(object["data"]["color"], "blue");
        assert_eq!(object["binaryData"]["raw"], "AAEC");
    }

    #[test]
    fn other_kinds_and_garbage_are_refused_clearly() {
        let refused = decode(&envelope("apps/v1", "Deployment", vec![])).unwrap_err();
        assert_eq!(refused.0.code, 415);
        assert!(refused.0.message.contains("--dry-run=client -o yaml"));
        assert_eq!(decode(b"not protobuf").unwrap_err().0.code, 400);
    }
}
