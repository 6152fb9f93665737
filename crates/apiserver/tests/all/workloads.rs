//! Workloads through the router: defaults and generation, validation, the scale subresource
//! and cascading deletion, as kubectl and the controllers see them.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    send(router, method, path, "application/json", body).await
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "file:///web.wasm"}]},
            },
        },
    })
}

#[tokio::test]
async fn deployments_get_defaults_and_count_spec_changes() {
    let (_dir, router) = crate::router(None).await;
    let (status, created) = call(&router, "POST", DEPLOYMENTS, Some(deployment("web"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["spec"]["replicas"], 1);
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    assert_eq!(
        created["spec"]["template"]["spec"]["restartPolicy"],
        "Always"
    );

    let path = format!("{DEPLOYMENTS}/web");
    let (status, status_written) = call(
        &router,
        "PUT",
        &format!("{path}/status"),
        Some(json!({"metadata": {"name": "web"}, "status": {"replicas": 1, "observedGeneration": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{status_written}");
    assert_eq!(
        status_written["metadata"]["generation"], 1,
        "status writes keep the generation"
    );
    assert_eq!(status_written["status"]["replicas"], 1);

    // A main-resource PUT changes the spec (a new generation) but not the status.
    let mut desired = deployment("web");
    desired["spec"]["replicas"] = json!(4);
    desired["status"] = json!({"replicas": 99});
    let (status, replaced) = call(&router, "PUT", &path, Some(desired)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert_eq!(replaced["spec"]["replicas"], 4);
    assert_eq!(replaced["status"]["replicas"], 1);

    // The same manifest again changes nothing: defaults make it equal to what is stored.
    let mut again = deployment("web");
    again["spec"]["replicas"] = json!(4);
    let (_, unchanged) = call(&router, "PUT", &path, Some(again)).await;
    assert_eq!(unchanged["metadata"]["generation"], 2);
    assert_eq!(
        unchanged["metadata"]["resourceVersion"],
        replaced["metadata"]["resourceVersion"]
    );

    let mut moved = deployment("web");
    moved["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    let (status, error) = call(&router, "PUT", &path, Some(moved)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["details"]["causes"][0]["field"], "spec.selector");
}

#[tokio::test]
async fn a_selector_that_misses_the_template_is_invalid() {
    let (_dir, router) = crate::router(None).await;
    let mut bad = deployment("web");
    bad["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let (status, error) = call(&router, "POST", DEPLOYMENTS, Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["reason"], "Invalid");
    assert_eq!(error["details"]["kind"], "Deployment");
    assert_eq!(
        error["details"]["causes"][0]["field"],
        "spec.template.metadata.labels"
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("`selector` does not match template `labels`"),
        "{message}"
    );
}

#[tokio::test]
async fn scale_reads_and_sets_replicas() {
    let (_dir, router) = crate::router(None).await;
    call(&router, "POST", DEPLOYMENTS, Some(deployment("web"))).await;
    let scale_path = format!("{DEPLOYMENTS}/web/scale");
    let (status, scale) = call(&router, "GET", &scale_path, None).await;
    assert_eq!(status, StatusCode::OK, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(
        scale["status"],
        json!({"replicas": 0, "selector": "app=web"})
    );

    // `kubectl scale --replicas=3` sends a merge patch.
    let (status, scaled) = send(
        &router,
        "PATCH",
        &scale_path,
        "application/merge-patch+json",
        Some(json!({"spec": {"replicas": 3}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 3);
    let (_, parent) = call(&router, "GET", &format!("{DEPLOYMENTS}/web"), None).await;
    assert_eq!(parent["spec"]["replicas"], 3);
    assert_eq!(parent["metadata"]["generation"], 2);
    assert_eq!(
        parent["metadata"]["resourceVersion"],
        scaled["metadata"]["resourceVersion"]
    );

    // A stale resourceVersion in the Scale is a conflict; a current one goes through.
    let (status, _) = call(
        &router,
        "PUT",
        &scale_path,
        Some(json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "web", "resourceVersion": scale["metadata"]["resourceVersion"]},
            "spec": {"replicas": 5}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, put) = call(
        &router,
        "PUT",
        &scale_path,
        Some(json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "web", "resourceVersion": scaled["metadata"]["resourceVersion"]},
            "spec": {"replicas": 5}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["spec"]["replicas"], 5);

    let (status, error) = send(
        &router,
        "PATCH",
        &scale_path,
        "application/json-patch+json",
        Some(json!([{"op": "replace", "path": "/spec/replicas", "value": -1}])),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["details"]["causes"][0]["field"], "spec.replicas");
}

#[tokio::test]
async fn discovery_lists_scale_in_autoscaling_v1() {
    let (_dir, router) = crate::router(None).await;
    let (_, apps) = call(&router, "GET", "/apis/apps/v1", None).await;
    let scale = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .cloned()
        .expect("deployments/scale listed");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["group"], "autoscaling");
    assert_eq!(scale["version"], "v1");
    assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
}

#[tokio::test]
async fn foreground_and_orphan_deletes_wait_for_the_collector() {
    let (_dir, router) = crate::router(None).await;
    for (name, policy, finalizer) in [
        ("fg", "Foreground", "foregroundDeletion"),
        ("orphan", "Orphan", "orphan"),
    ] {
        call(&router, "POST", DEPLOYMENTS, Some(deployment(name))).await;
        let path = format!("{DEPLOYMENTS}/{name}");
        let options = if policy == "Foreground" {
            // As a query parameter …
            (format!("{path}?propagationPolicy={policy}"), None)
        } else {
            // … or in a DeleteOptions body, as kubectl sends it.
            (
                path.clone(),
                Some(
                    json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}),
                ),
            )
        };
        let (status, deleting) = call(&router, "DELETE", &options.0, options.1).await;
        assert_eq!(status, StatusCode::OK, "{deleting}");
        let (status, stored) = call(&router, "GET", &path, None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name} stays while its finalizer is held"
        );
        assert!(
            stored["metadata"]["deletionTimestamp"].is_string(),
            "{stored}"
        );
        assert_eq!(stored["metadata"]["finalizers"], json!([finalizer]));

        // Deleting again while it goes is fine and changes nothing.
        let (status, _) = call(&router, "DELETE", &path, None).await;
        assert_eq!(status, StatusCode::OK);
        let (_, again) = call(&router, "GET", &path, None).await;
        assert_eq!(
            again["metadata"]["resourceVersion"],
            stored["metadata"]["resourceVersion"]
        );

        // The collector removes the finalizer; the object then goes.
        let (status, removed) = send(
            &router,
            "PATCH",
            &path,
            "application/merge-patch+json",
            Some(json!({"metadata": {"finalizers": null}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{removed}");
        let (status, _) = call(&router, "GET", &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name} deleted");
    }

    // Background, the apps/v1 default, deletes at once.
    call(&router, "POST", DEPLOYMENTS, Some(deployment("bg"))).await;
    let (status, _) = call(&router, "DELETE", &format!("{DEPLOYMENTS}/bg"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&router, "GET", &format!("{DEPLOYMENTS}/bg"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, error) = call(
        &router,
        "DELETE",
        &format!("{DEPLOYMENTS}/web?propagationPolicy=Sideways"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
}

#[tokio::test]
async fn jobs_get_a_generated_selector_and_orphan_by_default() {
    let (_dir, router) = crate::router(None).await;
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "file:///pi.wasm"}],
        }}},
    });
    let (status, created) = call(&router, "POST", JOBS, Some(job.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        created["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &created["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(created["spec"]["completions"], 1);
    assert_eq!(created["spec"]["backoffLimit"], 6);

    // Re-sending the manifest (as `flotilla apply` does) keeps the generated selector.
    let (status, replaced) = call(&router, "PUT", &format!("{JOBS}/pi"), Some(job.clone())).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["metadata"]["generation"], 1);

    let mut always = job.clone();
    always["metadata"]["name"] = json!("always");
    always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let (status, error) = call(&router, "POST", JOBS, Some(always)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error["details"]["causes"][0]["field"],
        "spec.template.spec.restartPolicy"
    );

    // batch/v1 orphans a Job's pods unless the client names a policy.
    let (status, _) = call(&router, "DELETE", &format!("{JOBS}/pi"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, deleting) = call(&router, "GET", &format!("{JOBS}/pi"), None).await;
    assert_eq!(deleting["metadata"]["finalizers"], json!(["orphan"]));
    // A second delete that asks for Background drops the orphan finalizer, and with it the Job.
    let (status, _) = call(
        &router,
        "DELETE",
        &format!("{JOBS}/pi?propagationPolicy=Background"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&router, "GET", &format!("{JOBS}/pi"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
