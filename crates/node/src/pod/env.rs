//! A container's environment, exactly as its spec declares it: literal values, the pod's own
//! fields (`fieldRef`), keys of ConfigMaps and Secrets (`configMapKeyRef`, `secretKeyRef`) and
//! whole ones (`envFrom`). Nothing comes from the host.

use crate::config_data::{self, Kind};
use k8s_openapi::api::core::v1::{Container, Pod, Service};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

/// The variables Kubernetes gives a container for each Service in its namespace:
/// `{NAME}_SERVICE_HOST`, `{NAME}_SERVICE_PORT` and `{NAME}_SERVICE_PORT_{PORT NAME}`, NAME in
/// upper case with `-` as `_`. The host is the Service's name, `NAME.NAMESPACE.svc`, which a
/// guest's outgoing HTTP requests reach through the gateway (a Wasm pod has no cluster IPs
/// to dial).
fn service_links(services: &Store<Service>, namespace: &str) -> Vec<(String, String)> {
    let mut found: Vec<_> = services
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .collect();
    found.sort_by_key(|s| s.name_any());
    let mut env = Vec::new();
    for service in found {
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = service.name_any().to_ascii_uppercase().replace('-', "_");
        env.push((
            format!("{prefix}_SERVICE_HOST"),
            format!("{}.{namespace}.svc", service.name_any()),
        ));
        env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in &ports {
            if let Some(name) = &port.name {
                let name = name.to_ascii_uppercase().replace('-', "_");
                env.push((
                    format!("{prefix}_SERVICE_PORT_{name}"),
                    port.port.to_string(),
                ));
            }
        }
    }
    env
}

/// Resolves the environment; an error names what is missing, for the container's
/// `CreateContainerConfigError`. The variables of the Services in the pod's namespace come
/// first (unless `enableServiceLinks` is false), so the container's own override them.
pub async fn resolve(
    client: &Client,
    services: &Store<Service>,
    pod: &Pod,
    container: &Container,
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.namespace().unwrap_or_default();
    let mut env = Vec::new();
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links);
    if links != Some(false) {
        env.extend(service_links(services, &namespace));
    }
    for source in container.env_from.iter().flatten() {
        let (kind, name, optional) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => (Kind::ConfigMap, &r.name, r.optional),
            (None, Some(r)) => (Kind::Secret, &r.name, r.optional),
            (None, None) => continue,
        };
        match config_data::fetch(client, &namespace, kind, name).await? {
            Some(data) => {
                let prefix = source.prefix.clone().unwrap_or_default();
                env.extend(
                    data.into_iter()
                        .map(|(key, value)| (format!("{prefix}{key}"), text(value))),
                );
            }
            None if optional.unwrap_or(false) => {}
            None => return Err(config_data::not_found(kind, name)),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                let key_ref = match (&from.config_map_key_ref, &from.secret_key_ref) {
                    (Some(r), _) => Some((Kind::ConfigMap, &r.name, &r.key, r.optional)),
                    (None, Some(r)) => Some((Kind::Secret, &r.name, &r.key, r.optional)),
                    (None, None) => None,
                };
                if let Some(field) = &from.field_ref {
                    pod_field(pod, &field.field_path)
                        .ok_or_else(|| unsupported_field(&var.name, &field.field_path))?
                } else if let Some((kind, name, key, optional)) = key_ref {
                    let data = config_data::fetch(client, &namespace, kind, name).await?;
                    match data.and_then(|mut data| data.remove(key)) {
                        Some(value) => text(value),
                        None if optional.unwrap_or(false) => continue,
                        None => {
                            let kind = match kind {
                                Kind::ConfigMap => "ConfigMap",
                                Kind::Secret => "Secret",
                            };
                            return Err(format!(
                                "couldn't find key {key} in {kind} {namespace}/{name}"
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "env {}: only value, fieldRef, configMapKeyRef and secretKeyRef are supported",
                        var.name
                    ));
                }
            }
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// Env values are text; bytes that are not UTF-8 are replaced rather than refused.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The downward API fields a pod can read through `fieldRef`.
fn pod_field(pod: &Pod, path: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.podIP" => "127.0.0.1".into(),
        _ => {
            let label = path
                .strip_prefix("metadata.labels['")
                .map(|rest| (rest, pod.labels()));
            let annotation = path
                .strip_prefix("metadata.annotations['")
                .map(|rest| (rest, pod.annotations()));
            let (rest, map) = label.or(annotation)?;
            let key = rest.strip_suffix("']")?;
            map.get(key).cloned().unwrap_or_default()
        }
    })
}

fn unsupported_field(var: &str, path: &str) -> String {
    format!(
        "env {var}: field {path:?} is not supported; use metadata.name, metadata.namespace, \
         metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, \
         spec.serviceAccountName, status.hostIP or status.podIP"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_fields_include_labels_and_annotations() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                "annotations": {"team": "a"}},
            "spec": {"nodeName": "n1", "containers": []}}))
        .unwrap();
        assert_eq!(pod_field(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(pod_field(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(
            pod_field(&pod, "metadata.annotations['team']").unwrap(),
            "a"
        );
        assert_eq!(pod_field(&pod, "spec.nodeName").unwrap(), "n1");
        assert_eq!(pod_field(&pod, "metadata.labels['missing']").unwrap(), "");
        assert!(pod_field(&pod, "status.phase").is_none());
    }
}
