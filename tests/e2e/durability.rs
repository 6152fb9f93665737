//! Acknowledged writes survive SIGKILL, and a restarted cluster resumes where it was.

use crate::SETTLE;
use flotilla_e2e::Cluster;

#[test]
fn acknowledged_writes_survive_sigkill() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(1)?;
    let path = "/api/v1/namespaces/default/configmaps";
    let mut versions = Vec::new();
    for i in 0..50 {
        let body = format!(r#"{{"metadata":{{"name":"cm-{i}"}},"data":{{"i":"{i}"}}}}"#);
        let response = cluster.http("POST", path, Some(("application/json", &body)))?;
        assert_eq!(response.status, 201);
        versions.push(
            response.json()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    cluster.kubectl_ok(&["apply", "-f", &crate::manifest("hello.yaml")])?;
    cluster.wait_for_field("pod/hello", ".status.phase", "Succeeded", SETTLE)?;
    cluster.kill_and_restart(1)?;

    let list = cluster.http("GET", path, None)?.json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 50, "configmaps lost across SIGKILL");
    for (i, item) in items
        .iter()
        .enumerate()
        .filter(|(_, item)| item["metadata"]["name"] == "cm-0")
    {
        assert_eq!(item["metadata"]["resourceVersion"], versions[i]);
    }
    assert_eq!(cluster.field("pod/hello", ".status.phase"), "Succeeded");
    let newest: u64 = versions.last().unwrap().parse()?;
    let revision: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()?;
    assert!(
        revision > newest,
        "the revision counter went back: {revision} <= {newest}"
    );
    Ok(())
}
