//! HTTP pods, Services and Ingresses through the gateway: a Service balances over its ready
//! pods (Endpoints and EndpointSlices kept by the controller), pods reach Services by name
//! from inside Wasm, Ingress rules route by host and path, and a handler that misbehaves gets
//! a clear HTTP error while everything else keeps serving.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, wait_until};

/// `replicas` pods of the `http-behaviours` component labelled `app: NAME`, with `env`, and
/// a Service NAME over them, port 80 → the pods' port named `http`.
fn web(name: &str, replicas: usize, env: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
{extra}
    spec:
      containers:
      - name: web
        image: http-behaviours
        ports: [{{containerPort: 8080, name: http}}]
        env: [{env}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: http}}]
"#
    )
}

/// Waits until the Service's Endpoints list `count` ready addresses.
fn wait_for_endpoints(cluster: &Cluster, name: &str, count: usize) -> anyhow::Result<()> {
    wait_until(
        SETTLE,
        &format!("{count} ready endpoints of {name}"),
        || {
            let ips = cluster.field(
                &format!("endpoints/{name}"),
                ".subsets[*].addresses[*].targetRef.name",
            );
            Ok(ips.split_whitespace().count() == count)
        },
    )
}

#[test]
fn a_service_balances_over_its_ready_pods_and_follows_them() -> anyhow::Result<()> {
    let cluster = Cluster::start(2)?;
    checked_apply(&cluster, &web("web", 2, "", ""))?;
    wait_for_endpoints(&cluster, "web", 2)?;

    // The EndpointSlice says the same, with the pods' nodes and the resolved port.
    let slice = cluster.kubectl_ok(&["get", "endpointslice", "web", "-o", "json"])?;
    let slice: serde_json::Value = serde_json::from_str(&slice)?;
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "web"
    );
    assert_eq!(slice["ports"][0]["port"], 8080);
    let endpoints = slice["endpoints"].as_array().cloned().unwrap_or_default();
    assert_eq!(endpoints.len(), 2, "{slice}");
    assert!(endpoints.iter().all(|e| e["conditions"]["ready"] == true));

    // By path and by Host, the handler sees the rest of the path and the body.
    let echoed = cluster.gateway_request("POST", "/service/web.default/echo?x=1", &[], "hello")?;
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    assert_eq!(echoed.body, "POST /echo?x=1\nhello");
    let by_host = cluster.gateway_request("GET", "/greet", &[("Host", "web.default.svc")], "")?;
    assert_eq!(by_host.body, "behaviours: /greet\n");

    // Requests are spread over both pods: each logs what it served.
    for i in 0..10 {
        let logged = cluster.gateway_request(
            "GET",
            &format!("/service/web.default/log/mark-{i}"),
            &[],
            "",
        )?;
        assert_eq!(logged.status, 200);
    }
    let pods = cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"])?;
    for pod in pods.lines() {
        let logs = cluster.kubectl_ok(&["logs", pod])?;
        assert!(
            logs.contains("mark-"),
            "{pod} served none of the requests: {logs}"
        );
    }

    // Scaled to nothing, the Service answers 503 and says why.
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=0"])?;
    wait_for_endpoints(&cluster, "web", 0)?;
    let unavailable = cluster.gateway_request("GET", "/service/web.default/", &[], "")?;
    assert_eq!(unavailable.status, 503);
    assert!(
        unavailable.body.contains("no ready endpoints"),
        "{}",
        unavailable.body
    );

    // Unknown Services and paths are 404s that say where things are served.
    let missing = cluster.gateway_request("GET", "/service/nope.default/", &[], "")?;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("no Service nope"), "{}", missing.body);
    let nothing = cluster.gateway_request("GET", "/elsewhere", &[], "")?;
    assert_eq!(nothing.status, 404);
    assert!(nothing.body.contains("/function/NAME"), "{}", nothing.body);
    Ok(())
}

#[test]
fn a_misbehaving_handler_gets_a_clear_error_and_disturbs_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--max-request-body", "1Ki"])?;
    let annotations = "      annotations: {flotilla.dev/request-timeout-seconds: \"1\"}";
    let manifest = web("bad", 1, "", annotations).replace(
        "        env: []",
        "        env: []\n        resources: {limits: {memory: 16Mi}}",
    );
    checked_apply(&cluster, &manifest)?;
    wait_for_endpoints(&cluster, "bad", 1)?;
    let get = |path: &str| {
        cluster.gateway_request("GET", &format!("/service/bad.default{path}"), &[], "")
    };

    let trapped = get("/trap")?;
    assert_eq!(trapped.status, 500, "{}", trapped.body);
    assert!(trapped.body.contains("wasm trap"), "{}", trapped.body);
    let silent = get("/no-response")?;
    assert_eq!(silent.status, 502, "{}", silent.body);
    assert!(
        silent.body.contains("without setting a response"),
        "{}",
        silent.body
    );
    let short = get("/bad-length")?;
    assert_eq!(short.status, 502, "{}", short.body);
    let hung = get("/hang")?;
    assert_eq!(hung.status, 504, "{}", hung.body);
    assert!(
        hung.body.contains("did not answer within 1s"),
        "{}",
        hung.body
    );
    let greedy = get("/memory/64")?;
    assert_eq!(greedy.status, 500, "{}", greedy.body);
    assert!(greedy.body.contains("memory limit"), "{}", greedy.body);
    let large =
        cluster.gateway_request("POST", "/service/bad.default/echo", &[], &"x".repeat(4096))?;
    assert_eq!(large.status, 413, "{}", large.body);
    assert!(large.body.contains("1024 bytes"), "{}", large.body);

    // The pod serves on, never restarted: every failure stayed inside its request.
    let fine = get("/echo")?;
    assert_eq!((fine.status, fine.body.as_str()), (200, "GET /echo\n"));
    let pod = cluster.kubectl_ok(&["get", "pods", "-l", "app=bad", "-o", "name"])?;
    assert_eq!(
        cluster.field(pod.trim(), ".status.containerStatuses[0].restartCount"),
        "0"
    );
    Ok(())
}

