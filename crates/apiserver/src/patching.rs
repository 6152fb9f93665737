//! The four patch formats of `PATCH` requests, and what they do to an object.

use crate::error::{ApiError, Result};
use flotilla_api::schema::SchemaNode;
use flotilla_api::{ApiStatus, strategic_merge};
use serde_json::Value;

/// The patch formats Kubernetes clients send, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch: a list of operations.
    Json,
    /// RFC 7386 JSON merge patch: lists are replaced whole.
    Merge,
    /// Kubernetes' strategic merge patch: lists with a merge key merge item by item.
    StrategicMerge,
    /// Server-side apply: a partial object whose fields the request's field manager owns.
    Apply,
}

impl PatchType {
    pub fn from_media_type(media_type: &str) -> Result<Self> {
        match media_type {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError(ApiStatus::unsupported_media_type(format!(
                "the patch content type {other:?} is not supported; use application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml"
            )))),
        }
    }
}

/// Decodes the body of a patch: JSON, or YAML for server-side apply.
pub fn decode(patch_type: PatchType, body: &[u8]) -> Result<Value, ApiStatus> {
    match patch_type {
        PatchType::Apply => serde_yaml::from_slice(body).map_err(|e| {
            ApiStatus::bad_request(format!("the apply configuration is not valid YAML: {e}"))
        }),
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiStatus::bad_request(format!("the patch is not valid JSON: {e}"))),
    }
}

/// Applies a JSON, merge or strategic merge patch to `current`; `schema` is the object's.
/// Server-side apply needs field ownership and is handled by `field_manager`.
pub fn apply(
    current: &Value,
    patch_type: PatchType,
    patch: &Value,
    schema: SchemaNode<'_>,
) -> Result<Value, ApiStatus> {
    match patch_type {
        PatchType::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiStatus::bad_request(format!("the JSON patch is malformed: {e}")))?;
            let mut patched = current.clone();
            json_patch::patch(&mut patched, &operations)
                .map_err(|e| ApiStatus::invalid_patch(e.to_string()))?;
            Ok(patched)
        }
        PatchType::Merge => {
            let mut patched = current.clone();
            json_patch::merge(&mut patched, patch);
            Ok(patched)
        }
        PatchType::StrategicMerge => strategic_merge::apply(current, patch, schema)
            .map_err(|e| ApiStatus::invalid_patch(e.to_string())),
        PatchType::Apply => Err(ApiStatus::internal(
            "server-side apply is not a plain patch",
        )),
    }
}
