//! kubectl's writing commands with nothing turned off: `apply` with validation (client-side
//! and server-side), `create`, `replace`, `diff`, `patch` in all three formats, `edit`, and
//! `explain` — all of which read flotilla's OpenAPI documents.

use anyhow::Result;
use flotilla_e2e::{Cluster, checked};
use serde_json::Value;
use std::process::Command;

fn deployment(env: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: app
          image: ticker
          args: ["1000"]
          env: [{env}]
"#
    )
}

fn apply(cluster: &Cluster, args: &[&str], yaml: &str) -> std::process::Output {
    let mut all = vec!["apply", "-f", "-"];
    all.extend_from_slice(args);
    cluster.kubectl_with_input(&all, Some(yaml))
}

fn json(cluster: &Cluster, object: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &cluster.kubectl_ok(&["get", object, "-o", "json"])?,
    )?)
}

/// `name=value` of each env var of the first container of a Deployment's template.
fn env_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}={}",
                e["name"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn discovery_and_explain_come_from_the_served_schemas() -> Result<()> {
    let cluster = Cluster::start(0)?;
    let resources = cluster.kubectl_ok(&["api-resources"])?;
    let deployments = resources
        .lines()
        .find(|l| l.starts_with("deployments "))
        .unwrap_or_default();
    assert!(
        deployments.contains("apps/v1") && deployments.contains("Deployment"),
        "{resources}"
    );
    let versions = cluster.kubectl_ok(&["api-versions"])?;
    for version in ["v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1"] {
        assert!(versions.lines().any(|l| l == version), "{versions}");
    }
    let containers = cluster.kubectl_ok(&["explain", "pod.spec.containers"])?;
    assert!(
        containers.contains("List of containers belonging to the pod"),
        "{containers}"
    );
    let replicas = cluster.kubectl_ok(&["explain", "deployment.spec.replicas"])?;
    assert!(replicas.contains("Number of desired pods"), "{replicas}");
    let missing = cluster.kubectl(&["explain", "pod.spec.nonsense"]);
    assert!(!missing.status.success());
    Ok(())
}

#[test]
fn apply_validates_then_merges_lists_by_key() -> Result<()> {
    let cluster = Cluster::start(1)?;
    // A typo is refused before anything is created, naming the field.
    let typo = deployment("{name: A, value: '1'}", 2).replace("image:", "imagee:");
    let refused = apply(&cluster, &[], &typo);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("imagee"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!cluster.kubectl(&["get", "deployment/web"]).status.success());

    checked(
        apply(&cluster, &[], &deployment("{name: A, value: '1'}", 2)),
        "apply",
    )?;
    // Someone else adds an env var with a strategic merge patch (kubectl patch's default):
    // the container is merged by name, not replaced, so its image stays.
    cluster.kubectl_ok(&[
        "patch",
        "deployment/web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"INJECTED","value":"x"}]}]}}}}"#,
    ])?;
    let patched = json(&cluster, "deployment/web")?;
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "ticker"
    );
    let mut env = env_of(&patched);
    env.sort();
    assert_eq!(env, ["A=1", "INJECTED=x"]);

    // Re-applying a changed manifest changes what it manages and keeps the rest.
    let changed = deployment("{name: A, value: '2'}, {name: B, value: '3'}", 3);
    checked(apply(&cluster, &[], &changed), "apply changed")?;
    let applied = json(&cluster, "deployment/web")?;
    let mut env = env_of(&applied);
    env.sort();
    assert_eq!(env, ["A=2", "B=3", "INJECTED=x"]);
    assert_eq!(applied["spec"]["replicas"], 3);

    // A var dropped from the manifest goes (three-way merge with the last applied
    // configuration); the one kubectl apply never managed stays.
    checked(
        apply(&cluster, &[], &deployment("{name: B, value: '3'}", 3)),
        "apply without A",
    )?;
    let mut env = env_of(&json(&cluster, "deployment/web")?);
    env.sort();
    assert_eq!(env, ["B=3", "INJECTED=x"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])?;
    Ok(())
}

fn config_map(data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n{data}")
}

