//! Recording core/v1 Events — what `kubectl describe` and `kubectl get events` show of each
//! decision a component makes (Scheduled, Pulled, Started, …).

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

/// Records events on behalf of one component (e.g. `default-scheduler`, `kubelet`).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
}

/// `Normal` or `Warning`, as Kubernetes classifies events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl Recorder {
    pub fn new(client: Client, component: impl Into<String>, host: Option<String>) -> Self {
        Recorder {
            client,
            component: component.into(),
            host,
        }
    }

    /// Records an event about `object`. Failures are logged, never returned: an event that
    /// cannot be written must not stop the work it describes.
    pub async fn record<K>(&self, object: &K, kind: EventType, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let namespace = object.namespace().unwrap_or_else(|| "default".into());
        let now = Time(jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", object.name_any())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: Some(object.name_any()),
                namespace: object.namespace(),
                uid: object.uid(),
                resource_version: object.resource_version(),
                ..Default::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(format!("{kind:?}")),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: self.host.clone(),
            ..Default::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(%error, reason, "could not record an event");
        }
    }
}
