//! Static pods: Pod manifests in a directory of the node (`--pod-manifest-path`), run by the
//! node itself whether or not it can reach an apiserver, as the kubelet's file source does
//! (`pkg/kubelet/config/file.go`).
//!
//! Every `*.yaml`, `*.yml` and `*.json` file holds one or more Pods (YAML documents separated
//! by `---`); anything else in a file is skipped with a warning naming it, and the other files
//! still run. A static pod is named `NAME-<node>`, lives in its namespace (`default` when none
//! is given), is bound to the node, and gets the kubelet's `kubernetes.io/config.*`
//! annotations. Its uid is a hash of the file's path, the document and the node, so an edited
//! manifest is a new pod: the old one is stopped and the new one started. A removed file
//! stops its pod.
//!
//! The directory is read again every [`RESCAN`]: polling, as the kubelet does (every 20 s),
//! because the only file-watching crate that would fit (`notify`) is not in the dependency
//! tree, a few stats a second cost nothing, and a poll cannot miss an event the way an
//! inotify queue overflow or an editor's rename-over can.
//!
//! When the apiserver answers, each static pod gets a *mirror pod* there
//! (`pod/mirror_client.go`): the same name, namespace and spec, annotated
//! `kubernetes.io/config.mirror: <hash>` and owned by the Node, so people and controllers see
//! it and `kubectl logs` reaches it. The pod's worker writes its status to the mirror, which
//! has its name. A mirror deleted through the API is created again while the guest keeps
//! running; mirrors of static pods that are gone are deleted. The node's pod watch skips
//! mirror pods ([`is_mirror`]): they are run from here, never from the API.

use crate::pod::{PodContext, Worker};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a pod came from: `file` for static pods, as in Kubernetes.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// The static pod's hash (its uid), which the mirror pod repeats.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// When the node first read the manifest.
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// Marks a mirror pod: the hash of the static pod it mirrors.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// How often the manifest directory is read again and the mirror pods checked.
pub const RESCAN: Duration = Duration::from_secs(1);

/// Whether a pod is the API's mirror of some node's static pod.
pub fn is_mirror(pod: &Pod) -> bool {
    pod.annotations().contains_key(CONFIG_MIRROR)
}

/// A static pod the node runs.
struct Running {
    pod: Pod,
    worker: Worker,
    /// The mirror pod this worker's status was last written to, by uid: a new mirror needs
    /// the status written again.
    mirror_uid: Option<String>,
}

