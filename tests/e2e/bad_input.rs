//! Bad input gets a clear Kubernetes Status, never a crash: malformed bodies are 400, invalid
//! objects 422 naming the field, and a module that is missing or not Wasm is reported on the
//! pod while the cluster carries on.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::Cluster;

const PODS: &str = "/api/v1/namespaces/default/pods";

#[test]
fn malformed_bodies_are_400() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    for (content_type, body) in [
        ("application/json", "{\"kind\": "),
        ("application/yaml", "kind: [unclosed"),
        ("application/json", "[1, 2]"),
    ] {
        let response = cluster.http("POST", PODS, Some((content_type, body)))?;
        assert_eq!(response.status, 400, "{body}: {response:?}");
        let status = response.json();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "BadRequest");
    }
    Ok(())
}

#[test]
fn invalid_objects_are_422_naming_the_field() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let cases = [
        (
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Not_A_Name"},"spec":{"containers":[{"name":"a","image":"hello"}]}}"#,
            "metadata.name",
        ),
        (
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ok"},"spec":{}}"#,
            "spec.containers",
        ),
        (
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ok"},"spec":{"containers":[{"name":"a"}]}}"#,
            "spec.containers[0].image",
        ),
    ];
    for (body, field) in cases {
        let response = cluster.http("POST", PODS, Some(("application/json", body)))?;
        assert_eq!(response.status, 422, "{body}: {response:?}");
        let status = response.json();
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["causes"][0]["field"], field, "{status}");
    }
    let wrong_kind = cluster.http(
        "POST",
        PODS,
        Some((
            "application/json",
            r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"x"}}"#,
        )),
    )?;
    assert_eq!(wrong_kind.status, 400);
    let missing = cluster.http("GET", &format!("{PODS}/nope"), None)?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["message"], "pods \"nope\" not found");
    let no_namespace = cluster.http(
        "POST",
        "/api/v1/namespaces/nowhere/pods",
        Some((
            "application/json",
            r#"{"metadata":{"name":"a"},"spec":{"containers":[{"name":"a","image":"hello"}]}}"#,
        )),
    )?;
    assert_eq!(no_namespace.status, 404);
    Ok(())
}

#[test]
fn stale_writes_conflict_and_duplicates_already_exist() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let body = r#"{"metadata":{"name":"cm"},"data":{"a":"1"}}"#;
    let path = "/api/v1/namespaces/default/configmaps";
    assert_eq!(
        cluster
            .http("POST", path, Some(("application/json", body)))?
            .status,
        201
    );
    let again = cluster.http("POST", path, Some(("application/json", body)))?;
    assert_eq!(
        (again.status, again.json()["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let stale = r#"{"metadata":{"name":"cm","resourceVersion":"1"},"data":{"a":"2"}}"#;
    let conflict = cluster.http(
        "PUT",
        &format!("{path}/cm"),
        Some(("application/json", stale)),
    )?;
    assert_eq!(
        (conflict.status, conflict.json()["reason"].as_str()),
        (409, Some("Conflict"))
    );
    Ok(())
}

#[test]
fn missing_or_non_wasm_modules_are_reported_and_the_cluster_carries_on() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let not_wasm = cluster.dir.path().join("notes.txt");
    std::fs::write(&not_wasm, "just text")?;
    checked_apply(
        &cluster,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: not-wasm}}\nspec: {{restartPolicy: Never, containers: [{{name: c, image: \"file://{}\"}}]}}\n",
            not_wasm.display()
        ),
    )?;
    checked_apply(
        &cluster,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: missing}\nspec: {restartPolicy: Never, containers: [{name: c, image: no-such-module}]}\n",
    )?;
    let waiting = ".status.containerStatuses[0].state.waiting";
    flotilla_e2e::wait_until(SETTLE, "the not-wasm pod to say why", || {
        Ok(cluster
            .field("pod/not-wasm", &format!("{waiting}.message"))
            .contains("not a WebAssembly module"))
    })?;
    flotilla_e2e::wait_until(SETTLE, "the missing-module pod to say why", || {
        Ok(cluster
            .field("pod/missing", &format!("{waiting}.message"))
            .contains("no module named \"no-such-module\""))
    })?;
    let reason = cluster.field("pod/missing", &format!("{waiting}.reason"));
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{reason}"
    );
    assert_eq!(cluster.field("pod/missing", ".status.phase"), "Pending");
    checked_apply(
        &cluster,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: still-works}\nspec: {restartPolicy: Never, containers: [{name: c, image: hello}]}\n",
    )?;
    cluster.wait_for_field("pod/still-works", ".status.phase", "Succeeded", SETTLE)?;
    Ok(())
}

#[test]
fn bad_patches_applies_and_parameters_get_a_status_saying_why() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let config_maps = "/api/v1/namespaces/default/configmaps";
    let created = cluster.http(
        "POST",
        config_maps,
        Some((
            "application/json",
            r#"{"metadata":{"name":"c"},"data":{"a":"b"}}"#,
        )),
    )?;
    assert_eq!(created.status, 201, "{created:?}");
    let one = format!("{config_maps}/c");
    let cases: [(&str, String, &str, &str, u16, &str); 8] = [
        // Server-side apply needs to know who applies.
        (
            "PATCH",
            one.clone(),
            "application/apply-patch+yaml",
            "data: {a: z}",
            400,
            "fieldManager",
        ),
        (
            "PATCH",
            format!("{one}?fieldManager=m"),
            "application/apply-patch+yaml",
            "data: [unclosed",
            400,
            "YAML",
        ),
        (
            "PATCH",
            format!("{one}?fieldManager=m"),
            "application/apply-patch+yaml",
            "- a list",
            400,
            "mapping",
        ),
        (
            "PATCH",
            one.clone(),
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"finalizers":[{"$patch":"x"}]}}"#,
            422,
            "finalizers",
        ),
        (
            "PATCH",
            one.clone(),
            "application/xml",
            "<a/>",
            415,
            "application/xml",
        ),
        (
            "PATCH",
            format!("{one}?dryRun=Sometimes"),
            "application/merge-patch+json",
            "{}",
            400,
            "dryRun",
        ),
        (
            "PATCH",
            format!("{one}?fieldValidation=Loose"),
            "application/merge-patch+json",
            "{}",
            400,
            "fieldValidation",
        ),
        (
            "POST",
            config_maps.to_string(),
            "application/vnd.kubernetes.protobuf",
            "not protobuf",
            400,
            "protobuf",
        ),
    ];
    for (method, path, content_type, body, code, mentions) in cases {
        let response = cluster.http(method, &path, Some((content_type, body)))?;
        assert_eq!(
            response.status, code,
            "{method} {path} {body}: {response:?}"
        );
        let status = response.json();
        assert_eq!(status["kind"], "Status", "{response:?}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{mentions} in {message}");
    }
    // None of it changed the object.
    let after = cluster.http("GET", &one, None)?.json();
    assert_eq!(after["data"]["a"], "b");
    assert_eq!(
        cluster
            .http("GET", "/openapi/v3/apis/nope/v1", None)?
            .status,
        404
    );
    Ok(())
}
