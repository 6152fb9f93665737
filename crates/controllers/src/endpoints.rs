//! The endpoints controller: for every Service with a selector, keeps an `Endpoints` object
//! and an `EndpointSlice` of the same name listing the pods the selector picks — ready pods
//! as addresses the gateway routes to, pods not ready yet (or terminating) as
//! `notReadyAddresses` / endpoints with `ready: false` — each with its node and a reference
//! to the pod, and the Service's ports resolved to the pods' container ports.
//!
//! A Service without a selector is left alone: its Endpoints are the user's to write, as in
//! Kubernetes. When a Service goes, so do its Endpoints and EndpointSlice.
//!
//! A pod's address is its `status.podIP` (a Wasm pod shares its node's address, as a
//! `hostNetwork` pod does); the gateway tells pods apart by `targetRef` and `nodeName`.

use crate::informer::{Informer, ObjectKey};
use crate::queue::WorkQueue;
use crate::worker::{Action, run_workers};
use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;

const COMPONENT: &str = "endpoint-controller";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

pub struct EndpointsController {
    client: Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
    slices: Arc<Informer<EndpointSlice>>,
    queue: Arc<WorkQueue<ObjectKey>>,
}

impl EndpointsController {
    pub fn new(
        client: Client,
        services: Arc<Informer<Service>>,
        pods: Arc<Informer<Pod>>,
        endpoints: Arc<Informer<Endpoints>>,
        slices: Arc<Informer<EndpointSlice>>,
    ) -> Arc<Self> {
        let queue = WorkQueue::new();
        services.enqueue_changes(&queue);
        pods.enqueue_related(&queue, {
            let services = services.clone();
            move |pod| services_of_pod(&services, pod)
        });
        // Someone else changing or deleting what this controller writes: write it again.
        endpoints.enqueue_changes(&queue);
        slices.enqueue_changes(&queue);
        Arc::new(EndpointsController {
            client,
            services,
            pods,
            endpoints,
            slices,
            queue,
        })
    }

    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.queue
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.services.synced().await;
        self.pods.synced().await;
        self.endpoints.synced().await;
        self.slices.synced().await;
        tracing::info!(controller = COMPONENT, "started");
        let controller = self.clone();
        run_workers(COMPONENT, self.queue.clone(), workers, move |key| {
            let controller = controller.clone();
            async move { controller.reconcile(&key).await }
        })
        .await;
    }

    async fn reconcile(&self, key: &ObjectKey) -> anyhow::Result<Action> {
        let endpoints_api: Api<Endpoints> = Api::namespaced(self.client.clone(), &key.namespace);
        let slices_api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        let service = self.services.get(Some(&key.namespace), &key.name);
        let selector = service
            .as_ref()
            .and_then(|s| s.spec.as_ref()?.selector.clone())
            .filter(|selector| !selector.is_empty());
        let Some(selector) = selector else {
            // No Service, or one whose endpoints are managed by hand: remove only what this
            // controller made (a hand-written Endpoints object stays).
            if service.is_none()
                && self
                    .endpoints
                    .get(Some(&key.namespace), &key.name)
                    .is_some()
            {
                delete_if_present(&endpoints_api, &key.name).await?;
            }
            if let Some(slice) = self.slices.get(Some(&key.namespace), &key.name)
                && slice.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
            {
                delete_if_present(&slices_api, &key.name).await?;
            }
            return Ok(Action::AwaitChange);
        };
        let service = service.expect("a selector comes from a Service");
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        let mut pods: Vec<Arc<Pod>> = self
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|pod| pod.namespace().as_deref() == Some(key.namespace.as_str()))
            .filter(|pod| selects(&selector, pod.labels()))
            .filter(|pod| is_endpoint(pod))
            .collect();
        pods.sort_by_key(|pod| pod.name_any());

        let desired_endpoints = endpoints_for(&service, &ports, &pods);
        let current = self.endpoints.get(Some(&key.namespace), &key.name);
        if current.as_deref().map(|c| &c.subsets) != Some(&desired_endpoints.subsets) {
            write(&endpoints_api, current.as_deref(), desired_endpoints)
                .await
                .with_context(|| format!("writing the Endpoints of {key}"))?;
        }
        let desired_slice = slice_for(&service, &ports, &pods);
        let current = self.slices.get(Some(&key.namespace), &key.name);
        let same = current.as_deref().is_some_and(|c| {
            c.endpoints == desired_slice.endpoints
                && c.ports == desired_slice.ports
                && c.labels() == desired_slice.labels()
        });
        if !same {
            write(&slices_api, current.as_deref(), desired_slice)
                .await
                .with_context(|| format!("writing the EndpointSlice of {key}"))?;
        }
        Ok(Action::AwaitChange)
    }
}

