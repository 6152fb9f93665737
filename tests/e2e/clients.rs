//! The official Kubernetes clients work against flotilla unchanged: the Python client
//! (`kubernetes` from PyPI, installed by scripts/setup into target/python-venv) and kube-rs.
//!
//! Both run against clusters started with `--watch-history 20`, so a few dozen writes push a
//! resourceVersion out of the store's history and the 410 Gone path, and each client's
//! recovery from it, can be reached quickly.

use anyhow::{Context, Result, bail};
use flotilla_e2e::{Cluster, repo_root, wait_until};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How many revisions of history the clusters here keep: small enough to compact quickly.
const HISTORY: &str = "20";

/// The venv's python (or `$FLOTILLA_PYTHON`).
fn python() -> PathBuf {
    let path = std::env::var_os("FLOTILLA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/python-venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup, which installs the Kubernetes Python client",
        path.display()
    );
    path
}

#[test]
fn the_python_client_works_unchanged() -> Result<()> {
    let cluster = Cluster::start_with(1, &["--watch-history", HISTORY])?;
    let script = repo_root().join("tests/clients/python_client.py");
    let mut child = Command::new(python())
        .arg(&script)
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the Python client script")?;
    // Its own steps have deadlines; this one keeps a wedged interpreter from hanging the suite.
    let finished = wait_until(
        Duration::from_secs(90),
        "the Python script to finish",
        || Ok(child.try_wait()?.is_some()),
    );
    if finished.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    finished.with_context(|| format!("stdout:\n{stdout}\nstderr:\n{stderr}"))?;
    assert!(
        output.status.success(),
        "python_client.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for step in [
        "list namespaces and pods",
        "watch sees ADDED then MODIFIED",
        "watch with bookmarks",
        "strategic merge patch of a ConfigMap",
        "JSON merge patch of a Deployment's replicas",
        "typed reads of ReplicaSets, Nodes, Events and Leases",
        "create and read a Pod",
        "delete with propagation policy",
        "watch from a compacted resourceVersion raises 410",
        "relist and watch again after 410",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok: {step}")),
            "the script did not report {step:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("python client: all checks passed"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn kube_rs_works_unchanged() -> Result<()> {
    // No nodes: pods stay Pending, which is all this needs, and the cluster stays quiet.
    let cluster = Cluster::start_with(0, &["--watch-history", HISTORY])?;
    tokio::runtime::Runtime::new()?.block_on(kube_rs_checks(&cluster))
}

/// A kube Client for the cluster, built from its kubeconfig as any kube-rs program would.
async fn kube_client(cluster: &Cluster) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A deadline for one awaited step: everything here takes milliseconds.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .with_context(|| format!("timed out waiting for {what}"))
}

