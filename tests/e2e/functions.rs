//! Serverless Functions: deployed with a few lines of YAML (or `flotilla function deploy`),
//! answering at their `status.url`, scaled from zero by the first request and back to zero
//! when idle, scaled out by concurrency, cutting off runaway requests, and saying clearly
//! when their component cannot serve.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, wait_until};

fn function(name: &str, image: &str, spec: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1\nkind: Function\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n{spec}"
    )
}

fn pods_of(cluster: &Cluster, name: &str) -> usize {
    let out = cluster.kubectl(&[
        "get",
        "pods",
        "-l",
        &format!("flotilla.dev/function={name}"),
        "-o",
        "name",
    ]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_function_scales_from_zero_answers_and_goes_back_to_zero() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--scale-down-delay", "2s"])?;
    checked_apply(&cluster, &function("hello", "hello-http", ""))?;
    let url = format!("{}/function/hello", cluster.gateway);
    cluster.wait_for_field("function/hello", ".status.url", &url, SETTLE)?;
    // Defaults filled in; scaled to zero and ready to start on demand.
    assert_eq!(cluster.field("function/hello", ".spec.minScale"), "0");
    assert_eq!(
        cluster.field("function/hello", ".spec.timeoutSeconds"),
        "30"
    );
    let reason = ".status.conditions[?(@.type==\"Ready\")].reason";
    cluster.wait_for_field("function/hello", reason, "ScaledToZero", SETTLE)?;
    assert_eq!(
        pods_of(&cluster, "hello"),
        0,
        "nothing runs before the first request"
    );

    // The first request is answered at once (by a stand-in) and starts an instance.
    let cold = cluster.gateway_request("GET", "/function/hello/greet?name=x", &[], "")?;
    assert_eq!(cold.status, 200, "{}", cold.body);
    assert_eq!(
        cold.body,
        "Hello from flotilla! You asked for /greet?name=x\n"
    );
    let timing = cold.header("server-timing");
    assert!(
        timing.iter().any(|t| t.starts_with("gateway;dur=")),
        "the gateway says its time: {timing:?}"
    );
    wait_until(SETTLE, "the function's first instance", || {
        Ok(pods_of(&cluster, "hello") == 1)
    })?;
    cluster.wait_for_field("function/hello", ".status.readyInstances", "1", SETTLE)?;
    let warm = cluster.gateway_request("GET", "/function/hello", &[], "")?;
    assert_eq!(warm.body, "Hello from flotilla! You asked for /\n");

    // Idle for the scale-down delay: back to zero instances.
    wait_until(SETTLE, "the function to scale to zero", || {
        Ok(pods_of(&cluster, "hello") == 0)
    })?;
    cluster.wait_for_field("function/hello", ".status.desiredInstances", "0", SETTLE)?;

    // Per-function metrics in Prometheus' text format.
    let metrics = cluster.gateway_request("GET", "/metrics", &[], "")?.body;
    let requests = metrics
        .lines()
        .find(|l| {
            l.starts_with("flotilla_gateway_requests_total{")
                && l.contains("name=\"hello\"")
                && l.contains("code=\"200\"")
        })
        .unwrap_or_default()
        .to_string();
    assert!(requests.ends_with(" 2"), "{metrics}");
    assert!(metrics.contains("flotilla_gateway_function_cold_starts_total{kind=\"function\",namespace=\"default\",name=\"hello\"} 1"), "{metrics}");
    assert!(
        metrics.contains("flotilla_gateway_request_duration_seconds_bucket{"),
        "{metrics}"
    );

    // Another namespace answers at NAME.NAMESPACE.
    cluster.kubectl_ok(&["create", "namespace", "shop"])?;
    let mut shop = cluster.kubectl_with_input(
        &["apply", "-n", "shop", "-f", "-"],
        Some(&function("cart", "hello-http", "")),
    );
    assert!(
        shop.status.success(),
        "{}",
        String::from_utf8_lossy(&shop.stderr)
    );
    let answer = cluster.gateway_request("GET", "/function/cart.shop/items", &[], "")?;
    assert_eq!(answer.body, "Hello from flotilla! You asked for /items\n");
    shop = cluster.kubectl(&[
        "get",
        "function",
        "cart",
        "-n",
        "shop",
        "-o",
        "jsonpath={.status.url}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&shop.stdout),
        format!("{}/function/cart.shop", cluster.gateway)
    );
    Ok(())
}

#[test]
fn a_cold_request_is_answered_by_a_stand_in_or_waits_for_the_pod() -> anyhow::Result<()> {
    // With stand-ins (the default) a node answers the first request before the pod runs, so
    // what the handler prints goes to the cluster's log, not the pod's.
    let cluster = Cluster::start(1)?;
    checked_apply(&cluster, &function("said", "http-behaviours", ""))?;
    let answer =
        cluster.gateway_request("GET", "/function/said/log/said-by-a-stand-in", &[], "")?;
    assert_eq!((answer.status, answer.body.as_str()), (200, "logged\n"));
    wait_until(SETTLE, "the stand-in's output in the cluster log", || {
        Ok(cluster
            .log()
            .lines()
            .any(|l| l.contains("stand_in") && l.contains("said-by-a-stand-in")))
    })?;
    wait_until(SETTLE, "the function's pod", || {
        Ok(pods_of(&cluster, "said") == 1)
    })?;
    drop(cluster);

    // Without them the request waits for the pod, which then has served it.
    let cluster = Cluster::start_with(1, &["--no-stand-ins"])?;
    checked_apply(&cluster, &function("waited", "http-behaviours", ""))?;
    let answer = cluster.gateway_request("GET", "/function/waited/log/said-by-the-pod", &[], "")?;
    assert_eq!((answer.status, answer.body.as_str()), (200, "logged\n"));
    assert_eq!(
        pods_of(&cluster, "waited"),
        1,
        "the pod ran before the answer"
    );
    let logs = cluster.kubectl_ok(&["logs", "-l", "flotilla.dev/function=waited"])?;
    assert!(logs.contains("said-by-the-pod"), "{logs}");
    assert!(!cluster.log().contains("said-by-the-pod"));
    Ok(())
}

#[test]
fn a_wasip1_program_serves_as_a_function_cgi_style() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked_apply(&cluster, &function("wagi", "wagi-hello", ""))?;
    // Cold (a stand-in) and then warm (the pod): both run the program CGI style.
    let cold = cluster.gateway_request("GET", "/function/wagi/items?x=1", &[], "")?;
    assert_eq!(cold.status, 200, "{}", cold.body);
    assert_eq!(cold.body, "Hello from WAGI! GET /items?x=1\n");
    assert_eq!(cold.header("content-type"), ["text/plain"]);
    cluster.wait_for_field("function/wagi", ".status.readyInstances", "1", SETTLE)?;
    let posted = cluster.gateway_request("POST", "/function/wagi/echo", &[], "the body")?;
    assert_eq!(posted.body, "Hello from WAGI! POST /echo\nthe body");
    let missing = cluster.gateway_request("GET", "/function/wagi/status/404", &[], "")?;
    assert_eq!(missing.status, 404);
    let broken = cluster.gateway_request("GET", "/function/wagi/broken", &[], "")?;
    assert_eq!(broken.status, 502, "{}", broken.body);
    assert!(broken.body.contains("not a CGI answer"), "{}", broken.body);
    let trapped = cluster.gateway_request("GET", "/function/wagi/trap", &[], "")?;
    assert_eq!(trapped.status, 500, "{}", trapped.body);
    // What the program wrote to stderr is in the pod's log.
    let logs = cluster.kubectl_ok(&["logs", "-l", "flotilla.dev/function=wagi"])?;
    assert!(logs.contains("POST /echo"), "{logs}");
    Ok(())
}

#[test]
fn concurrency_scales_a_function_out_across_nodes() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(2, &["--scale-down-delay", "30s"])?;
    checked_apply(
        &cluster,
        &function(
            "busy",
            "http-behaviours",
            "  minScale: 1\n  maxScale: 4\n  concurrency: 1\n",
        ),
    )?;
    cluster.wait_for_field("function/busy", ".status.readyInstances", "1", SETTLE)?;
    // Eight slow requests at once against one instance that should take one each.
    let gateway = cluster.gateway.trim_start_matches("http://").to_string();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let gateway = gateway.clone();
            std::thread::spawn(move || {
                flotilla_e2e::request(&gateway, "GET", "/function/busy/sleep/3000", &[], "")
            })
        })
        .collect();
    cluster.wait_for_field("function/busy", ".status.desiredInstances", "4", SETTLE)?;
    cluster.wait_for_field("function/busy", ".status.readyInstances", "4", SETTLE)?;
    for request in load {
        let response = request.join().expect("load thread")?;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let nodes = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "flotilla.dev/function=busy",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ])?;
    let distinct: std::collections::HashSet<&str> = nodes.split_whitespace().collect();
    assert_eq!(distinct.len(), 2, "instances on both nodes: {nodes}");
    Ok(())
}

