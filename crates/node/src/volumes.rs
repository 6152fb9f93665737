//! Pod volumes, mounted into the guest as WASI preopened directories.
//!
//! Each volume of a pod becomes a directory on the node, set up once when the pod starts and
//! shared by all of its containers:
//!
//! - `emptyDir`: a new, empty directory under the node's data directory
//!   (`volumes/<pod uid>/<name>`), removed with the pod;
//! - `hostPath`: the node's own directory at that path (created if missing, unless the type
//!   is `Directory`, which must exist); only directory types can be preopened;
//! - `configMap` and `secret`: a directory holding one file per key (or per `items` entry),
//!   written when the pod starts and always mounted read-only, as in Kubernetes. Later changes
//!   to the ConfigMap or Secret are not copied into a running pod.
//!
//! A container sees exactly the volumes it mounts, each at its `mountPath` (with `subPath`, a
//! directory inside the volume), read-only when the mount says `readOnly`. wasmtime-wasi
//! resolves every guest path inside its preopen, `..` and symlinks included, so nothing
//! outside the mounted directories is reachable.

use crate::config_data::{self, Kind};
use crate::runtime::Preopen;
use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The volumes of one pod, ready on the node.
#[derive(Debug, Clone, Default)]
pub struct PodVolumes {
    /// Volume name → its directory on the node, and whether every mount of it is read-only.
    dirs: HashMap<String, (PathBuf, bool)>,
}

/// Where the node keeps the volumes of one pod.
fn pod_root(root: &Path, uid: &str) -> PathBuf {
    root.join(uid)
}

/// Sets up every volume of `pod` under `root`. An error says which volume failed and why, as
/// the kubelet's `FailedMount` events do.
pub async fn prepare(client: &Client, root: &Path, pod: &Pod) -> Result<PodVolumes, String> {
    let uid = pod.uid().unwrap_or_else(|| pod.name_any());
    let namespace = pod.namespace().unwrap_or_default();
    let mut dirs = HashMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let failed = |why: String| {
            format!(
                "MountVolume.SetUp failed for volume \"{}\": {why}",
                volume.name
            )
        };
        let owned = pod_root(root, &uid).join(&volume.name);
        let mounted = mount(client, &namespace, volume, &owned)
            .await
            .map_err(failed)?;
        dirs.insert(volume.name.clone(), mounted);
    }
    Ok(PodVolumes { dirs })
}

/// Removes what the node created for a pod's volumes (never a hostPath's directory).
pub fn remove(root: &Path, uid: &str) {
    let dir = pod_root(root, uid);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %error, "could not remove a pod's volumes");
    }
}

async fn mount(
    client: &Client,
    namespace: &str,
    volume: &Volume,
    owned: &Path,
) -> Result<(PathBuf, bool), String> {
    let io = |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
    if volume.empty_dir.is_some() {
        std::fs::create_dir_all(owned).map_err(|e| io("creating", owned, e))?;
        return Ok((owned.to_path_buf(), false));
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref().unwrap_or("") {
            "" | "DirectoryOrCreate" => {
                std::fs::create_dir_all(&path).map_err(|e| io("creating", &path, e))?
            }
            "Directory" if path.is_dir() => {}
            "Directory" => return Err(format!("hostPath {} is not a directory", host.path)),
            other => {
                return Err(format!(
                    "hostPath type {other:?} cannot be mounted: Wasm pods see volumes as \
                     preopened directories, so use type Directory or DirectoryOrCreate"
                ));
            }
        }
        return Ok((path, false));
    }
    let (kind, name, items, optional) = if let Some(source) = &volume.config_map {
        (
            Kind::ConfigMap,
            &source.name,
            &source.items,
            source.optional,
        )
    } else if let Some(source) = &volume.secret {
        let name = source
            .secret_name
            .as_ref()
            .ok_or("secretName is required")?;
        (Kind::Secret, name, &source.items, source.optional)
    } else {
        // The apiserver refuses other sources; an old object might still have one.
        return Err("only emptyDir, hostPath, configMap and secret volumes are supported".into());
    };
    let data = match config_data::fetch(client, namespace, kind, name).await? {
        Some(data) => data,
        None if optional.unwrap_or(false) => Default::default(),
        None => return Err(config_data::not_found(kind, name)),
    };
    write_files(owned, &data, items.as_deref(), kind, name)?;
    Ok((owned.to_path_buf(), true))
}

/// Writes one file per key (or per item) into a fresh `dir`.
fn write_files(
    dir: &Path,
    data: &config_data::Data,
    items: Option<&[KeyToPath]>,
    kind: Kind,
    name: &str,
) -> Result<(), String> {
    let io = |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
    // Left over from an earlier start of the pod (the agent restarted): start clean, so a
    // key removed since is not still there.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io("clearing", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let files: Vec<(&str, &str)> = match items {
        Some(items) => items
            .iter()
            .map(|item| (item.key.as_str(), item.path.as_str()))
            .collect(),
        None => data
            .keys()
            .map(|key| (key.as_str(), key.as_str()))
            .collect(),
    };
    for (key, relative) in files {
        let Some(bytes) = data.get(key) else {
            return Err(format!(
                "{} \"{name}\" has no key {key:?} (named in items)",
                kind.noun()
            ));
        };
        // The apiserver refuses absolute paths and `..`; check again, as this writes as the
        // agent on the node's filesystem.
        if relative.starts_with('/') || relative.split('/').any(|part| part == "..") {
            return Err(format!(
                "item path {relative:?} must stay inside the volume"
            ));
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io("writing", &path, e))?;
    }
    Ok(())
}

impl PodVolumes {
    /// The preopened directories of one container: each of its volume mounts. A `subPath`
    /// that does not exist yet is created, as the kubelet does.
    pub fn preopens(&self, container: &Container) -> Result<Vec<Preopen>, String> {
        let mut preopens = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let Some((dir, always_read_only)) = self.dirs.get(&mount.name) else {
                return Err(format!(
                    "volume mount {:?} names no volume of the pod",
                    mount.name
                ));
            };
            let mut host = dir.clone();
            if let Some(sub_path) = mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                if sub_path.starts_with('/') || sub_path.split('/').any(|part| part == "..") {
                    return Err(format!("subPath {sub_path:?} must stay inside the volume"));
                }
                host = host.join(sub_path);
                if !host.exists() {
                    std::fs::create_dir_all(&host)
                        .map_err(|e| format!("creating subPath {sub_path:?}: {e}"))?;
                } else if !host.is_dir() {
                    return Err(format!(
                        "subPath {sub_path:?} is a file; Wasm pods can only mount directories"
                    ));
                }
            }
            preopens.push(Preopen {
                host,
                guest: mount.mount_path.clone(),
                read_only: *always_read_only || mount.read_only.unwrap_or(false),
            });
        }
        Ok(preopens)
    }
}
