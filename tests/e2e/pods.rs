//! A Wasm pod submitted as YAML runs end to end: kubectl apply → scheduled → run in wasmtime →
//! Succeeded/Failed with the exit code, logs readable, get and delete working.

use crate::{SETTLE, manifest};
use flotilla_e2e::Cluster;

#[test]
fn hello_pod_runs_to_success_and_its_logs_are_readable() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let out = cluster.kubectl_ok(&["apply", "-f", &manifest("hello.yaml")])?;
    assert_eq!(out.trim(), "pod/hello created");
    cluster.wait_for_field("pod/hello", ".status.phase", "Succeeded", SETTLE)?;
    assert_eq!(cluster.field("pod/hello", ".spec.nodeName"), "node-1");
    assert_eq!(
        cluster.field(
            "pod/hello",
            ".status.containerStatuses[0].state.terminated.exitCode"
        ),
        "0"
    );
    assert_eq!(
        cluster.field(
            "pod/hello",
            ".status.containerStatuses[0].state.terminated.reason"
        ),
        "Completed"
    );

    let logs = cluster.kubectl_ok(&["logs", "hello"])?;
    assert!(
        logs.contains("Hello from flotilla!"),
        "stdout missing from logs: {logs}"
    );
    assert!(logs.contains("stderr"), "stderr missing from logs: {logs}");

    let yaml = cluster.kubectl_ok(&["get", "pod", "hello", "-o", "yaml"])?;
    let pod: serde_json::Value = serde_yaml::from_str(&yaml)?;
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert!(
        pod["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    let json = cluster.kubectl_ok(&["get", "pods", "-o", "json"])?;
    let list: serde_json::Value = serde_json::from_str(&json)?;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["hello"]);

    let table = cluster.kubectl_ok(&["get", "pods"])?;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("hello") && l.contains("Completed")),
        "{table}"
    );

    cluster.kubectl_ok(&["delete", "pod", "hello"])?;
    let gone = cluster.kubectl(&["get", "pod", "hello"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );
    Ok(())
}

#[test]
fn a_component_pod_runs_to_success_and_its_logs_are_readable() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.kubectl_ok(&["apply", "-f", &manifest("hello-p2.yaml")])?;
    cluster.wait_for_field("pod/hello-p2", ".status.phase", "Succeeded", SETTLE)?;
    assert_eq!(
        cluster.field(
            "pod/hello-p2",
            ".status.containerStatuses[0].state.terminated.exitCode"
        ),
        "0"
    );
    let logs = cluster.kubectl_ok(&["logs", "hello-p2"])?;
    assert_eq!(
        logs,
        "Hello from a WASI 0.2 component!\n\
         arg[0]=hello-p2\n\
         arg[1]=from\n\
         arg[2]=a component\n\
         env GREETING=hi\n\
         And this one goes to stderr.\n"
    );
    // The node agent keeps what it compiled on disk for its next start.
    let compiled = cluster.data_dir().join("nodes/node-1/compiled");
    assert!(
        std::fs::read_dir(&compiled).is_ok_and(|mut entries| entries.next().is_some()),
        "nothing in the compile cache {}",
        compiled.display()
    );
    Ok(())
}

/// What every `flotilla up` of this cluster has logged so far.
fn cluster_logs(cluster: &Cluster) -> anyhow::Result<String> {
    let mut logs = String::new();
    for entry in std::fs::read_dir(cluster.dir.path())? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "log") {
            logs.push_str(&std::fs::read_to_string(path)?);
        }
    }
    Ok(logs)
}

#[test]
fn a_restarted_node_agent_loads_compiled_code_instead_of_compiling() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(1)?;
    cluster.kubectl_ok(&["apply", "-f", &manifest("hello-p2.yaml")])?;
    cluster.wait_for_field("pod/hello-p2", ".status.phase", "Succeeded", SETTLE)?;
    assert!(cluster_logs(&cluster)?.contains("compiled component sha256:"));

    cluster.kill_and_restart(1)?;
    cluster.kubectl_ok(&["delete", "pod", "hello-p2"])?;
    cluster.kubectl_ok(&["apply", "-f", &manifest("hello-p2.yaml")])?;
    cluster.wait_for_field("pod/hello-p2", ".status.phase", "Succeeded", SETTLE)?;

    // Each agent prepares an image once, and the first agent's cache was empty: a "loaded"
    // line can only come from the restarted one.
    let logs = cluster_logs(&cluster)?;
    assert!(
        logs.contains("loaded component sha256:") && logs.contains("from the compile cache"),
        "the restarted agent compiled again:\n{logs}"
    );
    Ok(())
}

