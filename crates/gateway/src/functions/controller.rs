//! The Function controller: runs as many pods of each Function as its autoscaler wants, each
//! an instance of the Function's HTTP component, replaces them when the spec changes, and
//! reports where the Function answers and how it is doing in `status`.
//!
//! Its pods carry the labels `flotilla.dev/function: NAME` and
//! `flotilla.dev/function-revision: HASH` (of the spec that made them), the request timeout
//! as an annotation the node agent enforces, and an ownerReference to the Function, so the
//! garbage collector removes them with it.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};

use anyhow::Context as _;
use flotilla_api::function::{FUNCTION_LABEL, Function, FunctionStatus};
use flotilla_controllers::expectations::Seen;
use flotilla_controllers::informer::ObjectKey;
use flotilla_controllers::worker::Action;
use flotilla_node::runtime::ALLOWED_HOSTS_ANNOTATION;
use flotilla_node::serving::{REQUEST_TIMEOUT_ANNOTATION, SERVE_ANNOTATION};
use k8s_openapi::Resource as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Functions;

/// The label with the hash of the spec a Function's pod was made from.
pub(crate) const REVISION_LABEL: &str = "flotilla.dev/function-revision";
/// Waiting reasons of a container that mean the Function's image cannot serve.
const IMAGE_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
];

impl Functions {
    pub(crate) async fn reconcile(&self, key: &ObjectKey) -> anyhow::Result<Action> {
        let Some(function) = self.cache.functions.get(Some(&key.namespace), &key.name) else {
            self.autoscaler.forget(key);
            self.failures.forget(key);
            self.expectations.forget(key);
            return Ok(Action::AwaitChange);
        };
        if function.metadata.deletion_timestamp.is_some() {
            return Ok(Action::AwaitChange);
        }
        let spec = &function.spec;
        let status = function.status.clone().unwrap_or_default();
        let initial = status.desired_instances.unwrap_or(spec.min_scale());
        let desired = self.autoscaler.desired(key, spec, initial);
        let revision = revision_of(&function);
        let uid = function.uid().unwrap_or_default();
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);

        let pods: Vec<_> = self
            .function_pods(&key.namespace, &key.name)
            .into_iter()
            .filter(|pod| pod.owner_references().iter().any(|owner| owner.uid == uid))
            .collect();
        let (current, old): (Vec<_>, Vec<_>) = pods
            .iter()
            .partition(|pod| pod.labels().get(REVISION_LABEL) == Some(&revision));
        fn live(pod: &Pod) -> bool {
            pod.metadata.deletion_timestamp.is_none()
                && !flotilla_controllers::pods::is_finished(pod)
        }
        // Finished pods (evicted, or failed for good) are replaced, not counted.
        for pod in pods.iter().filter(|pod| {
            pod.metadata.deletion_timestamp.is_none()
                && flotilla_controllers::pods::is_finished(pod)
        }) {
            delete_pod(&pods_api, &pod.name_any()).await?;
        }
        let mut current: Vec<_> = current.into_iter().filter(|pod| live(pod)).collect();
        let ready_current = current.iter().filter(|p| is_ready(p)).count();
        let wanted = usize::try_from(desired).unwrap_or(0);
        // The cache trails this controller's own writes: act on counts only once it shows them.
        let pods_cache = &self.cache.function_pods;
        let caught_up = self.expectations.satisfied(key, |name| {
            match pods_cache.get(Some(&key.namespace), name) {
                None => Seen::Absent,
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => Seen::Terminating,
                Some(_) => Seen::Present,
            }
        });
        if caught_up && current.len() < wanted {
            for _ in current.len()..wanted {
                let pod = pod_for(&function, &revision);
                let created = pods_api
                    .create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating a pod for Function {key}"))?;
                self.expectations
                    .expect_creations(key, [created.name_any()]);
            }
        } else if caught_up && current.len() > wanted {
            // The least useful go first: not ready, then the newest.
            current.sort_by_key(|pod| {
                (
                    is_ready(pod),
                    std::cmp::Reverse(pod.metadata.creation_timestamp.clone().map(|t| t.0)),
                )
            });
            for pod in &current[..current.len() - wanted] {
                self.expectations.expect_deletions(key, [pod.name_any()]);
                delete_pod(&pods_api, &pod.name_any()).await?;
            }
        }
        // Pods of an older spec go once the new ones can take over.
        if caught_up && ready_current >= wanted.min(1) {
            for pod in old.iter().filter(|pod| live(pod)) {
                self.expectations.expect_deletions(key, [pod.name_any()]);
                delete_pod(&pods_api, &pod.name_any()).await?;
            }
        }

