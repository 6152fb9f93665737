//! The kinds flotilla serves: the API surface that discovery advertises and the router parses.

/// One resource type served at `/api/v1/...` (empty group) or `/apis/{group}/{version}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural used in URLs, e.g. `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served below an object, e.g. `status`, `log`, `binding`.
    pub subresources: &'static [&'static str],
}

impl ResourceType {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `status` is a separate subresource, so writes to the object ignore it.
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The categories discovery lists it under: `all` holds the workload kinds, so
    /// `kubectl get all` shows them, as in Kubernetes.
    pub fn categories(&self) -> &'static [&'static str] {
        match self.kind {
            "Pod"
            | "Service"
            | "ReplicationController"
            | "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "Job"
            | "Function" => &["all"],
            _ => &[],
        }
    }

    /// Store key prefix of every object of this type: `{group}/{plural}/`.
    pub fn key_prefix(&self) -> String {
        format!("{}/{}/", self.group, self.plural)
    }

    /// Store key prefix of the objects of this type in one namespace.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{}/", self.key_prefix(), namespace)
    }

    /// Store key of one object. Cluster-scoped objects use an empty namespace.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        format!("{}{}/{}", self.key_prefix(), namespace, name)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Verbs every resource supports.
pub fn verbs() -> &'static [&'static str] {
    ALL_VERBS
}

/// Every resource type flotilla serves.
pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        subresources: &["status"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        subresources: &["status", "log", "binding"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        subresources: &["status"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        subresources: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        subresources: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        subresources: &["status"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        subresources: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        subresources: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        namespaced: true,
        short_names: &["rc"],
        subresources: &["status", "scale"],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        subresources: &["status", "scale"],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        subresources: &["status", "scale"],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        subresources: &["status"],
    },
    ResourceType {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        subresources: &["status"],
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        subresources: &[],
    },
    ResourceType {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        subresources: &[],
    },
    ResourceType {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        singular: "ingress",
        namespaced: true,
        short_names: &["ing"],
        subresources: &["status"],
    },
    // A serverless HTTP function: an HTTP component that the gateway serves at
    // `/function/NAME`, scaled between `minScale` (possibly zero) and `maxScale` instances.
    ResourceType {
        group: "flotilla.dev",
        version: "v1",
        kind: "Function",
        plural: "functions",
        singular: "function",
        namespaced: true,
        short_names: &["fn"],
        // `proxy` passes a request to the Function through the gateway; `metrics` is the
        // gateway's Prometheus text for this Function only (both for the dashboard).
        subresources: &["status", "proxy", "metrics"],
    },
    // A pushed Wasm module: its tags name content-addressed blobs, which the apiserver stores
    // beside the store and serves under `modules/{name}/blobs/sha256:{hex}`.
    ResourceType {
        group: "flotilla.dev",
        version: "v1",
        kind: "Module",
        plural: "modules",
        singular: "module",
        namespaced: true,
        short_names: &["mod"],
        subresources: &[],
    },
];

/// Finds a resource type by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource type by `apiVersion` and `kind`, as written in a manifest.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Finds a resource type by any name a person types: plural, singular, kind or short name
/// (case-insensitive), as `kubectl get po` accepts.
pub fn lookup_any(name: &str) -> Option<&'static ResourceType> {
    let name = name.to_ascii_lowercase();
    RESOURCES.iter().find(|r| {
        r.plural == name
            || r.singular == name
            || r.kind.to_ascii_lowercase() == name
            || r.short_names.contains(&name.as_str())
    })
}

/// The API groups other than core, each with its versions, for `/apis` discovery.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty())
        .map(|r| (r.group, r.version))
        .collect();
    groups.dedup();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_kinds_and_namespaces() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.key("default", "hello"), "/pods/default/hello");
        assert!(
            pods.key("default", "hello")
                .starts_with(&pods.namespace_prefix("default"))
        );
        assert!(
            !pods
                .key("default2", "x")
                .starts_with(&pods.namespace_prefix("default"))
        );
    }

    #[test]
    fn any_name_finds_the_kind() {
        for name in ["po", "pod", "pods", "Pod", "PODS"] {
            assert_eq!(lookup_any(name).unwrap().kind, "Pod");
        }
        assert!(lookup_any("widgets").is_none());
        assert_eq!(lookup_kind("v1", "Node").unwrap().plural, "nodes");
    }
}
