//! Generates the schema definitions from k8s-openapi's `JsonSchema` implementations.

use super::patch_metadata;
use crate::resource::{self, ResourceType};
use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, discovery, networking};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta_v1;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// Every schema flotilla's API uses, by OpenAPI definition name, built once. Kinds carry
/// `x-kubernetes-group-version-kind`, list fields their patch strategy and merge key, and each
/// served kind has a `…List` definition beside it, as in Kubernetes' own document.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(generate)
}

/// The definition name of a served kind, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn definition_name(r: &ResourceType) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(group, version, kind, _)| {
            *group == r.group && *version == r.version && *kind == r.kind
        })
        .map(|(_, _, _, name)| *name)
}

/// Kinds with their definition names. Each must also be generated in [`generate`].
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Namespace", "io.k8s.api.core.v1.Namespace"),
    ("", "v1", "Pod", "io.k8s.api.core.v1.Pod"),
    ("", "v1", "Node", "io.k8s.api.core.v1.Node"),
    ("", "v1", "ConfigMap", "io.k8s.api.core.v1.ConfigMap"),
    ("", "v1", "Secret", "io.k8s.api.core.v1.Secret"),
    ("", "v1", "Event", "io.k8s.api.core.v1.Event"),
    ("", "v1", "Service", "io.k8s.api.core.v1.Service"),
    ("", "v1", "Endpoints", "io.k8s.api.core.v1.Endpoints"),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "io.k8s.api.discovery.v1.EndpointSlice",
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "io.k8s.api.networking.v1.Ingress",
    ),
    (
        "",
        "v1",
        "ReplicationController",
        "io.k8s.api.core.v1.ReplicationController",
    ),
    ("", "v1", "Binding", "io.k8s.api.core.v1.Binding"),
    ("apps", "v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
    ("apps", "v1", "ReplicaSet", "io.k8s.api.apps.v1.ReplicaSet"),
    ("apps", "v1", "DaemonSet", "io.k8s.api.apps.v1.DaemonSet"),
    ("batch", "v1", "Job", "io.k8s.api.batch.v1.Job"),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "io.k8s.api.coordination.v1.Lease",
    ),
    (
        "autoscaling",
        "v1",
        "Scale",
        "io.k8s.api.autoscaling.v1.Scale",
    ),
    ("flotilla.dev", "v1", "Module", "dev.flotilla.v1.Module"),
    ("flotilla.dev", "v1", "Function", "dev.flotilla.v1.Function"),
];