/// Runs the static pods of `dir` on node `node` until `shutdown` completes, then stops them.
pub async fn run(
    context: PodContext,
    dir: PathBuf,
    node: String,
    shutdown: impl Future<Output = ()>,
) {
    tracing::info!(dir = %dir.display(), "running static pods");
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut warned: HashMap<PathBuf, String> = HashMap::new();
    futures::pin_mut!(shutdown);
    loop {
        let desired = read_dir(&dir, &node, &mut warned);
        // Stopped first, so a changed manifest's old pod is gone before its successor (which
        // has the same name) starts.
        let gone: Vec<String> = running
            .keys()
            .filter(|uid| !desired.iter().any(|(u, _)| u == *uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(stopped) = running.remove(&uid) {
                tracing::info!(pod = %stopped.pod.name_any(), "static pod removed or changed; stopping it");
                stopped.worker.stop().await;
                crate::forget(&context, &stopped.pod);
                seen.remove(&uid);
            }
        }
        for (uid, mut pod) in desired {
            if running.contains_key(&uid) {
                continue;
            }
            let first_seen = seen
                .entry(uid.clone())
                .or_insert_with(|| jiff::Timestamp::now().to_string());
            pod.annotations_mut()
                .insert(CONFIG_SEEN.into(), first_seen.clone());
            tracing::info!(pod = %pod.name_any(), namespace = %pod.namespace().unwrap_or_default(), "starting static pod");
            let worker = Worker::start_static(context.clone(), pod.clone());
            running.insert(
                uid,
                Running {
                    pod,
                    worker,
                    mirror_uid: None,
                },
            );
        }
        if let Err(error) = sync_mirrors(&context.client, &node, &mut running).await {
            tracing::debug!(%error, "could not sync mirror pods; will retry");
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
    for (_, stopped) in running.drain() {
        stopped.worker.stop().await;
    }
}

/// Makes the API's mirror pods match the static pods: creates missing ones (again, if they
/// were deleted), replaces stale ones and deletes those of pods that are gone.
async fn sync_mirrors(
    client: &kube::Client,
    node: &str,
    running: &mut HashMap<String, Running>,
) -> kube::Result<()> {
    let all: Api<Pod> = Api::all(client.clone());
    let bound = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let mut mirrors: HashMap<(String, String), Pod> = bound
        .items
        .into_iter()
        .filter(is_mirror)
        .map(|p| ((p.namespace().unwrap_or_default(), p.name_any()), p))
        .collect();
    let mut node_uid = None;
    for static_pod in running.values_mut() {
        let pod = &static_pod.pod;
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let hash = pod.uid().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &key.0);
        match mirrors.remove(&key) {
            Some(mirror)
                if mirror.annotations().get(CONFIG_MIRROR) == Some(&hash)
                    && mirror.metadata.deletion_timestamp.is_none() =>
            {
                if static_pod.mirror_uid != mirror.uid() {
                    // A mirror this worker has not written to (created by an earlier agent):
                    // write the current status to it.
                    static_pod.mirror_uid = mirror.uid();
                    static_pod.worker.republish();
                }
                continue;
            }
            // Deleted through the API (the node's watch never finishes a mirror's graceful
            // deletion), or the mirror of an earlier version of the manifest: replace it.
            Some(stale) => delete_mirror(&api, &stale).await?,
            None => {}
        }
        if node_uid.is_none() {
            // Mirrors are owned by the Node, as in Kubernetes, so they go with it.
            let nodes: Api<Node> = Api::all(client.clone());
            node_uid = nodes.get_opt(node).await?.and_then(|n| n.metadata.uid);
        }
        let Some(owner) = &node_uid else {
            // Not registered yet: the mirrors follow once it is.
            return Ok(());
        };
        match api
            .create(&PostParams::default(), &mirror_of(pod, node, owner))
            .await
        {
            Ok(created) => {
                tracing::info!(pod = %key.1, namespace = %key.0, "created mirror pod");
                static_pod.mirror_uid = created.uid();
                static_pod.worker.republish();
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::warn!(pod = %key.1, namespace = %key.0, "a pod with the static pod's name is in the way of its mirror; will retry");
            }
            Err(error) => return Err(error),
        }
    }
    // Mirrors of static pods this node no longer runs (a manifest removed while it was down).
    for orphan in mirrors.values() {
        let api: Api<Pod> =
            Api::namespaced(client.clone(), &orphan.namespace().unwrap_or_default());
        delete_mirror(&api, orphan).await?;
    }
    Ok(())
}

/// Deletes a mirror pod at once (no node would finish a graceful deletion of it), only if it
/// is still the one that was read.
async fn delete_mirror(api: &Api<Pod>, mirror: &Pod) -> kube::Result<()> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: mirror.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&mirror.name_any(), &params).await {
        Ok(_) => {
            tracing::info!(pod = %mirror.name_any(), "deleted mirror pod");
            Ok(())
        }
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The mirror pod of a static pod: its metadata and spec with the mirror annotation and an
/// owner reference to the Node; uid, status and the rest are the apiserver's.
fn mirror_of(pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut mirror = Pod {
        metadata: pod.metadata.clone(),
        spec: pod.spec.clone(),
        status: None,
    };
    mirror.metadata.uid = None;
    mirror
        .annotations_mut()
        .insert(CONFIG_MIRROR.into(), pod.uid().unwrap_or_default());
    mirror.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.into(),
        uid: node_uid.into(),
        controller: Some(true),
        ..Default::default()
    }]);
    mirror
}

/// The static pods in `dir`, by uid. Files that cannot be read or hold something other than
/// Pods are skipped with a warning, once per version of the file (`warned`).
fn read_dir(dir: &Path, node: &str, warned: &mut HashMap<PathBuf, String>) -> Vec<(String, Pod)> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(error) => {
            let message = error.to_string();
            if warned.get(dir) != Some(&message) {
                tracing::warn!(dir = %dir.display(), %error, "cannot read the pod manifest directory");
                warned.insert(dir.to_path_buf(), message);
            }
            return Vec::new();
        }
    };
    entries.sort();
    let mut pods = Vec::new();
    for path in entries {
        let manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        // Editors' backups and hidden files (`.ticker.yaml.swp`, `.#x.yaml`) are not manifests.
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !manifest || hidden || !path.is_file() {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_manifest(&path, &text, node));
        match parsed {
            Ok(found) => {
                warned.remove(&path);
                pods.extend(found);
            }
            Err(message) => {
                if warned.get(&path) != Some(&message) {
                    tracing::warn!(file = %path.display(), %message, "skipping pod manifest");
                    warned.insert(path, message);
                }
            }
        }
    }
    pods
}

/// The static pods one manifest file holds, by uid; an error (naming what is wrong) if any of
/// its documents is not a valid Pod, as the kubelet skips such a file whole.
fn parse_manifest(path: &Path, text: &str, node: &str) -> Result<Vec<(String, Pod)>, String> {
    use serde::Deserialize;
    let mut pods = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| format!("not YAML or JSON: {e}"))?;
        if value.is_null() {
            continue; // an empty document, as after a trailing `---`
        }
        let (uid, pod) = static_pod(path, value, node)?;
        if pods.iter().any(|(u, _): &(String, Pod)| *u == uid) {
            continue;
        }
        pods.push((uid, pod));
    }
    if pods.is_empty() {
        return Err("holds no Pod".into());
    }
    Ok(pods)
}