#[test]
fn pods_reach_services_by_name_and_see_their_env() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked_apply(&cluster, &web("backend", 1, "", ""))?;
    wait_for_endpoints(&cluster, "backend", 1)?;
    // Created after the backend Service, so it gets that Service's variables.
    checked_apply(&cluster, &web("frontend", 1, "", ""))?;
    wait_for_endpoints(&cluster, "frontend", 1)?;
    let front = |path: &str| {
        cluster.gateway_request("GET", &format!("/service/frontend.default{path}"), &[], "")
    };

    for url in [
        "backend/echo",
        "backend.default.svc/echo",
        "backend.default.svc.cluster.local/echo",
    ] {
        let fetched = front(&format!("/fetch/{url}"))?;
        assert_eq!(fetched.body, "upstream 200\nGET /echo\n", "fetching {url}");
    }
    let refused = front("/fetch/example.com/")?;
    assert_eq!(refused.status, 502);
    assert!(
        refused.body.contains("HttpRequestDenied"),
        "{}",
        refused.body
    );

    let env = front("/env")?.body;
    assert!(
        env.contains("BACKEND_SERVICE_HOST=backend.default.svc\n"),
        "{env}"
    );
    assert!(env.contains("BACKEND_SERVICE_PORT=80\n"), "{env}");
    Ok(())
}

#[test]
fn an_ingress_routes_by_host_and_path() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked_apply(&cluster, &web("api", 1, "{name: WHO, value: api}", ""))?;
    checked_apply(&cluster, &web("site", 1, "{name: WHO, value: site}", ""))?;
    checked_apply(
        &cluster,
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: site, port: {number: 80}}}}
"#,
    )?;
    wait_for_endpoints(&cluster, "api", 1)?;
    wait_for_endpoints(&cluster, "site", 1)?;
    let who = |path: &str, host: &str| -> anyhow::Result<String> {
        let response = cluster.gateway_request("GET", path, &[("Host", host)], "")?;
        Ok(response
            .body
            .lines()
            .find_map(|l| l.strip_prefix("WHO="))
            .unwrap_or(&format!("status {}", response.status))
            .to_string())
    };
    assert_eq!(who("/api/items", "shop.example.com")?, "api");
    assert_eq!(who("/api", "shop.example.com")?, "api");
    assert_eq!(who("/about", "shop.example.com:8080")?, "site");
    // `/apiary` is not under `/api`: prefixes match whole path elements.
    assert_eq!(who("/apiary", "shop.example.com")?, "site");
    assert_eq!(who("/api/items", "other.example.com")?, "status 404");

    let table = cluster.kubectl_ok(&["get", "ingress", "shop"])?;
    assert!(table.contains("shop.example.com"), "{table}");
    // A rule without a pathType is refused with the field named.
    let bad = cluster.kubectl_with_input(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad}\nspec:\n  rules:\n  - http: {paths: [{path: /x, backend: {service: {name: api, port: {number: 80}}}}]}\n",
        ),
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("pathType"), "{stderr}");
    Ok(())
}

#[test]
fn the_gateway_reaches_pods_on_other_nodes_and_skips_one_that_is_gone() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let gateway = cluster.gateway.trim_start_matches("http://").to_string();
    let edge = cluster.join_node("edge", &["--gateway", &gateway])?;
    checked_apply(&cluster, &web("web", 2, "", ""))?;
    wait_for_endpoints(&cluster, "web", 2)?;
    let placed = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName} {end}",
    ])?;
    let on_edge = placed
        .split_whitespace()
        .find_map(|p| p.strip_suffix("=edge"))
        .map(str::to_string);
    let Some(on_edge) = on_edge else {
        anyhow::bail!("one pod should run on each node: {placed}");
    };

    // The pod on the separate node process is reached over its node's endpoint, and its
    // own requests to a Service go through the gateway it was given.
    for i in 0..8 {
        let logged = cluster.gateway_request(
            "GET",
            &format!("/service/web.default/log/mark-{i}"),
            &[],
            "",
        )?;
        assert_eq!(logged.status, 200, "{}", logged.body);
        let fetched =
            cluster.gateway_request("GET", "/service/web.default/fetch/web/echo", &[], "")?;
        assert_eq!(fetched.body, "upstream 200\nGET /echo\n");
    }
    let logs = cluster.kubectl_ok(&["logs", &on_edge])?;
    assert!(
        logs.contains("mark-"),
        "the pod on edge served nothing: {logs}"
    );

    // The edge node dies. Its pod stays listed until the node is declared NotReady, but a
    // request sent there cannot connect, so the gateway sends it to the other pod.
    edge.kill()?;
    for _ in 0..8 {
        let answer = cluster.gateway_request("GET", "/service/web.default/echo", &[], "")?;
        assert_eq!((answer.status, answer.body.as_str()), (200, "GET /echo\n"));
    }
    let listed = cluster.field("endpoints/web", ".subsets[*].addresses[*].targetRef.name");
    assert!(listed.contains(&on_edge), "still listed: {listed}");
    Ok(())
}