#[test]
fn a_function_that_cannot_serve_says_why_and_a_runaway_request_gets_504() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    // A command component exports wasi:cli/run, not the HTTP handler.
    checked_apply(&cluster, &function("command", "hello-p2", ""))?;
    let refused = cluster.gateway_request("GET", "/function/command/", &[], "")?;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("does not export wasi:http/incoming-handler"),
        "{}",
        refused.body
    );
    let ready = ".status.conditions[?(@.type==\"Ready\")]";
    cluster.wait_for_field(
        "function/command",
        &format!("{ready}.status"),
        "False",
        SETTLE,
    )?;
    let message = cluster.field("function/command", &format!("{ready}.message"));
    assert!(message.contains("incoming-handler"), "{message}");

    checked_apply(
        &cluster,
        &function("slow", "http-behaviours", "  timeoutSeconds: 1\n"),
    )?;
    let cut = cluster.gateway_request("GET", "/function/slow/hang", &[], "")?;
    assert_eq!(cut.status, 504, "{}", cut.body);
    let succeeding = ".status.conditions[?(@.type==\"RequestsSucceeding\")]";
    cluster.wait_for_field(
        "function/slow",
        &format!("{succeeding}.reason"),
        "Timeout",
        SETTLE,
    )?;
    let trapped = cluster.gateway_request("GET", "/function/slow/trap", &[], "")?;
    assert_eq!(trapped.status, 500, "{}", trapped.body);
    cluster.wait_for_field(
        "function/slow",
        &format!("{succeeding}.reason"),
        "HandlerFailed",
        SETTLE,
    )?;
    assert_eq!(
        cluster.field("function/slow", &format!("{succeeding}.status")),
        "False"
    );
    let fine = cluster.gateway_request("GET", "/function/slow/echo", &[], "")?;
    assert_eq!((fine.status, fine.body.as_str()), (200, "GET /echo\n"));
    let missing = cluster.gateway_request("GET", "/function/nope/", &[], "")?;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("no Function nope"),
        "{}",
        missing.body
    );

    // Invalid specs are refused with the fields named.
    let bad = cluster.kubectl_with_input(
        &["apply", "-f", "-"],
        Some(&function(
            "bad",
            "hello-http",
            "  minScale: 5\n  maxScale: 2\n  concurrency: 0\n",
        )),
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("spec.maxScale") && stderr.contains("spec.concurrency"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_function_commands_deploy_list_invoke_and_show_logs() -> anyhow::Result<()> {
    use flotilla_e2e::checked;
    let cluster = Cluster::start(1)?;
    let deployed = checked(
        cluster.flotilla(
            &[
                "function",
                "deploy",
                "echo",
                "--image",
                "http-behaviours",
                "--min-scale",
                "1",
                "--env",
                "WHO=cli",
            ],
            None,
        ),
        "function deploy",
    )?;
    assert!(deployed.contains("function/echo created"), "{deployed}");
    assert!(
        deployed
            .trim_end()
            .ends_with(&format!("{}/function/echo", cluster.gateway)),
        "deploy prints the URL: {deployed}"
    );
    let invoke = |args: &[&str]| {
        let mut all = vec!["function", "invoke", "echo"];
        all.extend_from_slice(args);
        cluster.flotilla(&all, None)
    };
    assert_eq!(
        checked(invoke(&["--path", "/log/from-the-cli"]), "invoke")?,
        "logged\n"
    );
    assert_eq!(
        checked(invoke(&["--path", "/echo", "-d", "payload"]), "invoke")?,
        "POST /echo\npayload"
    );
    assert!(checked(invoke(&["--path", "/env"]), "invoke")?.contains("WHO=cli\n"));
    let failed = invoke(&["--path", "/status/503"]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("503"));

    let listed = checked(
        cluster.flotilla(&["function", "list"], None),
        "function list",
    )?;
    let row = listed
        .lines()
        .find(|l| l.starts_with("echo"))
        .unwrap_or_default();
    assert!(
        row.contains("/function/echo") && row.contains("1/1"),
        "{listed}"
    );
    let logs = checked(
        cluster.flotilla(&["function", "logs", "echo"], None),
        "function logs",
    )?;
    assert!(logs.contains("from-the-cli"), "{logs}");
    Ok(())
}

#[test]
fn a_function_is_invoked_and_measured_through_the_api() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked_apply(&cluster, &function("echoes", "http-behaviours", ""))?;
    checked_apply(&cluster, &function("bystander", "http-behaviours", ""))?;
    let url = format!("{}/function/echoes", cluster.gateway);
    cluster.wait_for_field("function/echoes", ".status.url", &url, SETTLE)?;
    let functions = "/apis/flotilla.dev/v1/namespaces/default/functions";

    // The proxy subresource reaches the handler through the gateway, path and query intact.
    let answer = cluster.http(
        "GET",
        &format!("{functions}/echoes/proxy/some/path?x=1"),
        None,
    )?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, "behaviours: /some/path?x=1\n");
    assert_eq!(answer.header("content-type"), ["text/plain"]);
    let timing = answer.header("server-timing");
    assert!(
        timing.iter().any(|t| t.starts_with("gateway;dur=")),
        "the gateway's time comes through: {timing:?}"
    );
    let posted = cluster.http(
        "POST",
        &format!("{functions}/echoes/proxy/echo?x=1"),
        Some(("text/plain", "a body for the handler")),
    )?;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.body, "POST /echo?x=1\na body for the handler");

    // Another Function's traffic, which the first one's metrics must leave out.
    let other = cluster.gateway_request("GET", "/function/bystander/", &[], "")?;
    assert_eq!(other.status, 200, "{}", other.body);
    let answer = cluster.http("GET", &format!("{functions}/echoes/metrics"), None)?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let metrics = answer.body;
    let requests = metrics
        .lines()
        .find(|l| {
            l.starts_with("flotilla_gateway_requests_total{")
                && l.contains("name=\"echoes\"")
                && l.contains("code=\"200\"")
        })
        .unwrap_or_default();
    assert!(requests.ends_with(" 2"), "{metrics}");
    assert!(
        metrics.contains("# TYPE flotilla_gateway_request_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(!metrics.contains("bystander"), "{metrics}");
    let everything = cluster.gateway_request("GET", "/metrics", &[], "")?.body;
    assert!(everything.contains("name=\"bystander\""), "{everything}");

    // Errors are Kubernetes Statuses.
    let missing = cluster.http("GET", &format!("{functions}/nope/proxy/"), None)?;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.json()["reason"], "NotFound");

    // The dashboard that uses these is served by the API server itself.
    let page = flotilla_e2e::request(&cluster.server, "GET", "/", &[("Accept", "text/html")], "")?;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), ["text/html; charset=utf-8"]);
    assert!(
        page.header("content-security-policy")
            .iter()
            .any(|p| p.starts_with("default-src 'self'")),
        "{}",
        page.head
    );
    Ok(())
}
