//! Claiming pods for an owner picked by a selector (Kubernetes' `PodControllerRefManager`):
//! the pods it controls, after adopting matching orphans and releasing controlled pods whose
//! labels stopped matching. Shared by the ReplicaSet, Job and DaemonSet controllers.

use crate::informer::Informer;
use crate::pods;
use anyhow::Context as _;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The pods of `owner`'s namespace that it controls, adopting orphans that `selects` picks and
/// `adoptable` accepts, and releasing controlled pods that `selects` no longer picks.
pub async fn claim_pods<K>(
    client: &Client,
    pods: &Informer<Pod>,
    owner: &K,
    selects: impl Fn(&BTreeMap<String, String>) -> bool,
    adoptable: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Vec<Arc<Pod>>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    let namespace = owner.namespace().unwrap_or_default();
    let owner_uid = owner.uid().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut claimed = Vec::new();
    for pod in pods
        .store()
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
    {
        let matches = selects(pod.labels());
        match pods::controller_of(pod.as_ref()) {
            Some(reference) if reference.uid == owner_uid => {
                if matches {
                    claimed.push(pod);
                    continue;
                }
                let remaining: Vec<_> = pod
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != owner_uid)
                    .cloned()
                    .collect();
                patch_owners(&api, &pod, serde_json::to_value(remaining)?)
                    .await
                    .with_context(|| format!("releasing pod {}", pod.name_any()))?;
            }
            None if matches && adoptable(&pod) && pod.metadata.deletion_timestamp.is_none() => {
                let mut references = pod.owner_references().to_vec();
                references.push(pods::controller_reference(owner));
                if let Some(adopted) = patch_owners(&api, &pod, serde_json::to_value(references)?)
                    .await
                    .with_context(|| format!("adopting pod {}", pod.name_any()))?
                {
                    claimed.push(Arc::new(adopted));
                }
            }
            _ => {}
        }
    }
    Ok(claimed)
}

/// Replaces a pod's owner references if it has not changed since it was cached; a pod that
/// changed or went meanwhile is left to the next reconcile, which sees its new version.
async fn patch_owners(
    api: &Api<Pod>,
    pod: &Pod,
    references: serde_json::Value,
) -> anyhow::Result<Option<Pod>> {
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": references,
        "resourceVersion": pod.resource_version(),
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(patched) => Ok(Some(patched)),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
