//! The flotilla CLI does the everyday things without kubectl.

use crate::{SETTLE, manifest};
use flotilla_e2e::{Cluster, checked};

#[test]
fn apply_get_logs_delete_without_kubectl() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let applied = checked(
        cluster.flotilla(&["apply", "-f", &manifest("hello.yaml")], None),
        "flotilla apply",
    )?;
    assert_eq!(applied.trim(), "pod/hello created");
    cluster.wait_for_field("pod/hello", ".status.phase", "Succeeded", SETTLE)?;

    let again = checked(
        cluster.flotilla(
            &["apply", "-f", "-"],
            Some(&std::fs::read_to_string(manifest("hello.yaml"))?),
        ),
        "flotilla apply -",
    )?;
    assert_eq!(again.trim(), "pod/hello unchanged");

    let table = checked(
        cluster.flotilla(&["get", "pods"], None),
        "flotilla get pods",
    )?;
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("NAME") && h.contains("STATUS")),
        "{table}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("hello") && l.contains("Completed")),
        "{table}"
    );
    let yaml = checked(
        cluster.flotilla(&["get", "pod", "hello", "-o", "yaml"], None),
        "flotilla get -o yaml",
    )?;
    assert!(yaml.contains("phase: Succeeded"), "{yaml}");

    let logs = checked(cluster.flotilla(&["logs", "hello"], None), "flotilla logs")?;
    assert!(logs.contains("Hello from flotilla!"), "{logs}");

    let deleted = checked(
        cluster.flotilla(&["delete", "pod", "hello"], None),
        "flotilla delete",
    )?;
    assert_eq!(deleted.trim(), "pod \"hello\" deleted");
    assert!(!cluster.kubectl(&["get", "pod", "hello"]).status.success());

    let unknown = cluster.flotilla(&["get", "widgets"], None);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("doesn't have a resource type \"widgets\"")
    );
    Ok(())
}

#[test]
fn flotilla_scale_sets_a_deployments_replicas() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    checked(
        cluster.flotilla(&["apply", "-f", &manifest("deployment.yaml")], None),
        "flotilla apply",
    )?;
    cluster.wait_for_field("deployment/tickers", ".status.readyReplicas", "3", SETTLE)?;
    let out = checked(
        cluster.flotilla(&["scale", "deploy/tickers", "--replicas", "5"], None),
        "flotilla scale",
    )?;
    assert_eq!(out.trim(), "deployment/tickers scaled");
    cluster.wait_for_field("deployment/tickers", ".status.readyReplicas", "5", SETTLE)?;

    let refused = cluster.flotilla(&["scale", "configmap/x", "--replicas", "1"], None);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("cannot be scaled"), "{message}");
    Ok(())
}
