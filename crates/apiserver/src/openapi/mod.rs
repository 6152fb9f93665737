//! OpenAPI documents generated from the served kinds' schemas: `/openapi/v2` (JSON, and the
//! protobuf encoding kubectl up to 1.26 asks for) and `/openapi/v3` (an index of per-group-
//! version documents, each addressed by a content hash so clients may cache it forever).
//! Everything is built once, at first request, and served from memory.

mod protobuf;
mod v2;
mod v3;

use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_api::ApiStatus;
use flotilla_api::resource;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::error::ApiError;

/// The v2 protobuf media type as kube-openapi answers it: client-go cannot parse the `@` of the
/// spelling it asks with.
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

struct Documents {
    v2_json: Bytes,
    v2_protobuf: Bytes,
    v3_index: Bytes,
    /// By group-version path (`api/v1`): the document and its hash.
    v3: BTreeMap<String, (Bytes, String)>,
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let v2 = v2::document();
        let mut v3 = BTreeMap::new();
        let mut index = Map::new();
        let core = std::iter::once(("", "v1"));
        for (group, version) in core.chain(resource::groups()) {
            let path = v3::group_version_path(group, version);
            let document = Bytes::from(
                serde_json::to_vec(&v3::group_version_document(&v2, group, version))
                    .expect("documents serialize"),
            );
            let hash = hex_upper(&Sha256::digest(&document));
            index.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            );
            v3.insert(path, (document, hash));
        }
        Documents {
            v2_json: Bytes::from(serde_json::to_vec(&v2).expect("documents serialize")),
            v2_protobuf: Bytes::from(protobuf::encode(&v2)),
            v3_index: Bytes::from(
                serde_json::to_vec(&json!({"paths": index})).expect("documents serialize"),
            ),
            v3,
        }
    })
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `GET /openapi/v2`.
pub async fn v2(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("protobuf") {
        let mut response = (StatusCode::OK, documents().v2_protobuf.clone()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(V2_PROTOBUF));
        return response;
    }
    if !accept.is_empty() && !accept.contains("json") && !accept.contains("*/*") {
        return ApiError(ApiStatus::not_acceptable(format!(
            "/openapi/v2 is served as application/json or {V2_PROTOBUF}, not {accept}"
        )))
        .into_response();
    }
    json_response(documents().v2_json.clone(), None)
}

/// `GET /openapi/v3`: the index of group-version documents.
pub async fn v3_index() -> Response {
    json_response(documents().v3_index.clone(), None)
}

/// `GET /openapi/v3/{api/v1 | apis/GROUP/VERSION}`.
pub async fn v3_group_version(Path(path): Path<String>, request: Request) -> Response {
    let Some((document, hash)) = documents().v3.get(path.trim_matches('/')) else {
        return ApiError(ApiStatus::no_route(request.uri().path())).into_response();
    };
    // A request naming the current hash may be cached for good, as Kubernetes allows.
    let immutable = request
        .uri()
        .query()
        .is_some_and(|q| q.contains(&format!("hash={hash}")));
    json_response(document.clone(), Some((hash, immutable)))
}

fn json_response(body: Bytes, hash: Option<(&String, bool)>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some((hash, immutable)) = hash {
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
            headers.insert(header::ETAG, etag);
        }
        let cache = if immutable {
            "public, immutable"
        } else {
            "no-cache, private"
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}
