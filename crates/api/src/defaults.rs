//! Defaults Kubernetes fills in when an object is created, so clients read back what they
//! would read from a real cluster.

use serde_json::{Value, json};

/// Applies the per-kind defaults of a newly created object.
pub fn apply(kind: &str, object: &mut Value) {
    if kind == "Pod" {
        pod(object)
    }
}

fn pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            container
                .entry("terminationMessagePolicy")
                .or_insert(json!("File"));
            container
                .entry("imagePullPolicy")
                .or_insert(json!("IfNotPresent"));
        }
    }
    let status = pod
        .as_object_mut()
        .expect("pod checked to be an object")
        .entry("status")
        .or_insert_with(|| json!({}));
    if let Some(status) = status.as_object_mut() {
        status.entry("phase").or_insert(json!("Pending"));
        status.entry("qosClass").or_insert(json!("BestEffort"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_kubernetes_defaults() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        apply("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn declared_values_are_kept() {
        let mut pod = json!({"spec": {"restartPolicy": "Never", "containers": []}});
        apply("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
    }
}
