//! Defaults Kubernetes fills in when an object is written, so clients read back what they
//! would read from a real cluster.
//!
//! [`apply`] runs on create and again on every update: a manifest re-applied without the
//! defaulted fields then compares equal to what is stored, so it neither bumps `generation`
//! nor trips the immutable-field checks. It runs after the server has assigned `uid` and
//! `name`, which a Job's generated selector is made of.

use serde_json::{Map, Value, json};

/// Labels a Job's pods carry so its generated selector finds them (batch/v1).
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The unprefixed forms, which Kubernetes still adds for older clients.
const LEGACY_JOB_CONTROLLER_UID_LABEL: &str = "controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// Applies the per-kind defaults of an object about to be stored.
pub fn apply(kind: &str, object: &mut Value) {
    match kind {
        "Namespace" => namespace(object),
        "Pod" => pod(object),
        "Deployment" => deployment(object),
        "ReplicaSet" => replica_set(object),
        "ReplicationController" => replication_controller(object),
        "DaemonSet" => daemon_set(object),
        "Job" => job(object),
        "Secret" => secret(object),
        "Service" => service(object),
        "Function" => function(object),
        _ => {}
    }
}

/// A Service's type, session affinity, and each port's protocol and `targetPort` (the port
/// itself when not given), as Kubernetes fills them in.
fn service(service: &mut Value) {
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("type").or_insert(json!("ClusterIP"));
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert(json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                port.entry("targetPort").or_insert(number);
            }
        }
    }
}

/// What a Function scales between and how long its requests may take, when not given.
pub const FUNCTION_DEFAULTS: [(&str, i64); 4] = [
    ("minScale", 0),
    ("maxScale", 10),
    ("concurrency", 100),
    ("timeoutSeconds", 30),
];

fn function(function: &mut Value) {
    let Some(spec) = function.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for (field, default) in FUNCTION_DEFAULTS {
        spec.entry(field).or_insert(json!(default));
    }
}

/// A Secret's `stringData` is a write-only convenience: each entry is base64-encoded into
/// `data` (overriding a key of the same name there) and the field itself is never stored, as
/// in Kubernetes. `type` defaults to `Opaque`.
fn secret(secret: &mut Value) {
    use base64::Engine as _;
    let Some(secret) = secret.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = secret.remove("stringData") {
        let data = ensure_map(secret, "data");
        for (key, value) in strings {
            if let Some(text) = value.as_str() {
                let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                data.insert(key, Value::String(encoded));
            }
        }
    }
    let type_ = secret.entry("type").or_insert(json!(""));
    if type_.as_str().is_none_or(str::is_empty) {
        *type_ = json!("Opaque");
    }
}

/// What the namespace strategy and defaulting give a new namespace in Kubernetes. Clients rely
/// on them: the Python client reads `status.phase`, and `kubernetes.io/metadata.name` is what
/// namespace selectors match a namespace by name with.
fn namespace(namespace: &mut Value) {
    let name = namespace["metadata"]["name"].clone();
    let Some(namespace) = namespace.as_object_mut() else {
        return;
    };
    if let Some(metadata) = namespace.get_mut("metadata").and_then(Value::as_object_mut)
        && name.is_string()
    {
        // Always the name, as in Kubernetes: the label cannot be set to anything else.
        ensure_map(metadata, "labels").insert("kubernetes.io/metadata.name".into(), name);
    }
    if let Some(spec) = namespace
        .entry("spec")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        spec.entry("finalizers").or_insert(json!(["kubernetes"]));
    }
    if let Some(status) = namespace
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        status.entry("phase").or_insert(json!("Active"));
    }
}

fn pod(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec") {
        pod_spec(spec);
    }
    let Some(pod) = pod.as_object_mut() else {
        return;
    };
    if let Some(status) = pod
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        status.entry("phase").or_insert(json!("Pending"));
        status.entry("qosClass").or_insert(json!("BestEffort"));
    }
}

/// The defaults of a pod's spec, shared by pods and the pod templates of workloads.
fn pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
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
            // Kubernetes: `Always` for the `latest` tag (written or implied), else
            // `IfNotPresent`, so a moving tag is looked up again at every start.
            let policy = crate::image::default_pull_policy(
                container.get("image").and_then(Value::as_str).unwrap_or(""),
            );
            container.entry("imagePullPolicy").or_insert(json!(policy));
        }
    }
}