#[test]
fn a_failing_module_reports_its_exit_code() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.kubectl_ok(&["apply", "-f", &manifest("exit-code.yaml")])?;
    cluster.wait_for_field("pod/exit-code", ".status.phase", "Failed", SETTLE)?;
    assert_eq!(
        cluster.field(
            "pod/exit-code",
            ".status.containerStatuses[0].state.terminated.exitCode"
        ),
        "7"
    );
    assert_eq!(
        cluster.field(
            "pod/exit-code",
            ".status.containerStatuses[0].state.terminated.reason"
        ),
        "Error"
    );
    Ok(())
}

#[test]
fn a_pod_sees_only_its_declared_args_and_env() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: env-args}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: env-args
    args: ["first", "second arg"]
    env:
    - {name: GREETING, value: hello}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
"#;
    checked_apply(&cluster, pod)?;
    cluster.wait_for_field("pod/env-args", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "env-args"])?;
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines,
        [
            "arg[0]=main",
            "arg[1]=first",
            "arg[2]=second arg",
            "env GREETING=hello",
            "env POD_NAME=env-args"
        ],
        "the guest saw more or less than declared"
    );
    Ok(())
}

#[test]
fn a_long_running_pod_runs_until_deleted() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.kubectl_ok(&["apply", "-f", &manifest("ticker.yaml")])?;
    cluster.wait_for_field("pod/ticker", ".status.phase", "Running", SETTLE)?;
    cluster.wait_for_field(
        "pod/ticker",
        ".status.containerStatuses[0].ready",
        "true",
        SETTLE,
    )?;
    flotilla_e2e::wait_until(SETTLE, "two ticks in the log", || {
        Ok(cluster.kubectl_ok(&["logs", "ticker"])?.contains("tick 2"))
    })?;
    cluster.kubectl_ok(&["delete", "pod", "ticker"])?;
    assert!(!cluster.kubectl(&["get", "pod", "ticker"]).status.success());
    Ok(())
}

pub fn checked_apply(cluster: &Cluster, yaml: &str) -> anyhow::Result<String> {
    flotilla_e2e::checked(
        cluster.kubectl_with_input(&["apply", "-f", "-"], Some(yaml)),
        "kubectl apply",
    )
}

