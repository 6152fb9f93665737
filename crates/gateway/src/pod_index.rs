//! The pods of each Function, kept current by the pod informer's change handler, so that a
//! request finds its Function's instances without scanning every Function pod in the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use flotilla_api::function::FUNCTION_LABEL;
use flotilla_controllers::informer::{Change, Informer, ObjectKey};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;

/// Function → its pods by name.
type Index = HashMap<ObjectKey, BTreeMap<String, Arc<Pod>>>;

#[derive(Default)]
pub(crate) struct PodIndex {
    pods: RwLock<Index>,
}

impl PodIndex {
    /// An index that follows `informer` (which watches Function pods) from now on.
    pub(crate) fn follow(informer: &Arc<Informer<Pod>>) -> Arc<PodIndex> {
        let index = Arc::new(PodIndex::default());
        // Weak: the informer owns its handlers, which must not own it back.
        let source = Arc::downgrade(informer);
        let following = index.clone();
        informer.on_change(move |change| {
            let mut pods = following.pods.write().expect("pod index poisoned");
            match change {
                Change::Applied { old, new } => {
                    if let Some(old) = old {
                        remove(&mut pods, old);
                    }
                    insert(&mut pods, Arc::new((*new).clone()));
                }
                Change::Deleted(old) => remove(&mut pods, old),
                Change::Resynced => {
                    pods.clear();
                    if let Some(informer) = source.upgrade() {
                        for pod in informer.store().state() {
                            insert(&mut pods, pod);
                        }
                    }
                }
            }
        });
        index
    }

    /// The Function's pods, in name order.
    pub(crate) fn pods(&self, namespace: &str, name: &str) -> Vec<Arc<Pod>> {
        let pods = self.pods.read().expect("pod index poisoned");
        pods.get(&ObjectKey::new(namespace, name))
            .map(|by_name| by_name.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn function_of(pod: &Pod) -> Option<ObjectKey> {
    let function = pod.labels().get(FUNCTION_LABEL)?;
    Some(ObjectKey::new(
        pod.namespace().unwrap_or_default(),
        function,
    ))
}

fn insert(index: &mut Index, pod: Arc<Pod>) {
    if let Some(function) = function_of(&pod) {
        index
            .entry(function)
            .or_default()
            .insert(pod.name_any(), pod);
    }
}

fn remove(index: &mut Index, pod: &Pod) {
    let Some(function) = function_of(pod) else {
        return;
    };
    if let Some(by_name) = index.get_mut(&function) {
        by_name.remove(&pod.name_any());
        if by_name.is_empty() {
            index.remove(&function);
        }
    }
}