async fn kube_rs_checks(cluster: &Cluster) -> Result<()> {
    let client = kube_client(cluster).await?;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let post = PostParams::default();
    let patch = PatchParams::default();

    // Pods: create, get, list, both patch flavours, delete.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "kube-rs", "labels": {"from": "kube-rs"}},
        "spec": {"containers": [{"name": "hello", "image": "hello"}]},
    }))?;
    let created = pods.create(&post, &pod).await?;
    assert!(created.metadata.uid.is_some(), "{created:?}");
    let read = pods.get("kube-rs").await?;
    assert_eq!(read.metadata.uid, created.metadata.uid);
    assert_eq!(
        read.status.and_then(|s| s.phase).as_deref(),
        Some("Pending"),
        "no node runs it"
    );
    let listed = pods
        .list(&ListParams::default().labels("from=kube-rs"))
        .await?;
    let names: Vec<_> = listed
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["kube-rs"]);
    pods.patch(
        "kube-rs",
        &patch,
        &Patch::Merge(json!({"metadata": {"labels": {"merge": "1"}}})),
    )
    .await?;
    let patched = pods
        .patch(
            "kube-rs",
            &patch,
            &Patch::Strategic(json!({"metadata": {"labels": {"strategic": "2"}}})),
        )
        .await?;
    let labels = patched.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.keys().map(String::as_str).collect::<Vec<_>>(),
        ["from", "merge", "strategic"],
        "both patches merge into the labels"
    );
    pods.delete("kube-rs", &DeleteParams::background()).await?;
    assert!(pods.get_opt("kube-rs").await?.is_none());

    // ConfigMaps: strategic merge and merge patches of data, then a delete and a 404.
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"colour": "blue", "size": "large"},
    }))?;
    config_maps.create(&post, &config_map).await?;
    config_maps
        .patch(
            "settings",
            &patch,
            &Patch::Strategic(json!({"data": {"colour": "green"}})),
        )
        .await?;
    let patched = config_maps
        .patch(
            "settings",
            &patch,
            &Patch::Merge(json!({"data": {"size": null}})),
        )
        .await?;
    assert_eq!(
        patched.data.unwrap_or_default(),
        [("colour".to_string(), "green".to_string())].into()
    );
    config_maps
        .delete("settings", &DeleteParams::default())
        .await?;
    match config_maps.get("settings").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{status:?}"),
        other => bail!("expected 404 for a deleted ConfigMap, got {other:?}"),
    }

    // The watcher lists, then watches, and sees an object added after its first list.
    let mut events = watcher(config_maps.clone(), watcher::Config::default()).boxed();
    within("the watcher's first list", async {
        while !matches!(events.try_next().await?, Some(watcher::Event::InitDone)) {}
        anyhow::Ok(())
    })
    .await??;
    let added: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "added"}}))?;
    config_maps.create(&post, &added).await?;
    within("the watcher to see the new ConfigMap", async {
        loop {
            if let Some(watcher::Event::Apply(cm)) = events.try_next().await?
                && cm.metadata.name.as_deref() == Some("added")
            {
                return anyhow::Ok(());
            }
        }
    })
    .await??;
    drop(events);

    // A watch from a resourceVersion the store no longer keeps ends with a 410 Expired.
    let old = config_maps
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("a list carries its resourceVersion")?;
    for n in 0..25 {
        config_maps
            .patch(
                "added",
                &patch,
                &Patch::Merge(json!({"data": {"n": n.to_string()}})),
            )
            .await?;
    }
    let mut stream = config_maps
        .watch(&WatchParams::default().timeout(5), &old)
        .await?
        .boxed();
    match within("the 410 from an old watch", stream.try_next()).await?? {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => bail!("expected a 410 ERROR event, got {other:?}"),
    }

    // The watcher meets the same 410 when it resumes from a compacted resourceVersion, lists
    // again and carries on. Its watches last a second here, and the writes below (to another
    // namespace, which it does not see) push its resourceVersion out of history meanwhile.
    let mut events = watcher(config_maps.clone(), watcher::Config::default().timeout(1)).boxed();
    within("the watcher's first list", async {
        while !matches!(events.try_next().await?, Some(watcher::Event::InitDone)) {}
        anyhow::Ok(())
    })
    .await??;
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    elsewhere
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": "noise"}}))?,
        )
        .await?;
    for n in 0..25 {
        elsewhere
            .patch(
                "noise",
                &patch,
                &Patch::Merge(json!({"data": {"n": n.to_string()}})),
            )
            .await?;
    }
    let status = within("the watcher to meet the 410", async {
        loop {
            match events.next().await {
                Some(Err(watcher::Error::WatchError(status))) => return Ok(status),
                Some(Err(other)) => bail!("the watcher failed otherwise: {other}"),
                Some(Ok(_)) => {}
                None => bail!("the watcher ended"),
            }
        }
    })
    .await??;
    assert_eq!(status.code, 410, "{status:?}");
    let later: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "after-410"}}))?;
    config_maps.create(&post, &later).await?;
    within("the relisting watcher to deliver a new object", async {
        loop {
            match events.try_next().await? {
                Some(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))
                    if cm.metadata.name.as_deref() == Some("after-410") =>
                {
                    return anyhow::Ok(());
                }
                Some(_) => {}
                None => bail!("the watcher ended"),
            }
        }
    })
    .await??;
    Ok(())
}