#[test]
fn server_side_apply_owns_fields_and_reports_conflicts() -> Result<()> {
    let cluster = Cluster::start(0)?;
    let first = config_map("  color: blue\n  size: big\n");
    checked(
        apply(&cluster, &["--server-side"], &first),
        "server-side apply",
    )?;
    let created = json(&cluster, "configmap/settings")?;
    assert_eq!(created["data"]["size"], "big");

    // Another manager setting a field kubectl owns to another value is a conflict…
    let other = config_map("  color: red\n");
    let conflict = apply(
        &cluster,
        &["--server-side", "--field-manager=other"],
        &other,
    );
    assert!(!conflict.status.success());
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("conflict") && stderr.contains(".data.color"),
        "{stderr}"
    );
    assert_eq!(
        json(&cluster, "configmap/settings")?["data"]["color"],
        "blue"
    );

    // …unless it forces, which moves the field to it.
    checked(
        apply(
            &cluster,
            &[
                "--server-side",
                "--field-manager=other",
                "--force-conflicts",
            ],
            &other,
        ),
        "forced apply",
    )?;
    assert_eq!(
        json(&cluster, "configmap/settings")?["data"]["color"],
        "red"
    );

    // kubectl now applies without `size` (and without `color`, no longer its own): `size` goes,
    // `color` stays with its new owner.
    checked(
        apply(
            &cluster,
            &["--server-side"],
            &config_map("  shape: round\n"),
        ),
        "apply without size",
    )?;
    let after = json(&cluster, "configmap/settings")?;
    assert_eq!(
        after["data"],
        serde_json::json!({"color": "red", "shape": "round"})
    );
    // kubectl hides managedFields (since 1.21); read them from the API.
    let raw = cluster
        .http(
            "GET",
            "/api/v1/namespaces/default/configmaps/settings",
            None,
        )?
        .json();
    let managers: Vec<&str> = raw["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"other"), "{managers:?}");
    Ok(())
}

#[test]
fn create_replace_apply_and_a_diff_that_changes_nothing() -> Result<()> {
    let cluster = Cluster::start(0)?;
    let blue = config_map("  color: blue\n");
    checked(
        cluster.kubectl_with_input(&["create", "-f", "-"], Some(&blue)),
        "create",
    )?;
    let again = cluster.kubectl_with_input(&["create", "-f", "-"], Some(&blue));
    assert!(String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"));

    let green = config_map("  color: green\n");
    checked(
        cluster.kubectl_with_input(&["replace", "-f", "-"], Some(&green)),
        "replace",
    )?;
    assert_eq!(
        json(&cluster, "configmap/settings")?["data"]["color"],
        "green"
    );

    checked(apply(&cluster, &[], &green), "apply")?;
    let same = cluster.kubectl_with_input(&["diff", "-f", "-"], Some(&green));
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    let diff = cluster.kubectl_with_input(&["diff", "-f", "-"], Some(&blue));
    assert_eq!(diff.status.code(), Some(1), "{diff:?}");
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains("-  color: green") && text.contains("+  color: blue"),
        "{text}"
    );
    // The diff was a server-side dry run: nothing changed.
    assert_eq!(
        json(&cluster, "configmap/settings")?["data"]["color"],
        "green"
    );
    Ok(())
}

#[test]
fn field_validation_strict_refuses_and_warn_warns() -> Result<()> {
    let cluster = Cluster::start(0)?;
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"typo"},"dta":{"a":"b"}}"#;
    let strict = cluster.http(
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        Some(("application/json", body)),
    )?;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert!(
        strict.body.contains(r#"unknown field \"dta\""#),
        "{}",
        strict.body
    );

    let warned = cluster.http(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(("application/json", body)),
    )?;
    assert_eq!(warned.status, 201, "{}", warned.body);
    assert_eq!(
        warned.header("warning"),
        [r#"299 - "unknown field \"dta\"""#]
    );
    Ok(())
}

#[test]
fn edit_and_patch_in_every_format() -> Result<()> {
    let cluster = Cluster::start(0)?;
    checked(apply(&cluster, &[], &deployment("", 2)), "apply")?;
    let replicas = || cluster.field("deployment/web", ".spec.replicas");

    // `kubectl edit` opens $KUBE_EDITOR on the object and sends what changed.
    let edited = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["edit", "deployment/web"])
        .env("KUBE_EDITOR", "sed -i -e 's/replicas: 2/replicas: 4/'")
        .output()?;
    checked(edited, "kubectl edit")?;
    assert_eq!(replicas(), "4");

    cluster.kubectl_ok(&[
        "patch",
        "deployment/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])?;
    assert_eq!(replicas(), "3");
    cluster.kubectl_ok(&[
        "patch",
        "deployment/web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
    ])?;
    assert_eq!(replicas(), "1");
    let dry = cluster.kubectl_ok(&[
        "patch",
        "deployment/web",
        "--dry-run=server",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ])?;
    assert!(dry.contains("patched"), "{dry}");
    assert_eq!(replicas(), "1");

    // A patch that cannot apply is refused with the reason.
    let bad = cluster.kubectl(&[
        "patch",
        "deployment/web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"bogus","name":"app"}]}}}}"#,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bogus"));
    Ok(())
}