fn generate() -> Map<String, Value> {
    // draft-07 settings put definitions under `#/definitions/`, OpenAPI v2's place.
    let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
    generator.subschema_for::<core::v1::Namespace>();
    generator.subschema_for::<core::v1::Pod>();
    generator.subschema_for::<core::v1::Node>();
    generator.subschema_for::<core::v1::ConfigMap>();
    generator.subschema_for::<core::v1::Secret>();
    generator.subschema_for::<core::v1::Event>();
    generator.subschema_for::<core::v1::Service>();
    generator.subschema_for::<core::v1::Endpoints>();
    generator.subschema_for::<discovery::v1::EndpointSlice>();
    generator.subschema_for::<networking::v1::Ingress>();
    generator.subschema_for::<core::v1::ReplicationController>();
    generator.subschema_for::<core::v1::Binding>();
    generator.subschema_for::<apps::v1::Deployment>();
    generator.subschema_for::<apps::v1::ReplicaSet>();
    generator.subschema_for::<apps::v1::DaemonSet>();
    generator.subschema_for::<batch::v1::Job>();
    generator.subschema_for::<coordination::v1::Lease>();
    generator.subschema_for::<autoscaling::v1::Scale>();
    generator.subschema_for::<meta_v1::Status>();
    // Function.status.conditions uses the generic Condition.
    generator.subschema_for::<meta_v1::Condition>();
    generator.subschema_for::<meta_v1::DeleteOptions>();
    generator.subschema_for::<meta_v1::ListMeta>();
    generator.subschema_for::<meta_v1::Patch>();
    // Without transforms: OpenAPI v2 keeps `description` beside `$ref`, as Kubernetes does.
    let mut definitions = generator.take_definitions(false);
    definitions.extend(flotilla_definitions());
    for (group, version, kind, name) in KINDS {
        let gvk = json!([{"group": group, "kind": kind, "version": version}]);
        if let Some(Value::Object(schema)) = definitions.get_mut(*name) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    for r in resource::RESOURCES {
        if let Some(item) = definition_name(r) {
            definitions.insert(format!("{item}List"), list_schema(r, item));
        }
    }
    for (definition, property, extensions) in patch_metadata::EXTENSIONS {
        let field = definitions
            .get_mut(*definition)
            .and_then(|schema| schema.pointer_mut(&format!("/properties/{property}")))
            .and_then(Value::as_object_mut);
        if let Some(field) = field {
            for (key, value) in extensions.iter() {
                field.insert((*key).into(), value.to_json());
            }
        }
    }
    definitions
}

/// flotilla's own kinds, written in the form Kubernetes publishes for its types (OpenAPI
/// names reverse the group's domain, as for CRDs), so `kubectl explain module.spec` and field
/// validation work as for built-in kinds.
fn flotilla_definitions() -> Map<String, Value> {
    let object_meta = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    let Value::Object(map) = json!({
        "dev.flotilla.v1.Module": {
            "description": "Module is a WebAssembly module or component pushed to the cluster (`flotilla push FILE NAME:TAG`). Pods run it with image NAME:TAG or NAME@sha256:DIGEST; the bytes are stored content-addressed by the apiserver.",
            "type": "object",
            "properties": {
                "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
                "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
                "metadata": {"$ref": object_meta, "description": "Standard object's metadata. The name is the module's name in image references."},
                "spec": {"$ref": "#/definitions/dev.flotilla.v1.ModuleSpec", "description": "The module's tags."},
            },
        },
        "dev.flotilla.v1.ModuleSpec": {
            "description": "ModuleSpec lists the tags of a module.",
            "type": "object",
            "properties": {
                "tags": {
                    "description": "Tags, each naming the digest of an uploaded blob. Pushing to a tag moves it; images that name a digest never move.",
                    "type": "array",
                    "items": {"$ref": "#/definitions/dev.flotilla.v1.ModuleTag"},
                    "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                },
                "blobs": {
                    "description": "Every version pushed, tagged or not, so an image pinned by digest keeps working after its tag moves. Removing an entry makes that digest unavailable to new pulls.",
                    "type": "array",
                    "items": {"$ref": "#/definitions/dev.flotilla.v1.ModuleBlob"},
                    "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-patch-merge-key": "digest",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["digest"],
                },
            },
        },
        "dev.flotilla.v1.Function": {
            "description": "Function is a serverless HTTP function: a wasi:http/proxy component that the gateway serves at /function/NAME (/function/NAME.NAMESPACE outside the default namespace), run as pods scaled between minScale and maxScale by in-flight requests, down to none while idle when minScale is 0.",
            "type": "object",
            "properties": {
                "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
                "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
                "metadata": {"$ref": object_meta, "description": "Standard object's metadata. The name is part of the function's URL."},
                "spec": {"$ref": "#/definitions/dev.flotilla.v1.FunctionSpec", "description": "What to run and how to scale it."},
                "status": {"$ref": "#/definitions/dev.flotilla.v1.FunctionStatus", "description": "Where the function answers and how many instances serve it."},
            },
        },
        "dev.flotilla.v1.FunctionSpec": {
            "description": "FunctionSpec says what a function runs and how it scales.",
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"description": "The HTTP component to run, as a container image: file://, http(s)://, a pushed module NAME:TAG or an OCI reference.", "type": "string"},
                "args": {"description": "Arguments the component sees (wasi:cli/environment).", "type": "array", "items": {"type": "string"}},
                "env": {"description": "Environment variables the component sees.", "type": "array", "items": {"$ref": "#/definitions/io.k8s.api.core.v1.EnvVar"}, "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                "minScale": {"description": "Instances kept running when idle; 0 (the default) scales to zero, and the first request after idle waits for an instance to start.", "type": "integer", "format": "int32"},
                "maxScale": {"description": "The most instances to run, however busy the function is. Defaults to 10.", "type": "integer", "format": "int32"},
                "concurrency": {"description": "In-flight requests per instance before the function scales out. Defaults to 100.", "type": "integer", "format": "int32"},
                "timeoutSeconds": {"description": "How long one request may take before it is cut off with 504. Defaults to 30.", "type": "integer", "format": "int32"},
                "resources": {"$ref": "#/definitions/io.k8s.api.core.v1.ResourceRequirements", "description": "Per-instance resources; limits.memory caps each request's instance."},
            },
        },
        "dev.flotilla.v1.FunctionStatus": {
            "description": "FunctionStatus is where the function answers and how it is scaled.",
            "type": "object",
            "properties": {
                "url": {"description": "The function's URL at the gateway.", "type": "string"},
                "desiredInstances": {"description": "How many instances the autoscaler wants, between minScale and maxScale.", "type": "integer", "format": "int32"},
                "instances": {"description": "How many instances exist.", "type": "integer", "format": "int32"},
                "readyInstances": {"description": "How many instances are ready to serve.", "type": "integer", "format": "int32"},
                "observedGeneration": {"description": "The generation of the spec this status reflects.", "type": "integer", "format": "int64"},
                "conditions": {"description": "Ready: whether the function can serve requests now (or on demand, when scaled to zero). ImageReady: whether its component loads.", "type": "array", "items": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Condition"}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            },
        },
        "dev.flotilla.v1.ModuleBlob": {
            "description": "ModuleBlob is one pushed version of a module.",
            "type": "object",
            "required": ["digest", "size"],
            "properties": {
                "digest": {"description": "sha256: and the hexadecimal SHA-256 of the module's bytes.", "type": "string"},
                "size": {"description": "The module's size in bytes.", "type": "integer", "format": "int64"},
                "pushed": {"description": "When it was first pushed (RFC 3339).", "type": "string", "format": "date-time"},
            },
        },
        "dev.flotilla.v1.ModuleTag": {
            "description": "ModuleTag points a tag at a blob.",
            "type": "object",
            "required": ["name", "digest", "size"],
            "properties": {
                "name": {"description": "The tag, as in NAME:TAG (e.g. v1, latest).", "type": "string"},
                "digest": {"description": "sha256: and the hexadecimal SHA-256 of the module's bytes.", "type": "string"},
                "size": {"description": "The module's size in bytes.", "type": "integer", "format": "int64"},
                "pushed": {"description": "When the tag was last pushed (RFC 3339).", "type": "string", "format": "date-time"},
            },
        },
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// The `…List` schema of a kind; k8s-openapi has one generic `List<T>` without a schema.
fn list_schema(r: &ResourceType, item: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", r.kind, r.kind),
        "type": "object",
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta", "description": "Standard list metadata."},
            "items": {"description": format!("List of {}.", r.plural), "type": "array", "items": {"$ref": format!("#/definitions/{item}")}},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [{"group": r.group, "kind": format!("{}List", r.kind), "version": r.version}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_definition_with_its_group_version_kind() {
        for r in resource::RESOURCES {
            let name = definition_name(r).unwrap_or_else(|| panic!("{} has no schema", r.kind));
            let schema = &definitions()[name];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"][0]["kind"], r.kind,
                "{name}"
            );
            assert!(definitions().contains_key(&format!("{name}List")));
        }
    }

    #[test]
    fn references_resolve_within_the_definitions() {
        fn check(value: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let name = target.strip_prefix(super::super::REF_PREFIX).unwrap();
                        assert!(definitions().contains_key(name), "dangling {target}");
                    }
                    map.values().for_each(check);
                }
                Value::Array(items) => items.iter().for_each(check),
                _ => {}
            }
        }
        definitions().values().for_each(check);
    }

    #[test]
    fn containers_merge_by_name() {
        let containers = &definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
    }
}