#[test]
fn an_exited_container_restarts_with_back_off_and_keeps_its_previous_log() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let module = flotilla_e2e::modules_dir().join("ticker.wasm");
    checked_apply(
        &cluster,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: short}}\nspec: {{restartPolicy: Always, containers: [{{name: c, image: \"file://{}\", args: [\"50\", \"3\"]}}]}}\n",
            module.display()
        ),
    )?;
    // `logs -f` follows the run until the module exits on its own.
    flotilla_e2e::wait_until(SETTLE, "the container to start", || {
        Ok(cluster.field("pod/short", ".status.phase") == "Running")
    })?;
    let followed = cluster.kubectl_ok(&["logs", "-f", "short"])?;
    assert!(followed.contains("tick 3"), "{followed}");
    cluster.wait_for_field(
        "pod/short",
        ".status.containerStatuses[0].state.waiting.reason",
        "CrashLoopBackOff",
        SETTLE,
    )?;
    assert_eq!(
        cluster.field("pod/short", ".status.containerStatuses[0].restartCount"),
        "1"
    );
    assert_eq!(
        cluster.field(
            "pod/short",
            ".status.containerStatuses[0].lastState.terminated.exitCode"
        ),
        "0"
    );
    assert_eq!(
        cluster.field("pod/short", ".status.phase"),
        "Running",
        "restartPolicy Always never finishes a pod"
    );
    let previous = cluster.kubectl_ok(&["logs", "--previous", "short"])?;
    assert_eq!(
        previous.lines().collect::<Vec<_>>(),
        ["tick 1", "tick 2", "tick 3"]
    );
    Ok(())
}

/// `2026-11-23T16:07:40.135919881Z text` → the time and the text, if the line starts as
/// `kubectl logs --timestamps` lines do: `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z `.
fn split_timestamp(line: &str) -> Option<(k8s_openapi::jiff::Timestamp, &str)> {
    let (time, text) = line.split_once(' ')?;
    let shape = "dddd-dd-ddTdd:dd:dd.";
    let (head, fraction) = time.split_at_checked(shape.len())?;
    let head_matches = head.bytes().zip(shape.bytes()).all(|(b, s)| match s {
        b'd' => b.is_ascii_digit(),
        _ => b == s,
    });
    let digits = fraction.strip_suffix('Z')?;
    if !head_matches || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((time.parse().ok()?, text))
}

#[test]
fn logs_show_timestamps_and_honour_since_tail_and_limit() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let started = k8s_openapi::jiff::Timestamp::now();
    cluster.kubectl_ok(&["apply", "--validate=false", "-f", &manifest("hello.yaml")])?;
    cluster.wait_for_field("pod/hello", ".status.phase", "Succeeded", SETTLE)?;
    let expected = [
        "Hello from flotilla!",
        "This line also goes to stdout.",
        "And this one goes to stderr.",
    ];

    let plain = cluster.kubectl_ok(&["logs", "hello"])?;
    assert_eq!(plain.lines().collect::<Vec<_>>(), expected);

    let stamped = cluster.kubectl_ok(&["logs", "hello", "--timestamps"])?;
    let lines: Vec<_> = stamped
        .lines()
        .map(|line| split_timestamp(line).unwrap_or_else(|| panic!("no timestamp: {line:?}")))
        .collect();
    assert_eq!(
        lines.iter().map(|(_, text)| *text).collect::<Vec<_>>(),
        expected
    );
    let now = k8s_openapi::jiff::Timestamp::now();
    for pair in lines.windows(2) {
        assert!(pair[0].0 <= pair[1].0, "timestamps go back: {stamped}");
    }
    assert!(
        lines
            .iter()
            .all(|(time, _)| started <= *time && *time <= now),
        "timestamps are not from the run ({started} to {now}): {stamped}"
    );

    assert_eq!(cluster.kubectl_ok(&["logs", "hello", "--since=1h"])?, plain);
    assert_eq!(
        cluster.kubectl_ok(&["logs", "hello", "--since-time=2000-01-01T00:00:00Z"])?,
        plain
    );
    assert_eq!(
        cluster.kubectl_ok(&["logs", "hello", "--since-time=2999-01-01T00:00:00Z"])?,
        ""
    );
    assert_eq!(
        cluster.kubectl_ok(&["logs", "hello", "--tail=1"])?,
        "And this one goes to stderr.\n"
    );
    let last = cluster.kubectl_ok(&["logs", "hello", "--tail=1", "--timestamps", "--since=1h"])?;
    assert_eq!(
        split_timestamp(last.trim_end()).map(|(_, text)| text),
        Some(expected[2]),
        "{last}"
    );
    assert_eq!(
        cluster.kubectl_ok(&["logs", "hello", "--limit-bytes=5"])?,
        "Hello"
    );

    // A followed log gets timestamps too, line by line as the guest writes them.
    let module = flotilla_e2e::modules_dir().join("ticker.wasm");
    checked_apply(
        &cluster,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: ticks}}\nspec: {{restartPolicy: Never, containers: [{{name: c, image: \"file://{}\", args: [\"200\", \"4\"]}}]}}\n",
            module.display()
        ),
    )?;
    cluster.wait_for_field("pod/ticks", ".status.phase", "Running", SETTLE)?;
    let followed = cluster.kubectl_ok(&["logs", "-f", "ticks", "--timestamps", "--since=1h"])?;
    let texts: Vec<&str> = followed
        .lines()
        .map(|line| split_timestamp(line).map_or(line, |(_, text)| text))
        .collect();
    assert_eq!(
        texts,
        ["tick 1", "tick 2", "tick 3", "tick 4"],
        "{followed}"
    );
    assert!(
        followed.lines().all(|line| split_timestamp(line).is_some()),
        "{followed}"
    );

    // Values Kubernetes would refuse are refused with a 400 that names them.
    for (query, named) in [
        ("sinceSeconds=0", "sinceSeconds"),
        ("tailLines=many", "tailLines"),
        ("sinceTime=yesterday", "sinceTime"),
        (
            "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
            "at most one",
        ),
    ] {
        let response = cluster.http(
            "GET",
            &format!("/api/v1/namespaces/default/pods/hello/log?{query}"),
            None,
        )?;
        assert_eq!(response.status, 400, "{query}: {response:?}");
        let status = response.json();
        assert_eq!(status["reason"], "BadRequest", "{query}: {status}");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains(named)),
            "{query}: {status}"
        );
    }
    Ok(())
}
