//! Module blobs through the router: uploads need the token like every other request, a
//! second upload of the same bytes is idempotent, and a blob is served only through a Module
//! of that namespace that lists it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sha2::Digest as _;
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

#[tokio::test]
async fn blobs_are_stored_once_and_served_through_their_module() {
    let dir = tempfile::tempdir().unwrap();
    let store = flotilla_store::Store::open(&dir.path().join("store.redb"), Default::default())
        .await
        .unwrap();
    let state = flotilla_apiserver::ApiState::new(store, Some("t".into()))
        .with_module_blobs(dir.path().join("blobs"), 1024)
        .unwrap();
    flotilla_apiserver::bootstrap(&state).await.unwrap();
    let router = flotilla_apiserver::router(state);

    let wasm = b"\0asm\x01\0\0\0".to_vec();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(&wasm));
    let blob = |module: &str| {
        format!("/apis/flotilla.dev/v1/namespaces/default/modules/{module}/blobs/{digest}")
    };

    let anonymous = Request::put(blob("hello"))
        .body(Body::from(wasm.clone()))
        .unwrap();
    let refused = router.clone().oneshot(anonymous).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        call(&router, "HEAD", &blob("hello"), vec![]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&router, "PUT", &blob("hello"), wasm.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        call(&router, "PUT", &blob("hello"), wasm.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&router, "HEAD", &blob("hello"), vec![]).await.0,
        StatusCode::OK
    );
    let (status, oversized) = call(&router, "PUT", &blob("hello"), vec![0; 2048]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let oversized: serde_json::Value = serde_json::from_slice(&oversized).unwrap();
    assert_eq!(oversized["reason"], "RequestEntityTooLarge");

    // Stored, but no Module lists it yet.
    assert_eq!(
        call(&router, "GET", &blob("hello"), vec![]).await.0,
        StatusCode::NOT_FOUND
    );
    let module = serde_json::json!({
        "apiVersion": "flotilla.dev/v1", "kind": "Module", "metadata": {"name": "hello"},
        "spec": {"tags": [{"name": "v1", "digest": digest, "size": wasm.len()}]},
    });
    let (status, body) = call(
        &router,
        "POST",
        "/apis/flotilla.dev/v1/namespaces/default/modules",
        module.to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, served) = call(&router, "GET", &blob("hello"), vec![]).await;
    assert_eq!((status, served), (StatusCode::OK, wasm));
    let (status, body) = call(&router, "GET", &blob("other"), vec![]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
}
