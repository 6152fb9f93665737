//! Request bodies in (JSON or YAML, size-capped) and responses out (JSON, YAML on request).

use crate::error::{ApiError, Result};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_api::ApiStatus;
use serde_json::Value;

/// The largest request body accepted, as in Kubernetes (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Reads the whole body, refusing one over [`MAX_BODY_BYTES`] with 413.
pub async fn read(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError(ApiStatus::too_large(format!(
                "the request body is larger than the {} MiB limit",
                MAX_BODY_BYTES / (1024 * 1024)
            )))
        })
}

/// The media type of the request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON or YAML object; anything else, or malformed input, is a 400.
pub fn decode_object(bytes: &[u8], media_type: &str) -> Result<Value> {
    if media_type == "application/vnd.kubernetes.protobuf" {
        return crate::protobuf_body::decode(bytes);
    }
    if media_type.contains("protobuf") || media_type.contains("cbor") {
        return Err(ApiError(ApiStatus::unsupported_media_type(format!(
            "{media_type} is not supported; send application/json or application/yaml"
        ))));
    }
    let value: Value = if media_type.contains("yaml") {
        serde_yaml::from_slice(bytes).map_err(|e| {
            ApiError(ApiStatus::bad_request(format!(
                "the body is not valid YAML: {e}"
            )))
        })?
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError(ApiStatus::bad_request(format!(
                "the body is not valid JSON: {e}"
            )))
        })?
    };
    if !value.is_object() {
        return Err(ApiError(ApiStatus::bad_request(
            "the body must be a single object (a JSON or YAML mapping)",
        )));
    }
    Ok(value)
}

/// Whether the client asked for YAML rather than JSON.
fn wants_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.starts_with("application/yaml"))
}

/// An object response in the representation the client accepts.
pub fn respond(headers: &HeaderMap, code: StatusCode, value: &Value) -> Response {
    if wants_yaml(headers) {
        match serde_yaml::to_string(value) {
            Ok(text) => (code, [(header::CONTENT_TYPE, "application/yaml")], text).into_response(),
            Err(e) => {
                ApiError(ApiStatus::internal(format!("could not encode YAML: {e}"))).into_response()
            }
        }
    } else {
        (code, axum::Json(value)).into_response()
    }
}
