//! Sending a request to one pod: in process when its node runs in this process, otherwise
//! over HTTP to its node's endpoint (`/http/{namespace}/{pod}/…`, see
//! `flotilla_node::serving`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_node::serving::{ERROR_HEADER, HttpPods, TARGET_PORT_HEADER};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::cache::Cache;

/// One pod that can serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backend {
    pub(crate) node: String,
    pub(crate) namespace: String,
    pub(crate) pod: String,
    /// The container port the request is for, when the route names one.
    pub(crate) port: Option<u16>,
}

/// Why a request did not reach a handler. Such a request may go to another backend.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreachable {
    #[error("pod {0} is not served by its node any more")]
    Gone(String),
    #[error("node {node} has no reachable endpoint: {why}")]
    Node { node: String, why: String },
}

pub(crate) struct Upstreams {
    local: HashMap<String, HttpPods>,
    cache: Arc<Cache>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Upstreams {
    pub(crate) fn new(local: HashMap<String, HttpPods>, cache: Arc<Cache>) -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Upstreams {
            local,
            cache,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Whether the backend's pod already serves on its node: known at once for nodes in
    /// this process, which lets a cold start skip waiting for the pod's Ready status to
    /// travel through the API.
    pub(crate) fn serving_locally(&self, node: &str, namespace: &str, pod: &str) -> bool {
        self.local
            .get(node)
            .is_some_and(|pods| pods.is_serving(namespace, pod))
    }

    /// Watches which pods serve on the nodes in this process: its `changed` completes at
    /// the next change after this call.
    pub(crate) fn watch_serving(&self) -> ServingWatch {
        ServingWatch {
            receivers: self.local.values().map(HttpPods::watch).collect(),
        }
    }

    /// Has a node in this process answer `request` with a stand-in for `pod`, which is about
    /// to be created (see `HttpPods::serve_stand_in`); `None` without such a node.
    pub(crate) async fn stand_in(
        &self,
        template: &str,
        pod: impl Fn() -> k8s_openapi::api::core::v1::Pod,
        request: http::Request<Full<Bytes>>,
    ) -> Option<Result<Response, flotilla_node::serving::ServeError>> {
        let (_, node) = self.local.iter().min_by_key(|(name, _)| name.as_str())?;
        Some(node.serve_stand_in(template, pod, request).await)
    }

    /// Sends `request` (its URI is the path the handler sees) to `backend`.
    pub(crate) async fn send(
        &self,
        backend: &Backend,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Response, Unreachable> {
        if let Some(pods) = self.local.get(&backend.node) {
            return match pods
                .serve(&backend.namespace, &backend.pod, backend.port, request)
                .await
            {
                Ok(response) => Ok(response),
                Err(flotilla_node::serving::ServeError::NoSuchPod(pod)) => {
                    Err(Unreachable::Gone(pod))
                }
                Err(error) => Ok(error.into_response()),
            };
        }
        let base = self.node_address(&backend.node)?;
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = format!(
            "http://{base}/http/{}/{}{path}",
            backend.namespace, backend.pod
        );
        parts.uri = uri.parse().map_err(|e| Unreachable::Node {
            node: backend.node.clone(),
            why: format!("bad address {uri}: {e}"),
        })?;
        if let Some(port) = backend.port {
            parts
                .headers
                .insert(TARGET_PORT_HEADER, http::HeaderValue::from(port));
        }
        // Sending again is safe when the connection was never made, or when the method is
        // idempotent; a POST that may have reached its handler is not sent twice.
        let idempotent = parts.method.is_idempotent();
        let response = match self
            .client
            .request(http::Request::from_parts(parts, body))
            .await
        {
            Ok(response) => response,
            Err(error) if error.is_connect() || idempotent => {
                return Err(Unreachable::Node {
                    node: backend.node.clone(),
                    why: error.to_string(),
                });
            }
            Err(error) => {
                return Ok(crate::proxy::error(
                    http::StatusCode::BAD_GATEWAY,
                    format!(
                        "the connection to pod {}/{} on node {} failed mid-request ({error}); \
                         not retried, as the request may have been handled",
                        backend.namespace, backend.pod, backend.node
                    ),
                ));
            }
        };
        let gone = response
            .headers()
            .get(ERROR_HEADER)
            .is_some_and(|v| v == "no-such-pod");
        if gone {
            return Err(Unreachable::Gone(format!(
                "{}/{}",
                backend.namespace, backend.pod
            )));
        }
        Ok(response.map(Body::new))
    }

    /// `host:port` of a node's endpoint, from its Node status.
    fn node_address(&self, node: &str) -> Result<String, Unreachable> {
        let unreachable = |why: &str| Unreachable::Node {
            node: node.to_string(),
            why: why.to_string(),
        };
        let node_object = self
            .cache
            .nodes
            .get(None, node)
            .ok_or_else(|| unreachable("no such Node"))?;
        let status = node_object
            .status
            .as_ref()
            .ok_or_else(|| unreachable("the Node has no status yet"))?;
        let port = status
            .daemon_endpoints
            .as_ref()
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .map(|e| e.port)
            .ok_or_else(|| unreachable("the Node publishes no endpoint port"))?;
        let address = (status.addresses.iter().flatten())
            .find(|a| a.type_ == "InternalIP")
            .or_else(|| status.addresses.iter().flatten().next())
            .map(|a| a.address.clone())
            .ok_or_else(|| unreachable("the Node publishes no address"))?;
        Ok(if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        })
    }
}

/// Changes of which pods serve on the nodes in this process.
pub(crate) struct ServingWatch {
    receivers: Vec<tokio::sync::watch::Receiver<u64>>,
}

impl ServingWatch {
    /// Completes at the next change on any local node; never, without local nodes.
    pub(crate) async fn changed(&mut self) {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        let changes = self
            .receivers
            .iter_mut()
            .map(|receiver| Box::pin(receiver.changed()));
        let _ = futures::future::select_all(changes).await;
    }
}