/// One manifest document as the static pod the node runs.
fn static_pod(path: &Path, mut value: Value, node: &str) -> Result<(String, Pod), String> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "Pod" || api_version != "v1" {
        return Err(format!(
            "holds {api_version}/{kind}, not a v1 Pod (only Pods can be static)"
        ));
    }
    // The uid hashes the document as written, so any edit (even to a default) is a new pod.
    let mut hasher = Sha256::new();
    hasher.update(path.to_string_lossy().as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(&value).unwrap_or_default());
    hasher.update([0]);
    hasher.update(node.as_bytes());
    let hash: String = hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    // The defaults the apiserver would fill in, so the worker sees what a bound pod has.
    flotilla_api::defaults::apply("Pod", &mut value);
    let mut pod: Pod =
        serde_json::from_value(value).map_err(|e| format!("not a valid Pod: {e}"))?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("the Pod has no metadata.name")?;
    let name = format!("{name}-{node}");
    flotilla_api::validation::dns1123_subdomain(&name)
        .map_err(|e| format!("invalid pod name {name:?}: {e}"))?;
    let spec = pod.spec.as_mut().ok_or("the Pod has no spec")?;
    if spec.containers.is_empty() {
        return Err("the Pod has no containers".into());
    }
    spec.node_name = Some(node.into());
    pod.metadata.name = Some(name);
    pod.metadata.generate_name = None;
    pod.metadata.resource_version = None;
    pod.metadata.owner_references = None;
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(hash.clone());
    pod.status = None;
    let annotations: &mut BTreeMap<String, String> = pod.annotations_mut();
    annotations.remove(CONFIG_MIRROR);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_HASH.into(), hash.clone());
    Ok((hash, pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: ticker}\nspec:\n  containers: [{name: c, image: ticker, args: ['100']}]\n";

    #[test]
    fn a_manifest_becomes_a_static_pod_of_the_node() {
        let pods = parse_manifest(Path::new("/m/ticker.yaml"), TICKER, "edge-1").unwrap();
        let [(uid, pod)] = &pods[..] else {
            panic!("{pods:?}")
        };
        assert_eq!(pod.name_any(), "ticker-edge-1");
        assert_eq!(pod.namespace().as_deref(), Some("default"));
        assert_eq!(pod.uid().as_ref(), Some(uid));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("edge-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(pod.annotations()[CONFIG_SOURCE], "file");
        assert_eq!(&pod.annotations()[CONFIG_HASH], uid);
        assert!(!is_mirror(pod));
        let mirror = mirror_of(pod, "edge-1", "node-uid");
        assert!(is_mirror(&mirror));
        assert_eq!(mirror.metadata.uid, None);
        let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Node", "node-uid")
        );
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn the_uid_changes_with_the_content_the_file_and_the_node() {
        let uid = |path: &str, text: &str, node: &str| {
            parse_manifest(Path::new(path), text, node).unwrap()[0]
                .0
                .clone()
        };
        let first = uid("/m/a.yaml", TICKER, "n1");
        assert_eq!(first, uid("/m/a.yaml", TICKER, "n1"));
        assert_ne!(first, uid("/m/a.yaml", &TICKER.replace("100", "5"), "n1"));
        assert_ne!(first, uid("/m/b.yaml", TICKER, "n1"));
        assert_ne!(first, uid("/m/a.yaml", TICKER, "n2"));
    }

    #[test]
    fn documents_of_one_file_are_separate_pods_and_other_kinds_are_refused() {
        let two = format!("{TICKER}---\n{}---\n", TICKER.replace("ticker}", "other}"));
        let pods = parse_manifest(Path::new("/m/two.yaml"), &two, "n").unwrap();
        let names: Vec<String> = pods.iter().map(|(_, p)| p.name_any()).collect();
        assert_eq!(names, ["ticker-n", "other-n"]);
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"hello"}]}}"#;
        let pods = parse_manifest(Path::new("/m/j.json"), json, "n").unwrap();
        assert_eq!(pods[0].1.namespace().as_deref(), Some("kube-system"));

        for (bad, why) in [
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
                "not a v1 Pod",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n",
                "no containers",
            ),
            (
                "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n",
                "no metadata.name",
            ),
            ("{{{ not yaml", "not YAML"),
            ("", "holds no Pod"),
        ] {
            let error = parse_manifest(Path::new("/m/bad.yaml"), bad, "n").unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        let mixed = format!("{TICKER}---\napiVersion: v1\nkind: Service\n");
        assert!(parse_manifest(Path::new("/m/mixed.yaml"), &mixed, "n").is_err());
    }

    #[test]
    fn the_directory_skips_bad_files_and_other_names_and_warns_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.yaml"), TICKER).unwrap();
        std::fs::write(dir.path().join("bad.yml"), "kind: [").unwrap();
        std::fs::write(dir.path().join("notes.txt"), TICKER).unwrap();
        std::fs::write(dir.path().join(".good.yaml.swp"), TICKER).unwrap();
        let mut warned = HashMap::new();
        let pods = read_dir(dir.path(), "n", &mut warned);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].1.name_any(), "ticker-n");
        assert_eq!(warned.len(), 1);
        assert!(warned.contains_key(&dir.path().join("bad.yml")));
        assert!(read_dir(&dir.path().join("missing"), "n", &mut warned).is_empty());
    }
}