/// The Services in the pod's namespace whose selector picks it.
fn services_of_pod(services: &Informer<Service>, pod: &Pod) -> Vec<ObjectKey> {
    let namespace = pod.namespace().unwrap_or_default();
    services
        .store()
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.selector.as_ref())
                .is_some_and(|selector| !selector.is_empty() && selects(selector, pod.labels()))
        })
        .map(|s| ObjectKey::of(s.as_ref()))
        .collect()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A pod is an endpoint, ready or not, once it is on a node and until it has finished.
fn is_endpoint(pod: &Pod) -> bool {
    let placed = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    placed && !crate::pods::is_finished(pod)
}

/// Ready to take traffic: the Ready condition, and not being deleted.
fn is_ready(pod: &Pod) -> bool {
    crate::pods::is_ready(pod) && pod.metadata.deletion_timestamp.is_none()
}

fn address_of(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.pod_ip.clone().or_else(|| s.host_ip.clone()))
        .unwrap_or_else(|| "127.0.0.1".into())
}

fn reference_to(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        resource_version: pod.resource_version(),
        ..Default::default()
    }
}

/// The port a Service port reaches on this pod: its `targetPort` number, or the number of
/// the container port of that name; `None` when the pod declares no such port.
fn target_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => Some(*number),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

fn endpoints_for(service: &Service, ports: &[ServicePort], pods: &[Arc<Pod>]) -> Endpoints {
    // Pods that resolve the Service's ports to the same numbers share a subset.
    let mut subsets: BTreeMap<Vec<(String, i32)>, EndpointSubset> = BTreeMap::new();
    for pod in pods {
        let resolved: Option<Vec<(String, i32)>> = ports
            .iter()
            .map(|p| Some((p.name.clone().unwrap_or_default(), target_port(p, pod)?)))
            .collect();
        let Some(resolved) = resolved else { continue };
        let subset = subsets
            .entry(resolved.clone())
            .or_insert_with(|| EndpointSubset {
                ports: Some(
                    resolved
                        .iter()
                        .map(|(name, port)| EndpointPort {
                            name: (!name.is_empty()).then(|| name.clone()),
                            port: *port,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            });
        let address = EndpointAddress {
            ip: address_of(pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(reference_to(pod)),
            ..Default::default()
        };
        let list = if is_ready(pod) {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(address);
    }
    let subsets: Vec<EndpointSubset> = subsets.into_values().collect();
    Endpoints {
        metadata: owned_meta(service, BTreeMap::new()),
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

fn slice_for(service: &Service, ports: &[ServicePort], pods: &[Arc<Pod>]) -> EndpointSlice {
    let endpoints: Vec<Endpoint> = pods
        .iter()
        .map(|pod| {
            let ready = is_ready(pod);
            let terminating = pod.metadata.deletion_timestamp.is_some();
            Endpoint {
                addresses: vec![address_of(pod)],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(crate::pods::is_ready(pod)),
                    terminating: Some(terminating),
                }),
                node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(reference_to(pod)),
                ..Default::default()
            }
        })
        .collect();
    let slice_ports = ports
        .iter()
        .map(|p| SlicePort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: pods.first().and_then(|pod| target_port(p, pod)),
            protocol: Some("TCP".into()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    let labels = BTreeMap::from([
        (SERVICE_NAME_LABEL.to_string(), service.name_any()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ]);
    let mut metadata = owned_meta(service, labels);
    metadata.owner_references = Some(vec![crate::pods::controller_reference(service)]);
    EndpointSlice {
        metadata,
        address_type: "IPv4".into(),
        endpoints: (!endpoints.is_empty()).then_some(endpoints),
        ports: Some(slice_ports),
    }
}

fn owned_meta(service: &Service, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(service.name_any()),
        namespace: service.namespace(),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

/// Creates `desired`, or replaces `current` with it (keeping its resourceVersion, so a
/// concurrent change makes this fail and the key is retried).
async fn write<K>(api: &Api<K>, current: Option<&K>, mut desired: K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    match current {
        Some(current) => {
            desired.meta_mut().resource_version = current.meta().resource_version.clone();
            match api.replace(&name, &PostParams::default(), &desired).await {
                Ok(_) => {}
                // Written since the cache saw it: the watch brings the newer version, which
                // puts the key on the queue again.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    tracing::debug!(%name, "changed meanwhile; reconciling again on its event");
                }
                Err(error) => return Err(error.into()),
            }
        }
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {}
            // Created meanwhile (the cache lags): the watch brings it and the key is retried.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                anyhow::bail!("{name} exists already; will update it once the cache has it")
            }
            Err(error) => return Err(error.into()),
        },
    }
    Ok(())
}

async fn delete_if_present<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
