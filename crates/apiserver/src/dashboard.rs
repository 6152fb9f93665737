//! The browser dashboard: `GET /` is `web-ui/index.html`, `GET /ui/{file}` any other file of
//! `web-ui/`.
//!
//! The files are compiled into the binary (`rust-embed`, with `debug-embed` so debug builds
//! embed them too) rather than read from disk or built by a bundler: `flotilla up` stays one
//! file to copy and run, the dashboard it serves is always the one it was built with, and
//! there is no JavaScript build step — the files in `web-ui/` are what the browser gets.
//! `build.rs` makes cargo rebuild this crate when a file there is added or changed.
//!
//! These routes answer without a bearer token (see `auth.rs`): they hold no cluster data. The
//! page asks the user for the token and sends it with every API call it makes. The
//! Content-Security-Policy keeps the page to this origin — no external scripts, styles or
//! requests, no framing — so a page served with the API's authority cannot be turned against
//! it.

use crate::error::ApiError;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::ApiStatus;

#[derive(rust_embed::RustEmbed)]
#[folder = "../../web-ui/"]
struct Assets;

/// The policy every dashboard response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`: the page for browsers (they ask for `text/html`); for API clients, such as
/// `kubectl get --raw /`, the paths the server answers, as Kubernetes' root lists them.
pub async fn index(headers: HeaderMap) -> Response {
    let wants_page = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_page {
        serve("index.html", &headers)
    } else {
        axum::Json(serde_json::json!({ "paths": root_paths() })).into_response()
    }
}

fn root_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        "/api",
        "/api/v1",
        "/apis",
        "/healthz",
        "/livez",
        "/openapi/v2",
        "/openapi/v3",
        "/readyz",
        "/version",
    ]
    .map(String::from)
    .to_vec();
    for (group, version) in flotilla_api::resource::groups() {
        paths.push(format!("/apis/{group}"));
        paths.push(format!("/apis/{group}/{version}"));
    }
    paths.sort();
    paths.dedup();
    paths
}

/// `GET /ui/{*file}`.
pub async fn file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(file: &str, request_headers: &HeaderMap) -> Response {
    let mut response = match Assets::get(file) {
        Some(asset) => {
            let etag = format!("\"{}\"", hex(&asset.metadata.sha256_hash()));
            let unchanged = request_headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
            let mut response = if unchanged {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (
                    [(header::CONTENT_TYPE, content_type(file))],
                    asset.data.into_owned(),
                )
                    .into_response()
            };
            if let Ok(etag) = HeaderValue::from_str(&etag) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        None => ApiError(ApiStatus::no_route(&format!("/ui/{file}"))).into_response(),
    };
    let headers = response.headers_mut();
    // Revalidate every time (cheap with the ETag): a rebuilt binary serves new files at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The media type of a dashboard file, by its extension.
fn content_type(file: &str) -> &'static str {
    let extension = file.rsplit_once('.').map_or("", |(_, e)| e);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app/api.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn the_index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }
}
