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
    let types: Vec<String> = selected
        .body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
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