        let instances = pods.iter().filter(|pod| live(pod)).count() as i32;
        let ready = (pods.iter().filter(|pod| live(pod)))
            .filter(|p| is_ready(p))
            .count() as i32;
        let failure = image_failure(&pods);
        let recent_failure = self.failures.recent(key);
        self.metrics.instances(
            &key.namespace,
            &key.name,
            i64::from(ready),
            i64::from(desired),
        );
        let next = FunctionStatus {
            url: Some(self.url_of(&key.namespace, &key.name)),
            desired_instances: Some(desired),
            instances: Some(instances),
            ready_instances: Some(ready),
            observed_generation: function.metadata.generation,
            conditions: Some(conditions(
                &status,
                ready,
                desired,
                spec.min_scale(),
                failure,
                recent_failure.as_ref(),
            )),
        };
        if next != status {
            let functions: Api<Function> = Api::namespaced(self.client.clone(), &key.namespace);
            functions
                .patch_status(
                    &key.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": next })),
                )
                .await
                .with_context(|| format!("writing the status of Function {key}"))?;
        }
        // A failure shows for a while; look again when it is due to clear.
        Ok(match recent_failure {
            Some(_) => Action::RequeueAfter(super::failures::WINDOW),
            None => Action::AwaitChange,
        })
    }

    /// Where a Function answers: `/function/NAME` in `default`, `/function/NAME.NAMESPACE`
    /// elsewhere.
    pub(crate) fn url_of(&self, namespace: &str, name: &str) -> String {
        let base = &self.config.public_url;
        if namespace == "default" {
            format!("{base}/function/{name}")
        } else {
            format!("{base}/function/{name}.{namespace}")
        }
    }
}

/// A hash of everything in the spec that goes into a pod: a change makes new pods.
pub(crate) fn revision_of(function: &Function) -> String {
    let spec = &function.spec;
    let text = serde_json::to_string(&json!([
        spec.image,
        spec.args,
        spec.env,
        spec.resources,
        spec.timeout_seconds(),
        function.annotations().get(ALLOWED_HOSTS_ANNOTATION),
    ]))
    .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

pub(crate) fn pod_for(function: &Function, revision: &str) -> Pod {
    let name = function.name_any();
    let spec = &function.spec;
    let mut annotations = BTreeMap::from([
        (
            REQUEST_TIMEOUT_ANNOTATION.to_string(),
            spec.timeout_seconds().to_string(),
        ),
        (SERVE_ANNOTATION.to_string(), "http".to_string()),
    ]);
    if let Some(hosts) = function.annotations().get(ALLOWED_HOSTS_ANNOTATION) {
        annotations.insert(ALLOWED_HOSTS_ANNOTATION.to_string(), hosts.clone());
    }
    let owner = json!({
        "apiVersion": Function::API_VERSION,
        "kind": Function::KIND,
        "name": name,
        "uid": function.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    });
    serde_json::from_value(json!({
        "metadata": {
            "generateName": format!("{name}-"),
            "namespace": function.namespace(),
            "labels": {FUNCTION_LABEL: name, REVISION_LABEL: revision},
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": {
            "containers": [{
                "name": "function",
                "image": spec.image,
                "args": spec.args,
                "env": spec.env,
                "resources": spec.resources,
            }],
            "restartPolicy": "Always",
            // A Wasm instance cannot be sent SIGTERM: there is nothing to wait for.
            "terminationGracePeriodSeconds": 0,
        },
    }))
    .expect("a Function's pod is a valid Pod")
}

fn is_ready(pod: &Pod) -> bool {
    flotilla_controllers::pods::is_ready(pod)
}

/// Why the Function's image cannot serve, from its pods' waiting containers.
pub(crate) fn image_failure(pods: &[std::sync::Arc<Pod>]) -> Option<(String, String)> {
    pods.iter()
        .flat_map(|pod| pod.status.iter())
        .flat_map(|status| status.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|waiting| {
            waiting
                .reason
                .as_deref()
                .is_some_and(|reason| IMAGE_FAILURES.contains(&reason))
        })
        .map(|waiting| {
            (
                waiting.reason.clone().unwrap_or_default(),
                waiting.message.clone().unwrap_or_default(),
            )
        })
}

/// The `Ready` condition: ready instances serve; a Function scaled to zero is ready to be
/// started on demand; one whose instances cannot start says why. And `RequestsSucceeding`:
/// False, with the reason, for a minute after a request failed.
fn conditions(
    previous: &FunctionStatus,
    ready: i32,
    desired: i32,
    min_scale: i32,
    failure: Option<(String, String)>,
    recent_failure: Option<&super::failures::Failure>,
) -> Vec<Condition> {
    let (status, reason, message) = match failure {
        Some((reason, message)) if ready == 0 => ("False", reason, message),
        _ if ready > 0 => (
            "True",
            "InstancesReady".to_string(),
            format!("{ready} instance(s) ready"),
        ),
        _ if desired == 0 && min_scale == 0 => (
            "True",
            "ScaledToZero".to_string(),
            "no instance runs while idle; the next request starts one".to_string(),
        ),
        _ => (
            "False",
            "InstancesStarting".to_string(),
            "waiting for an instance to become ready".to_string(),
        ),
    };
    let requests = match recent_failure {
        Some(failure) => (
            "False",
            failure.reason.to_string(),
            format!("{} (in the last minute)", failure.message),
        ),
        None => (
            "True",
            "NoRecentFailures".to_string(),
            "no request failed in the last minute".to_string(),
        ),
    };
    vec![
        condition(previous, "Ready", (status, reason, message)),
        condition(previous, "RequestsSucceeding", requests),
    ]
}

/// A condition, keeping its transition time while its status holds.
fn condition(
    previous: &FunctionStatus,
    type_: &str,
    (status, reason, message): (&str, String, String),
) -> Condition {
    let since = (previous.conditions.iter().flatten())
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time: since,
        observed_generation: None,
    }
}

async fn delete_pod(api: &Api<Pod>, name: &str) -> anyhow::Result<()> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error).with_context(|| format!("deleting pod {name}")),
    }
}
