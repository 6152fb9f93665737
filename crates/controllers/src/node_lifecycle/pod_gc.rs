//! PodGC: deletes the pods bound to nodes that no longer exist.

use super::{Controller, node_of, report, uid};
use flotilla_client::events::EventType;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

impl Controller {
    /// PodGC: pods bound to a node that no longer exists can never run or finish; delete them
    /// outright. The node's absence is confirmed with the API, not just the cache, so a pod
    /// bound to a node that is too new for the cache is left alone.
    pub(super) async fn collect_orphans(&mut self, names: &HashSet<String>, pods: &[Arc<Pod>]) {
        let present: HashSet<String> = pods.iter().map(|p| uid(p)).collect();
        self.collected.retain(|uid| present.contains(uid));
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut confirmed_gone: HashMap<String, bool> = HashMap::new();
        for pod in pods {
            let Some(node) = node_of(pod) else { continue };
            let pod_uid = uid(pod);
            if names.contains(node) || self.collected.contains(&pod_uid) {
                continue;
            }
            let gone = match confirmed_gone.get(node) {
                Some(gone) => *gone,
                None => {
                    let gone = match nodes.get_opt(node).await {
                        Ok(found) => found.is_none(),
                        Err(error) => {
                            report("checking that a node is gone", node, error);
                            false
                        }
                    };
                    confirmed_gone.insert(node.to_string(), gone);
                    gone
                }
            };
            if !gone {
                continue;
            }
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!(pod = %name, %namespace, %node, "deleted pod bound to a node that no longer exists");
                    self.collected.insert(pod_uid);
                    self.gc_events
                        .record(
                            &**pod,
                            EventType::Normal,
                            "DeletionByPodGC",
                            format!(
                                "Deleting pod {namespace}/{name}: its node {node} no longer exists"
                            ),
                        )
                        .await;
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                    self.collected.insert(pod_uid);
                }
                Err(error) => report("deleting an orphaned pod", &name, error),
            }
        }
    }
}
