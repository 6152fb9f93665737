//! Where a guest's outgoing HTTP requests (`wasi:http/outgoing-handler`) may go.
//!
//! A pod reaches Services by name, as kube-dns and kube-proxy let containers do: a request to
//! `http://NAME.NAMESPACE.svc/…` (or `.svc.cluster.local`), or to `http://NAME/…` for a
//! Service in the pod's own namespace, is sent to the cluster's gateway with that Service's
//! name as its `Host`, and the gateway balances it over the Service's ready endpoints.
//!
//! Any other host is refused (the guest sees `HTTP-request-denied`) unless the pod allows it
//! with the annotation `flotilla.dev/allowed-outbound-hosts`: a comma-separated list of
//! `host` or `host:port` entries, or `*` for any host. Nothing else of the network is
//! reachable: the sandbox grants no sockets.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The pod annotation listing the hosts its guests may reach directly.
pub const ALLOWED_HOSTS_ANNOTATION: &str = "flotilla.dev/allowed-outbound-hosts";

/// What a pod's guests may reach over HTTP. The default reaches nothing at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// The gateway's address (`host:port`) that requests to Services are sent to; `None`
    /// when the node knows of no gateway, and Services are then unreachable.
    pub gateway: Option<String>,
    /// The pod's namespace: a bare `http://NAME/` means the Service NAME in it.
    pub namespace: String,
    /// Hosts (`host` or `host:port`) the guest may reach directly; `*` allows any.
    pub allowed_hosts: Vec<String>,
}

impl OutboundPolicy {
    /// Parses the value of [`ALLOWED_HOSTS_ANNOTATION`].
    pub fn parse_allowed_hosts(value: &str) -> Vec<String> {
        value
            .split(',')
            .map(|host| host.trim().to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect()
    }

    /// Decides where a request goes: rewritten to the gateway for a Service, left alone for
    /// an allowed host, refused otherwise.
    fn route(&self, request: &mut http::Request<WasiBody>) -> Result<(), Error> {
        let Some(authority) = request.uri().authority().cloned() else {
            return Err(Error::HttpRequestUriInvalid);
        };
        let host = authority.host().to_ascii_lowercase();
        if let Some(service) = self.service_host(&host) {
            let Some(gateway) = &self.gateway else {
                tracing::warn!(%host, "refused a request to a Service: this node knows no gateway");
                return Err(Error::DestinationUnavailable);
            };
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let uri = format!("http://{gateway}{path}")
                .parse()
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            *request.uri_mut() = uri;
            // The port picks the Service's port at the gateway, as a client's port picks a
            // Service port in Kubernetes.
            let host = match authority.port_u16() {
                Some(port) => format!("{service}:{port}"),
                None => service,
            };
            let host_header =
                http::HeaderValue::from_str(&host).map_err(|_| Error::HttpRequestUriInvalid)?;
            request
                .headers_mut()
                .insert(http::header::HOST, host_header);
            return Ok(());
        }
        let with_port = match authority.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let allowed = self
            .allowed_hosts
            .iter()
            .any(|entry| entry == "*" || *entry == host || *entry == with_port);
        if allowed {
            Ok(())
        } else {
            tracing::warn!(
                host = %with_port,
                "refused an outgoing request: add the host to the pod's \
                 {ALLOWED_HOSTS_ANNOTATION} annotation to allow it"
            );
            Err(Error::HttpRequestDenied)
        }
    }

    /// `NAME.NAMESPACE.svc` for a host that names a Service, `None` for any other host.
    fn service_host(&self, host: &str) -> Option<String> {
        let name = host
            .strip_suffix(".svc.cluster.local")
            .or_else(|| host.strip_suffix(".svc"));
        match name {
            Some(name) => {
                let (service, namespace) = name.split_once('.')?;
                (!service.is_empty() && !namespace.is_empty() && !namespace.contains('.'))
                    .then(|| format!("{service}.{namespace}.svc"))
            }
            // A bare name, as a container resolves it through its namespace's search domain.
            None if !host.contains('.') && host != "localhost" && !self.namespace.is_empty() => {
                host.parse::<std::net::Ipv6Addr>()
                    .is_err()
                    .then(|| format!("{host}.{}.svc", self.namespace))
            }
            None => None,
        }
    }
}

/// The `wasi:http` hooks of one guest: sends what its [`OutboundPolicy`] allows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outbound {
    pub(crate) policy: Arc<OutboundPolicy>,
}

type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        _ = fut;
        let routed = self.policy.route(&mut request);
        Box::new(async move {
            routed?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(|body| body.boxed_unsync()),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OutboundPolicy {
        OutboundPolicy {
            gateway: Some("127.0.0.1:8080".into()),
            namespace: "shop".into(),
            allowed_hosts: OutboundPolicy::parse_allowed_hosts(" api.example.com, 10.0.0.1:9000 "),
        }
    }

    fn request(uri: &str) -> http::Request<WasiBody> {
        http::Request::builder()
            .uri(uri)
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    #[test]
    fn services_go_to_the_gateway_with_their_name_as_host() {
        for (uri, host) in [
            ("http://cart.shop.svc/items?x=1", "cart.shop.svc"),
            (
                "http://cart.other.svc.cluster.local/items?x=1",
                "cart.other.svc",
            ),
            ("http://cart/items?x=1", "cart.shop.svc"),
            ("http://cart:8081/items?x=1", "cart.shop.svc:8081"),
        ] {
            let mut request = request(uri);
            policy().route(&mut request).unwrap();
            assert_eq!(request.uri(), "http://127.0.0.1:8080/items?x=1", "{uri}");
            assert_eq!(request.headers()[http::header::HOST], host, "{uri}");
        }
    }

    #[test]
    fn other_hosts_need_to_be_allowed() {
        let allowed = ["https://api.example.com/", "http://10.0.0.1:9000/x"];
        for uri in allowed {
            let mut request = request(uri);
            policy().route(&mut request).unwrap();
            assert_eq!(request.uri(), uri, "an allowed request is left alone");
        }
        for uri in [
            "http://example.org/",
            "http://10.0.0.1/",
            "http://localhost:6443/",
            "http://a.b.c.svc/",
        ] {
            assert!(
                matches!(
                    policy().route(&mut request(uri)),
                    Err(Error::HttpRequestDenied)
                ),
                "{uri} must be refused"
            );
        }
        let mut anything = policy();
        anything.allowed_hosts = vec!["*".into()];
        anything.route(&mut request("http://example.org/")).unwrap();
    }

    #[test]
    fn without_a_gateway_services_are_unreachable() {
        let policy = OutboundPolicy {
            gateway: None,
            ..policy()
        };
        assert!(matches!(
            policy.route(&mut request("http://cart.shop.svc/")),
            Err(Error::DestinationUnavailable)
        ));
    }
}
