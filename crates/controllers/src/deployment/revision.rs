//! ReplicaSet identity and history: the pod-template hash that names a Deployment's
//! ReplicaSets, and the revision annotations `kubectl rollout history|undo` read.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;

/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision a ReplicaSet was last rolled out as, and the Deployment's current revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Annotations of a Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
];

pub fn copied_annotation(key: &str) -> bool {
    !NOT_COPIED.contains(&key)
}

/// The template without the hash label, as a Deployment's own template is.
pub fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    template
}

/// Whether a ReplicaSet runs exactly this template (ignoring its hash label).
pub fn runs_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    let Some(rs_template) = rs.spec.template.as_ref() else {
        return false;
    };
    canonical(rs_template) == canonical(template)
}

/// A template as JSON without its hash label and without empty fields, so templates that
/// differ only in how they were serialized compare equal (`kubectl rollout undo` sends Go's
/// `resources: {}` where the original had nothing).
fn canonical(template: &PodTemplateSpec) -> serde_json::Value {
    let mut value = serde_json::to_value(without_hash(template)).unwrap_or_default();
    prune_empty(&mut value);
    value
}

fn prune_empty(value: &mut serde_json::Value) {
    use serde_json::Value;
    let is_empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(prune_empty);
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// The hash of a template, spelled as Kubernetes spells it (FNV-1a over the template, plus the
/// collision count, rendered through the alphabet of generated names), so ReplicaSets look
/// like `web-66b6c48dd5`.
pub fn template_hash(template: &PodTemplateSpec, collision_count: i32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = serde_json::to_vec(&canonical(template)).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |byte: u8| {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    };
    bytes.iter().copied().for_each(&mut feed);
    if collision_count > 0 {
        collision_count
            .to_le_bytes()
            .into_iter()
            .for_each(&mut feed);
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// The revision annotation of a ReplicaSet (0 when absent or unreadable).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels = std::collections::BTreeMap::from([("app".to_string(), "web".to_string())]);
        if let Some(hash) = hash {
            labels.insert(POD_TEMPLATE_HASH.into(), hash.into());
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..Default::default()
            }),
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_hash_ignores_the_hash_label_and_follows_the_template() {
        let a = template_hash(&template("v1", None), 0);
        assert_eq!(a, template_hash(&template("v1", Some("x")), 0));
        assert_ne!(a, template_hash(&template("v2", None), 0));
        assert_ne!(a, template_hash(&template("v1", None), 1));
        let mut with_empty = template("v1", None);
        with_empty.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
        assert_eq!(
            a,
            template_hash(&with_empty, 0),
            "empty fields do not count"
        );
        assert!(a.bytes().all(|b| b"456789bcdf".contains(&b)), "{a}");
    }
}
