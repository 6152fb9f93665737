//! Creating an owner's pods from its template the way every pod-owning controller must:
//! named up front and recorded as expectations, in slow-start batches, with an event per pod
//! and a FailedCreate warning when the API refuses one (Kubernetes' `PodControl` and
//! `slowStartBatch`). Shared by the ReplicaSet and Job controllers.

use crate::expectations::Expectations;
use crate::informer::ObjectKey;
use crate::pods;
use anyhow::Context as _;
use flotilla_client::events::{EventType, Recorder};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

/// Creates `count` pods from `template` for `owner` in batches of 1, 2, 4, …, stopping at
/// the first batch with a failure, so a template the API rejects costs one request rather
/// than hundreds. Returns how many were created.
pub async fn create_from_template<K>(
    client: &Client,
    recorder: &Recorder,
    expectations: &Expectations,
    owner: &K,
    key: &ObjectKey,
    template: &PodTemplateSpec,
    count: usize,
) -> anyhow::Result<usize>
where
    K: Resource<DynamicType = ()>,
{
    let api: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let names: Vec<String> = (0..count)
        .map(|_| pods::generated_name(&owner.name_any()))
        .collect();
    expectations.expect_creations(key, names.iter().cloned());
    let reference = pods::controller_reference(owner);
    let mut created_total = 0;
    let mut remaining = names.as_slice();
    let mut batch_size = 1;
    while !remaining.is_empty() {
        let (batch, rest) = remaining.split_at(batch_size.min(remaining.len()));
        remaining = rest;
        batch_size *= 2;
        let results = join_all(batch.iter().map(|name| {
            let pod =
                pods::from_template(template, &key.namespace, name.clone(), reference.clone());
            let api = api.clone();
            async move { (name, api.create(&PostParams::default(), &pod).await) }
        }))
        .await;
        let mut failure = None;
        let mut created = Vec::new();
        for (name, result) in results {
            match result {
                Ok(_) => created.push(name),
                Err(error) => {
                    expectations.creation_failed(key, name);
                    failure = Some(error);
                }
            }
        }
        created_total += created.len();
        join_all(created.iter().map(|name| {
            recorder.record(
                owner,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            )
        }))
        .await;
        if let Some(error) = failure {
            for name in remaining {
                expectations.creation_failed(key, name);
            }
            let message = match &error {
                kube::Error::Api(status) => status.message.clone(),
                other => other.to_string(),
            };
            recorder
                .record(
                    owner,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating: {message}"),
                )
                .await;
            return Err(error).context("creating pods");
        }
    }
    Ok(created_total)
}