/// `spec` of a workload as a map, created if absent so its defaults have somewhere to go.
fn spec_of(object: &mut Value) -> Option<&mut Map<String, Value>> {
    object
        .as_object_mut()?
        .entry("spec")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// Pod-spec defaults on `spec.template.spec`, as the pods the workload makes will get them.
fn template(spec: &mut Map<String, Value>) {
    if let Some(pod_spec_of) = spec
        .get_mut("template")
        .and_then(|template| template.get_mut("spec"))
    {
        pod_spec(pod_spec_of);
    }
}

fn deployment(object: &mut Value) {
    let Some(spec) = spec_of(object) else {
        return;
    };
    spec.entry("replicas").or_insert(json!(1));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        let kind = strategy
            .entry("type")
            .or_insert(json!("RollingUpdate"))
            .clone();
        if kind == "RollingUpdate" {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                rolling.entry("maxUnavailable").or_insert(json!("25%"));
                rolling.entry("maxSurge").or_insert(json!("25%"));
            }
        }
    }
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    template(spec);
}

fn replica_set(object: &mut Value) {
    let Some(spec) = spec_of(object) else {
        return;
    };
    spec.entry("replicas").or_insert(json!(1));
    template(spec);
}

/// A ReplicationController without a selector or labels takes its template's labels for both
/// (core/v1 only; apps/v1 kinds must state their selector).
fn replication_controller(object: &mut Value) {
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|labels| !labels.is_empty())
        .cloned();
    if let Some(labels) = &template_labels
        && crate::meta::labels(object).is_empty()
    {
        crate::meta::metadata_mut(object).insert("labels".into(), Value::Object(labels.clone()));
    }
    let Some(spec) = spec_of(object) else {
        return;
    };
    if let Some(labels) = template_labels {
        let empty = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty {
            spec.insert("selector".into(), Value::Object(labels));
        }
    }
    spec.entry("replicas").or_insert(json!(1));
    template(spec);
}

fn daemon_set(object: &mut Value) {
    let Some(spec) = spec_of(object) else {
        return;
    };
    let strategy = spec.entry("updateStrategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        let kind = strategy
            .entry("type")
            .or_insert(json!("RollingUpdate"))
            .clone();
        if kind == "RollingUpdate" {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                rolling.entry("maxUnavailable").or_insert(json!(1));
                rolling.entry("maxSurge").or_insert(json!(0));
            }
        }
    }
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    template(spec);
}

