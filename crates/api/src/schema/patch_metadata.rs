//! How lists of the served kinds merge, which k8s-openapi's schemas leave out.
//!
//! Kubernetes declares this on its Go types (`patchStrategy`, `patchMergeKey`,
//! `+listType`, `+listMapKey`) and publishes it in OpenAPI as `x-kubernetes-*` extensions:
//! strategic merge patch reads the patch strategy and merge key, server-side apply the list
//! type and map keys. k8s-openapi knows the same keys (its `DeepMerge` merges these lists by
//! them) but does not put them into its schemas, so they are listed here for the types
//! flotilla serves. A list not named here is atomic: a patch replaces it whole.

use serde_json::{Value, json};

/// One extension value.
#[derive(Debug, Clone, Copy)]
pub enum Extension {
    Text(&'static str),
    List(&'static [&'static str]),
}

impl Extension {
    pub fn to_json(self) -> Value {
        match self {
            Extension::Text(text) => json!(text),
            Extension::List(items) => json!(items),
        }
    }
}

use Extension::{List, Text};

/// A list merged by key: strategic merge patch by `key`, server-side apply by `map_keys`.
const fn by_key(
    key: &'static str,
    map_keys: &'static [&'static str],
) -> [(&'static str, Extension); 4] {
    [
        ("x-kubernetes-patch-strategy", Text("merge")),
        ("x-kubernetes-patch-merge-key", Text(key)),
        ("x-kubernetes-list-type", Text("map")),
        ("x-kubernetes-list-map-keys", List(map_keys)),
    ]
}

/// Pod volumes also `retainKeys`: a patch that changes a volume's source drops the old one.
const VOLUMES: [(&str, Extension); 4] = [
    ("x-kubernetes-patch-strategy", Text("merge,retainKeys")),
    ("x-kubernetes-patch-merge-key", Text("name")),
    ("x-kubernetes-list-type", Text("map")),
    ("x-kubernetes-list-map-keys", List(&["name"])),
];

/// A list of distinct scalars whose patches add to it rather than replace it.
const SET: [(&str, Extension); 2] = [
    ("x-kubernetes-patch-strategy", Text("merge")),
    ("x-kubernetes-list-type", Text("set")),
];

const BY_NAME: [(&str, Extension); 4] = by_key("name", &["name"]);
const BY_TYPE: [(&str, Extension); 4] = by_key("type", &["type"]);
const BY_IP: [(&str, Extension); 4] = by_key("ip", &["ip"]);

/// The extensions of one property, by name.
pub type Extensions = &'static [(&'static str, Extension)];

/// (definition, property, extensions). All are lists but `DeploymentSpec.strategy`.
pub const EXTENSIONS: &[(&str, &str, Extensions)] = &[
    (META, "finalizers", &SET),
    (META, "ownerReferences", &by_key("uid", &["uid"])),
    (POD_SPEC, "containers", &BY_NAME),
    (POD_SPEC, "initContainers", &BY_NAME),
    (POD_SPEC, "ephemeralContainers", &BY_NAME),
    (POD_SPEC, "imagePullSecrets", &BY_NAME),
    (POD_SPEC, "resourceClaims", &BY_NAME),
    (POD_SPEC, "schedulingGates", &BY_NAME),
    (POD_SPEC, "hostAliases", &BY_IP),
    (POD_SPEC, "volumes", &VOLUMES),
    (
        POD_SPEC,
        "topologySpreadConstraints",
        &by_key("topologyKey", &["topologyKey", "whenUnsatisfiable"]),
    ),
    (CONTAINER, "env", &BY_NAME),
    (
        CONTAINER,
        "ports",
        &by_key("containerPort", &["containerPort", "protocol"]),
    ),
    (
        CONTAINER,
        "volumeMounts",
        &by_key("mountPath", &["mountPath"]),
    ),
    (
        CONTAINER,
        "volumeDevices",
        &by_key("devicePath", &["devicePath"]),
    ),
    (EPHEMERAL, "env", &BY_NAME),
    (
        EPHEMERAL,
        "ports",
        &by_key("containerPort", &["containerPort", "protocol"]),
    ),
    (
        EPHEMERAL,
        "volumeMounts",
        &by_key("mountPath", &["mountPath"]),
    ),
    ("io.k8s.api.core.v1.PodStatus", "conditions", &BY_TYPE),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", &BY_IP),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", &BY_IP),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", &SET),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", &BY_TYPE),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", &BY_TYPE),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", &BY_TYPE),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        &BY_TYPE,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        &BY_TYPE,
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        &BY_TYPE,
    ),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", &BY_TYPE),
    // Switching a Deployment to Recreate must drop the defaulted `rollingUpdate`.
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        &[("x-kubernetes-patch-strategy", Text("retainKeys"))],
    ),
    // Jobs patch conditions by type but apply them whole (`+listType=atomic`).
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        &[
            ("x-kubernetes-patch-strategy", Text("merge")),
            ("x-kubernetes-patch-merge-key", Text("type")),
            ("x-kubernetes-list-type", Text("atomic")),
        ],
    ),
];

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const CONTAINER: &str = "io.k8s.api.core.v1.Container";
const EPHEMERAL: &str = "io.k8s.api.core.v1.EphemeralContainer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_names_a_property_that_exists() {
        let definitions = super::super::definitions();
        for (definition, property, extensions) in EXTENSIONS {
            let field = &definitions[*definition]["properties"][*property];
            let is_list = field["type"] == "array";
            let lists_only = extensions.iter().any(|(key, _)| key.contains("list"));
            assert!(
                is_list || (!lists_only && field.get("$ref").is_some()),
                "{definition}.{property}"
            );
        }
    }
}
