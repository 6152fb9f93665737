//! Watch bookmarks: a watch that allows them learns, about once an interval, the revision it
//! has caught up to — even when nothing it watches changes.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

async fn post(router: &axum::Router, path: &str, object: Value) -> Value {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(object.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_quiet_watch_gets_bookmarks_that_follow_other_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = flotilla_store::Store::open(&dir.path().join("store.redb"), Default::default())
        .await
        .unwrap();
    let state = flotilla_apiserver::ApiState::new(store, None)
        .with_bookmark_interval(Duration::from_millis(100));
    flotilla_apiserver::bootstrap(&state).await.unwrap();
    let router = flotilla_apiserver::router(state);

    let watch = Request::get(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&allowWatchBookmarks=true",
    )
    .body(Body::empty())
    .unwrap();
    let mut body = router.clone().oneshot(watch).await.unwrap().into_body();

    // A write the watch does not see (another kind) still moves its bookmarks on.
    let pod = post(
        &router,
        "/api/v1/namespaces/default/pods",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "hello"}]}}),
    )
    .await;
    let written: u64 = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buffered = Vec::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("a bookmark within 10 s")
            .unwrap()
            .unwrap();
        buffered.extend_from_slice(frame.data_ref().unwrap());
        let events: Vec<Value> = buffered
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect();
        assert!(events.iter().all(|e| e["type"] == "BOOKMARK"), "{events:?}");
        let caught_up = events.iter().any(|e| {
            e["object"]["kind"] == "ConfigMap"
                && e["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|rv| rv.parse::<u64>().ok())
                    .is_some_and(|rv| rv >= written)
        });
        if caught_up {
            break;
        }
    }
}
