//! The router called in process with `oneshot`: authentication and discovery, which the
//! end-to-end tests (over plain HTTP, unauthenticated) do not reach.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

mod blobs;
mod bookmarks;
mod dashboard;
mod workloads;

async fn router(token: Option<&str>) -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let store = flotilla_store::Store::open(&dir.path().join("store.redb"), Default::default())
        .await
        .unwrap();
    let state = flotilla_apiserver::ApiState::new(store, token.map(str::to_string));
    flotilla_apiserver::bootstrap(&state).await.unwrap();
    (dir, flotilla_apiserver::router(state))
}

async fn get(
    router: &axum::Router,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_token_is_required_except_for_health_checks() {
    let (_dir, router) = router(Some("s3cret")).await;
    let (status, body) = get(&router, "/api/v1/namespaces", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(
        get(&router, "/api/v1/namespaces", Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = get(&router, "/api/v1/namespaces", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        flotilla_apiserver::SYSTEM_NAMESPACES.len()
    );
    for health in ["/livez", "/readyz"] {
        assert_eq!(
            get(&router, health, None).await.0,
            StatusCode::OK,
            "{health}"
        );
    }
}

#[tokio::test]
async fn discovery_lists_resources_and_their_subresources() {
    let (_dir, router) = router(None).await;
    let (_, versions) = get(&router, "/api", None).await;
    assert_eq!(versions["versions"], serde_json::json!(["v1"]));
    let (_, resources) = get(&router, "/api/v1", None).await;
    let names: Vec<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for expected in [
        "pods",
        "pods/status",
        "pods/log",
        "pods/binding",
        "nodes",
        "namespaces",
        "configmaps",
        "events",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let (status, _) = get(&router, "/api/v1/widgets", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
