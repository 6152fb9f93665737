//! The dashboard's files, served without a token under a strict policy, and the Function
//! `proxy` and `metrics` subresources it invokes and charts Functions through — here against a
//! stand-in gateway on a loopback port.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tower::ServiceExt;

const FUNCTIONS: &str = "/apis/flotilla.dev/v1/namespaces/default/functions";
const POLICY: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
                      frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn send(router: &axum::Router, request: Request<Body>) -> (Response, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (Response::from_parts(parts, Body::empty()), bytes.to_vec())
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> (Response, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap();
    send(router, request).await
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn header_of<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_dashboard_is_served_without_a_token_under_a_strict_policy() {
    let (_dir, router) = crate::router(Some("s3cret")).await;
    let browser = Request::builder()
        .uri("/")
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .body(Body::empty())
        .unwrap();
    let (page, html) = send(&router, browser).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header_of(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header_of(&page, "content-security-policy"), POLICY);
    assert_eq!(header_of(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header_of(&page, "cache-control"), "no-cache");
    let html = String::from_utf8(html).unwrap();
    assert!(
        html.trim_start()
            .to_ascii_lowercase()
            .starts_with("<!doctype html"),
        "{html}"
    );
    // An API client asking for the root gets its paths, as from Kubernetes.
    let (root, paths) = call(&router, "GET", "/", "", Body::empty()).await;
    assert_eq!(root.status(), StatusCode::OK);
    let paths = json_of(&paths)["paths"].clone();
    for path in [
        "/api",
        "/apis",
        "/apis/apps/v1",
        "/apis/flotilla.dev/v1",
        "/version",
    ] {
        assert!(
            paths.as_array().unwrap().iter().any(|p| p == path),
            "{path} missing from {paths}"
        );
    }
    let web_ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web-ui");
    // The page is public; the cluster's data is not.
    let (pods, status) = call(&router, "GET", "/api/v1/pods", "", Body::empty()).await;
    assert_eq!(pods.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&status)["reason"], "Unauthorized");

    // Every other file of web-ui/ under /ui/, with its type.
    for entry in std::fs::read_dir(&web_ui).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let (file, bytes) = call(&router, "GET", &format!("/ui/{name}"), "", Body::empty()).await;
        assert_eq!(file.status(), StatusCode::OK, "{name}");
        // (Not compared with the file on disk: that may have been edited since the build.)
        assert!(!bytes.is_empty(), "{name}");
        assert_eq!(header_of(&file, "content-security-policy"), POLICY);
        if name.ends_with(".js") {
            assert_eq!(
                header_of(&file, "content-type"),
                "text/javascript; charset=utf-8"
            );
        }
        // Revalidation is cheap: an unchanged file is 304.
        let etag = header_of(&file, "etag").to_string();
        let again = Request::get(format!("/ui/{name}"))
            .header(header::IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .unwrap();
        let (again, body) = send(&router, again).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name} {etag}");
        assert!(body.is_empty());
    }

    let (missing, status) = call(&router, "GET", "/ui/missing.js", "", Body::empty()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let status = json_of(&status);
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("NotFound")),
        "{status}"
    );
    for escape in ["/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml"] {
        let (response, _) = call(&router, "GET", escape, "", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{escape}");
    }
}

/// A stand-in gateway: `/function/hello/…` answers with what it was asked, `/metrics` with
/// two Functions' samples. Returns its origin.
async fn fake_gateway() -> String {
    use axum::extract::Request;
    async fn function(request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .map_or("-", |v| v.to_str().unwrap())
                .to_string()
        };
        let text = format!(
            "{} {} type={} accept={} auth={} body={}",
            parts.method,
            parts.uri,
            header(header::CONTENT_TYPE),
            header(header::ACCEPT),
            header(header::AUTHORIZATION),
            String::from_utf8_lossy(&body)
        );
        Response::builder()
            .status(201)
            .header("content-type", "text/x-echo")
            .header("server-timing", "handler;dur=1")
            .header("server-timing", "gateway;dur=2.5")
            .header("x-internal", "not passed on")
            .body(Body::from(text))
            .unwrap()
    }
    async fn metrics() -> Response {
        let text = "# HELP flotilla_gateway_requests Requests.\n\
             # TYPE flotilla_gateway_requests counter\n\
             flotilla_gateway_requests_total{kind=\"function\",namespace=\"default\",name=\"hello\",code=\"201\"} 4\n\
             flotilla_gateway_requests_total{kind=\"function\",namespace=\"default\",name=\"other\",code=\"200\"} 9\n\
             flotilla_gateway_requests_total{kind=\"service\",namespace=\"default\",name=\"hello\",code=\"200\"} 5\n\
             # EOF\n";
        Response::builder()
            .header(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Body::from(text))
            .unwrap()
    }
    let app = axum::Router::new()
        .route("/function/hello", axum::routing::any(function))
        .route("/function/hello/", axum::routing::any(function))
        .route("/function/hello/{*rest}", axum::routing::any(function))
        .route("/metrics", axum::routing::get(metrics));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

async fn set_url(router: &axum::Router, url: &str) {
    let patch = json!({"status": {"url": url}}).to_string();
    let (response, body) = call(
        router,
        "PATCH",
        &format!("{FUNCTIONS}/hello/status"),
        "application/merge-patch+json",
        patch,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "{}", json_of(&body));
    assert_eq!(json_of(&body)["status"]["url"], url);
}

#[tokio::test]
async fn a_function_is_invoked_and_measured_through_its_proxy_and_metrics() {
    let (_dir, router) = crate::router(None).await;
    let proxy = format!("{FUNCTIONS}/hello/proxy");
    let metrics = format!("{FUNCTIONS}/hello/metrics");

    // No such Function: 404 as Kubernetes words it.
    for path in [proxy.clone(), format!("{proxy}/a/b"), metrics.clone()] {
        let (response, status) = call(&router, "GET", &path, "", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let status = json_of(&status);
        assert_eq!(status["reason"], "NotFound", "{status}");
        assert_eq!(
            status["message"], "functions.flotilla.dev \"hello\" not found",
            "{status}"
        );
    }

    let function = json!({
        "apiVersion": "flotilla.dev/v1",
        "kind": "Function",
        "metadata": {"name": "hello"},
        "spec": {"image": "hello-http"},
    });
    let (created, body) = call(
        &router,
        "POST",
        FUNCTIONS,
        "application/json",
        function.to_string(),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", json_of(&body));

    // Not yet served by a gateway: 503 saying what to check.
    for path in [format!("{proxy}/a"), metrics.clone()] {
        let (response, status) = call(&router, "GET", &path, "", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let status = json_of(&status);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("no status.url") && message.contains("gateway running"),
            "{status}"
        );
    }
    let (response, status) = call(&router, "POST", &metrics, "text/plain", "x").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json_of(&status)["reason"], "MethodNotAllowed");

    // A gateway that is not listening: 503 too.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    set_url(&router, &format!("{closed_origin}/function/hello")).await;
    for path in [format!("{proxy}/a"), metrics.clone()] {
        let (response, status) = call(&router, "GET", &path, "", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let message = json_of(&status)["message"].as_str().unwrap().to_string();
        assert!(message.contains("could not reach the gateway"), "{message}");
    }

    // Through a gateway: method, path, query, body and the two content headers go; the
    // status, type, timing and body come back; the API's credentials stay behind.
    let origin = fake_gateway().await;
    set_url(&router, &format!("{origin}/function/hello")).await;
    let request = Request::post(format!("{proxy}/some/path%20x?x=1&y=a%2Fb"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "text/plain")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::from("{\"n\":1}"))
        .unwrap();
    let (answer, body) = send(&router, request).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "POST /function/hello/some/path%20x?x=1&y=a%2Fb type=application/json \
         accept=text/plain auth=- body={\"n\":1}"
    );
    assert_eq!(header_of(&answer, "content-type"), "text/x-echo");
    let timing: Vec<_> = answer.headers().get_all("server-timing").iter().collect();
    assert_eq!(timing, ["handler;dur=1", "gateway;dur=2.5"]);
    assert!(answer.headers().get("x-internal").is_none());
    assert_eq!(header_of(&answer, "content-security-policy"), "sandbox");

    for (path, seen) in [
        (proxy.clone(), "DELETE /function/hello/ "),
        (format!("{proxy}/"), "DELETE /function/hello/ "),
    ] {
        let (answer, body) = call(&router, "DELETE", &path, "", Body::empty()).await;
        assert_eq!(answer.status(), StatusCode::CREATED, "{path}");
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with(seen), "{path}: {body}");
    }

    // Bodies are capped at 16 MiB, whether announced or not.
    let big = vec![b'x'; (16 << 20) + 1];
    let (answer, status) = call(
        &router,
        "PUT",
        &format!("{proxy}/big"),
        "text/plain",
        big.clone(),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&status)["reason"], "RequestEntityTooLarge");
    let announced = Request::put(format!("{proxy}/big"))
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big))
        .unwrap();
    assert_eq!(
        send(&router, announced).await.0.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Metrics: this Function's samples only, in the gateway's format.
    let (answer, text) = call(&router, "GET", &metrics, "", Body::empty()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        header_of(&answer, "content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "# HELP flotilla_gateway_requests Requests.\n\
         # TYPE flotilla_gateway_requests counter\n\
         flotilla_gateway_requests_total{kind=\"function\",namespace=\"default\",name=\"hello\",code=\"201\"} 4\n\
         # EOF\n"
    );

    // The Function itself is still read and written as any object.
    let (got, object) = call(
        &router,
        "GET",
        &format!("{FUNCTIONS}/hello"),
        "",
        Body::empty(),
    )
    .await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(json_of(&object)["spec"]["image"], "hello-http");
    let (got, _) = call(
        &router,
        "GET",
        &format!("{FUNCTIONS}/hello/status"),
        "",
        Body::empty(),
    )
    .await;
    assert_eq!(got.status(), StatusCode::OK);
    let (patched, object) = call(
        &router,
        "PATCH",
        &format!("{FUNCTIONS}/hello"),
        "application/merge-patch+json",
        json!({"spec": {"maxScale": 3}}).to_string(),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK, "{}", json_of(&object));
    assert_eq!(json_of(&object)["spec"]["maxScale"], 3);
    let (deleted, _) = call(
        &router,
        "DELETE",
        &format!("{FUNCTIONS}/hello"),
        "",
        Body::empty(),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    let (gone, _) = call(&router, "GET", &proxy, "", Body::empty()).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn discovery_lists_the_function_subresources() {
    let (_dir, router) = crate::router(None).await;
    let (_, body) = call(&router, "GET", "/apis/flotilla.dev/v1", "", Body::empty()).await;
    let resources = json_of(&body)["resources"].clone();
    let verbs = |name: &str| {
        resources
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["verbs"].clone())
    };
    assert_eq!(verbs("functions/metrics"), Some(json!(["get"])));
    assert_eq!(
        verbs("functions/proxy"),
        Some(json!(["create", "delete", "get", "patch", "update"]))
    );
}
