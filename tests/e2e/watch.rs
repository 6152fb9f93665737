//! Watches replay history from a resourceVersion, in order, then stream live; a revision the
//! store no longer keeps is answered 410 in the stream.

use flotilla_e2e::Cluster;

#[test]
fn watch_replays_from_a_revision_in_order() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let path = "/api/v1/namespaces/default/configmaps";
    let first = cluster
        .http(
            "POST",
            path,
            Some(("application/json", r#"{"metadata":{"name":"a"}}"#)),
        )?
        .json();
    let from = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.http(
        "POST",
        path,
        Some((
            "application/json",
            r#"{"metadata":{"name":"b","labels":{"app":"x"}}}"#,
        )),
    )?;
    cluster.http(
        "PUT",
        &format!("{path}/a"),
        Some((
            "application/json",
            r#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#,
        )),
    )?;
    cluster.http("DELETE", &format!("{path}/b"), None)?;

    let stream = cluster.http(
        "GET",
        &format!("{path}?watch=true&resourceVersion={from}&timeoutSeconds=1"),
        None,
    )?;
    assert_eq!(stream.status, 200);
    let events: Vec<serde_json::Value> = stream
        .body
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let expected = [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        .map(|(t, n)| (t.to_string(), n.to_string()));
    assert_eq!(seen, expected);
    let revisions: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");

    let selected = cluster.http(
        "GET",
        &format!("{path}?watch=1&resourceVersion={from}&timeoutSeconds=1&labelSelector=app%3Dx"),
        None,
    )?;
    let types = event_types(&selected.body);
    assert_eq!(types, ["ADDED", "DELETED"]);

    let without_version = cluster.http("GET", &format!("{path}?watch=1&timeoutSeconds=1"), None)?;
    let initial: Vec<serde_json::Value> = without_version
        .body
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        initial.len(),
        1,
        "a watch without resourceVersion starts with the current objects"
    );
    assert_eq!(initial[0]["type"], "ADDED");
    Ok(())
}

#[test]
fn resumed_watches_see_objects_leave_their_selector_and_lists_go_back_in_time() -> anyhow::Result<()>
{
    let cluster = Cluster::start(0)?;
    let path = "/api/v1/namespaces/default/configmaps";
    let created = cluster
        .http(
            "POST",
            path,
            Some((
                "application/json",
                r#"{"metadata":{"name":"a","labels":{"tier":"web"}},"data":{"v":"1"}}"#,
            )),
        )?
        .json();
    let at_create = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let relabel = r#"{"metadata":{"labels":{"tier":"db"}},"data":{"v":"2"}}"#;
    let patched = cluster.http(
        "PATCH",
        &format!("{path}/a"),
        Some(("application/merge-patch+json", relabel)),
    )?;
    assert_eq!(patched.status, 200, "{patched:?}");
    let relabel_back = r#"{"metadata":{"labels":{"tier":"web"}}}"#;
    cluster.http(
        "PATCH",
        &format!("{path}/a"),
        Some(("application/merge-patch+json", relabel_back)),
    )?;

    let watch = cluster.http(
        "GET",
        &format!(
            "{path}?watch=1&resourceVersion={at_create}&timeoutSeconds=1&labelSelector=tier%3Dweb"
        ),
        None,
    )?;
    let types = event_types(&watch.body);
    assert_eq!(
        types,
        ["DELETED", "ADDED"],
        "leaving and re-entering the selector"
    );

    let then = cluster
        .http(
            "GET",
            &format!("{path}?resourceVersion={at_create}&resourceVersionMatch=Exact"),
            None,
        )?
        .json();
    assert_eq!(then["metadata"]["resourceVersion"], at_create);
    assert_eq!(then["items"][0]["data"]["v"], "1");
    assert_eq!(then["items"][0]["metadata"]["labels"]["tier"], "web");
    let now = cluster.http("GET", path, None)?.json();
    assert_eq!(now["items"][0]["data"]["v"], "2");
    Ok(())
}

#[test]
fn revisions_older_than_the_watch_history_are_gone() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(0, &["--watch-history", "5"])?;
    let path = "/api/v1/namespaces/default/configmaps";
    let listed = cluster.http("GET", path, None)?.json();
    let old = listed["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 0..10 {
        let body = format!(r#"{{"metadata":{{"name":"c{n}"}}}}"#);
        let created = cluster.http("POST", path, Some(("application/json", &body)))?;
        assert_eq!(created.status, 201, "{created:?}");
    }

    // As Kubernetes' watch cache does: the stream opens, then carries one ERROR event whose
    // Status says 410 Expired, which is what client-go, kube-rs and the Python client relist on.
    let watch = cluster.http(
        "GET",
        &format!("{path}?watch=1&resourceVersion={old}&timeoutSeconds=5"),
        None,
    )?;
    assert_eq!(watch.status, 200);
    let events: Vec<serde_json::Value> = watch
        .body
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    let status = &events[0]["object"];
    assert_eq!(
        (
            &status["kind"],
            &status["status"],
            &status["code"],
            &status["reason"]
        ),
        (
            &serde_json::json!("Status"),
            &serde_json::json!("Failure"),
            &serde_json::json!(410),
            &serde_json::json!("Expired")
        ),
        "{status}"
    );

    // A list at that exact revision cannot be rebuilt either: an HTTP 410.
    let list = cluster.http(
        "GET",
        &format!("{path}?resourceVersion={old}&resourceVersionMatch=Exact"),
        None,
    )?;
    assert_eq!(list.status, 410, "{list:?}");
    assert_eq!(list.json()["reason"], "Expired");

    // Recent revisions still replay.
    let last = cluster.http("GET", &format!("{path}/c9"), None)?.json();
    let recent = last["metadata"]["resourceVersion"].as_str().unwrap();
    let from = recent.parse::<u64>()? - 1;
    let replay = cluster.http(
        "GET",
        &format!("{path}?watch=1&resourceVersion={from}&timeoutSeconds=1"),
        None,
    )?;
    assert_eq!(event_types(&replay.body), ["ADDED"]);
    Ok(())
}

/// The `type` of each event in a watch response body, in order.
fn event_types(body: &str) -> Vec<String> {
    body.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("one JSON event per line")["type"]
            .as_str()
            .expect("every event has a type")
            .to_string())
        .collect()
}
