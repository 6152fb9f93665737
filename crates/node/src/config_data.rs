//! The data of the ConfigMaps and Secrets a pod refers to, for its environment and volumes:
//! both kinds read as one map of key → bytes, so env vars and volume files treat them alike.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// Which kind of object holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    /// How Kubernetes names the kind in messages (`configmap "x" not found`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

/// Key → value of one ConfigMap (`data` and `binaryData`) or Secret (`data`, decoded).
pub type Data = BTreeMap<String, Vec<u8>>;

/// The object's data, `None` if it does not exist. An error is the apiserver's, as text for
/// the pod's status.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<Data>, String> {
    let failed = |e: kube::Error| format!("reading {} {namespace}/{name}: {e}", kind.noun());
    match kind {
        Kind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let Some(config_map) = api.get_opt(name).await.map_err(failed)? else {
                return Ok(None);
            };
            let mut data: Data = config_map
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, value.into_bytes()))
                .collect();
            data.extend(
                config_map
                    .binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| (key, value.0)),
            );
            Ok(Some(data))
        }
        Kind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let Some(secret) = api.get_opt(name).await.map_err(failed)? else {
                return Ok(None);
            };
            Ok(Some(
                secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| (key, value.0))
                    .collect(),
            ))
        }
    }
}

/// `configmap "NAME" not found`, Kubernetes' wording.
pub fn not_found(kind: Kind, name: &str) -> String {
    format!("{} \"{name}\" not found", kind.noun())
}