fn job(object: &mut Value) {
    let uid = crate::meta::uid(object).map(str::to_string);
    let name = crate::meta::name(object).map(str::to_string);
    let Some(spec) = spec_of(object) else {
        return;
    };
    // Both absent: one pod, run to one success. Parallelism alone leaves completions unset,
    // which means "done once any pod succeeds".
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
    }
    spec.entry("parallelism").or_insert(json!(1));
    spec.entry("backoffLimit").or_insert(json!(6));
    spec.entry("completionMode").or_insert(json!("NonIndexed"));
    spec.entry("suspend").or_insert(json!(false));
    let replacement = if spec.contains_key("podFailurePolicy") {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    spec.entry("podReplacementPolicy")
        .or_insert(json!(replacement));
    let manual = spec
        .entry("manualSelector")
        .or_insert(json!(false))
        .as_bool()
        .unwrap_or(false);
    // Kubernetes generates the selector once, on create; the uid and name never change, so
    // generating it again on update yields the same selector and lets a manifest without one
    // (as `flotilla apply` sends it) replace the Job.
    if !manual && let (Some(uid), Some(name)) = (uid, name) {
        generate_job_selector(spec, &uid, &name);
    }
    template(spec);
    // A Job without labels carries its pods' labels (after generation, as a real cluster
    // shows them once the Job is read back).
    let template_labels = spec
        .get("template")
        .and_then(|t| t.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .filter(|labels| !labels.is_empty())
        .cloned();
    if let Some(labels) = template_labels
        && crate::meta::labels(object).is_empty()
    {
        crate::meta::metadata_mut(object).insert("labels".into(), Value::Object(labels));
    }
}

/// Labels the template with the Job's uid and name and selects on the uid, keeping any value
/// the user set (a conflicting one then fails validation, as in Kubernetes).
fn generate_job_selector(spec: &mut Map<String, Value>, uid: &str, name: &str) {
    let template = ensure_map(spec, "template");
    let metadata = ensure_map(template, "metadata");
    let labels = ensure_map(metadata, "labels");
    for (key, value) in [
        (LEGACY_JOB_NAME_LABEL, name),
        (JOB_NAME_LABEL, name),
        (LEGACY_JOB_CONTROLLER_UID_LABEL, uid),
        (JOB_CONTROLLER_UID_LABEL, uid),
    ] {
        labels.entry(key).or_insert(json!(value));
    }
    let selector = ensure_map(spec, "selector");
    ensure_map(selector, "matchLabels")
        .entry(JOB_CONTROLLER_UID_LABEL)
        .or_insert(json!(uid));
}

/// `map[key]` as a map, created (or replacing a non-map) as needed.
fn ensure_map<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let value = map.entry(key).or_insert_with(|| json!({}));
    if !value.is_object() {
        *value = json!({});
    }
    value.as_object_mut().expect("just made a map")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_kubernetes_defaults() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x"},
            {"name": "b", "image": "x:v1"},
            {"name": "c", "image": "x:v1", "imagePullPolicy": "Never"},
        ]}});
        apply("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["status"]["phase"], "Pending");
        let policies: Vec<&Value> = (0..3)
            .map(|i| &pod["spec"]["containers"][i]["imagePullPolicy"])
            .collect();
        // `x` means `x:latest`, which Kubernetes pulls every time.
        assert_eq!(policies, ["Always", "IfNotPresent", "Never"]);
    }

    #[test]
    fn namespaces_are_active_and_labelled_with_their_name() {
        let mut namespace = json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "other"}}});
        apply("Namespace", &mut namespace);
        assert_eq!(namespace["status"]["phase"], "Active");
        assert_eq!(namespace["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(
            namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
    }

    #[test]
    fn secret_string_data_is_encoded_into_data() {
        let mut secret = json!({"metadata": {"name": "s"},
            "data": {"a": "b2xk", "b": "a2VlcA=="}, "stringData": {"a": "new", "c": "x"}});
        apply("Secret", &mut secret);
        assert_eq!(
            secret,
            json!({"metadata": {"name": "s"}, "type": "Opaque",
                "data": {"a": "bmV3", "b": "a2VlcA==", "c": "eA=="}})
        );
    }

    #[test]
    fn declared_values_are_kept() {
        let mut pod = json!({"spec": {"restartPolicy": "Never", "containers": []}});
        apply("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "a", "image": "x"}]}})
    }

    #[test]
    fn deployments_get_apps_v1_defaults() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"template": template()}});
        apply("Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert!(spec.get("minReadySeconds").is_none());
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        // A pod template has no status, unlike a pod.
        assert!(spec["template"].get("status").is_none());

        let mut recreate = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}});
        apply("Deployment", &mut recreate);
        assert_eq!(recreate["spec"]["replicas"], 0);
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn replication_controllers_select_their_template_labels() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"template": template()}});
        apply("ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);

        let mut rs = json!({"spec": {"template": template()}});
        apply("ReplicaSet", &mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(rs["spec"].get("selector").is_none());
    }

    #[test]
    fn daemon_sets_roll_one_at_a_time() {
        let mut ds = json!({"spec": {"template": template()}});
        apply("DaemonSet", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    }

    #[test]
    fn jobs_get_a_selector_made_of_their_uid() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply("Job", &mut job);
        let spec = &job["spec"];
        assert_eq!(
            (&spec["parallelism"], &spec["completions"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {JOB_CONTROLLER_UID_LABEL: "u-1"}})
        );
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels[JOB_NAME_LABEL], "pi");
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(job["metadata"]["labels"], *labels);
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");

        let again = {
            let mut j = job.clone();
            apply("Job", &mut j);
            j
        };
        assert_eq!(again, job, "defaulting twice changes nothing");
    }

    #[test]
    fn job_parallelism_alone_leaves_completions_unset() {
        let mut job = json!({"metadata": {"name": "w", "uid": "u"}, "spec": {"parallelism": 3}});
        apply("Job", &mut job);
        assert_eq!(job["spec"]["parallelism"], 3);
        assert!(job["spec"].get("completions").is_none());

        let mut manual = json!({"metadata": {"name": "m", "uid": "u"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        apply("Job", &mut manual);
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"a": "b"}})
        );
    }
}
