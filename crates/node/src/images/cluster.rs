//! Modules pushed to the cluster: the `Module` object (flotilla.dev/v1) in the pod's
//! namespace says which digest a tag names, and the apiserver serves that digest's bytes at
//! `…/modules/{name}/blobs/sha256:{hex}`, both through the node's own API client (in process
//! in `flotilla up`, over HTTP for `flotilla node`).

use super::PullError;
use http_body_util::BodyExt as _;
use kube::api::{Api, ApiResource, DynamicObject};

#[derive(Clone)]
pub struct ClusterModules {
    client: kube::Client,
}

fn modules_resource() -> ApiResource {
    ApiResource {
        group: "flotilla.dev".into(),
        version: "v1".into(),
        api_version: "flotilla.dev/v1".into(),
        kind: "Module".into(),
        plural: "modules".into(),
    }
}

impl ClusterModules {
    pub fn new(client: kube::Client) -> Self {
        ClusterModules { client }
    }

    /// The digest `tag` of module `name` names now.
    pub async fn resolve_tag(
        &self,
        namespace: &str,
        name: &str,
        tag: &str,
    ) -> Result<String, PullError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &modules_resource());
        let module = api
            .get_opt(name)
            .await
            .map_err(|e| PullError::Download {
                url: format!("module {namespace}/{name}"),
                reason: format!("the apiserver did not answer: {e}"),
            })?
            .ok_or_else(|| PullError::NoSuchModule {
                name: name.into(),
                namespace: namespace.into(),
                tag: tag.into(),
            })?;
        let tags = module.data["spec"]["tags"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = tags
            .iter()
            .find(|t| t["name"] == tag)
            .and_then(|t| t["digest"].as_str());
        match found {
            Some(digest) => Ok(digest.to_string()),
            None => Err(PullError::NoSuchTag {
                name: name.into(),
                namespace: namespace.into(),
                tag: tag.into(),
                tags: {
                    let names: Vec<&str> = tags.iter().filter_map(|t| t["name"].as_str()).collect();
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                },
            }),
        }
    }

    /// The bytes of one blob of module `name`, at most `max` of them. The caller checks them
    /// against the digest.
    pub async fn download(
        &self,
        namespace: &str,
        name: &str,
        digest: &str,
        max: u64,
    ) -> Result<Vec<u8>, PullError> {
        let path =
            format!("/apis/flotilla.dev/v1/namespaces/{namespace}/modules/{name}/blobs/{digest}");
        let failed = |reason: String| PullError::Download {
            url: format!("module {namespace}/{name}@{digest}"),
            reason,
        };
        let request = hyper::Request::get(&path)
            .body(kube::client::Body::empty())
            .map_err(|e| failed(e.to_string()))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| failed(format!("the apiserver did not answer: {e}")))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| failed(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                bytes.extend_from_slice(data);
                if bytes.len() as u64 > max {
                    return Err(PullError::TooLarge {
                        path: format!("module {namespace}/{name}@{digest}"),
                        size: bytes.len() as u64,
                        max,
                    });
                }
            }
        }
        if !status.is_success() {
            // A Kubernetes Status: its message says what is wrong.
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|s| s["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("the apiserver answered {status}"));
            return Err(failed(message));
        }
        Ok(bytes)
    }
}
