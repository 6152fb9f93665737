//! From a Service (or an Ingress rule) to the pods that serve it: the Service's port, then the
//! ready addresses of its Endpoints for that port.

use http::StatusCode;
use k8s_openapi::api::networking::v1::IngressBackend;

use crate::cache::Cache;
use crate::proxy::{Refusal, refuse};
use crate::upstream::Backend;

/// Which of a Service's ports a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortRef {
    First,
    Number(u16),
    Name(String),
}

/// The ready pods behind a Service's port, or the error answer when there is no such Service
/// or port.
pub(crate) fn backends(
    cache: &Cache,
    namespace: &str,
    name: &str,
    port: &PortRef,
) -> Result<Vec<Backend>, Refusal> {
    let service = cache.services.get(Some(namespace), name).ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            format!("there is no Service {name} in namespace {namespace}"),
        )
    })?;
    let ports = (service.spec.as_ref())
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let service_port = match port {
        PortRef::First => ports.first(),
        PortRef::Number(number) => ports.iter().find(|p| p.port == i32::from(*number)),
        PortRef::Name(wanted) => ports.iter().find(|p| p.name.as_deref() == Some(wanted)),
    }
    .ok_or_else(|| {
        let have: Vec<String> = ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{} ({n})", p.port),
                None => p.port.to_string(),
            })
            .collect();
        refuse(
            StatusCode::NOT_FOUND,
            format!(
                "Service {name} in namespace {namespace} has no port {port:?}; it has: {}",
                have.join(", ")
            ),
        )
    })?;
    let port_name = service_port.name.clone().unwrap_or_default();
    let Some(endpoints) = cache.endpoints.get(Some(namespace), name) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let target_port = (subset.ports.iter().flatten())
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| u16::try_from(p.port).ok());
        let Some(target_port) = target_port else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            let (Some(node), Some(pod)) = (
                address.node_name.clone(),
                address.target_ref.as_ref().and_then(|r| r.name.clone()),
            ) else {
                continue;
            };
            found.push(Backend {
                node,
                namespace: namespace.to_string(),
                pod,
                port: Some(target_port),
            });
        }
    }
    Ok(found)
}

/// A Service an Ingress rule sends a request to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IngressRoute {
    pub(crate) namespace: String,
    pub(crate) service: String,
    pub(crate) port: PortRef,
}

/// The best Ingress rule for `host` and `path` across every Ingress: a rule for the exact
/// host beats a wildcard host, which beats a rule for any host; then an `Exact` path beats
/// a prefix, and a longer prefix a shorter one. Without a matching rule, an Ingress's
/// `defaultBackend` takes the request.
pub(crate) fn ingress_route(cache: &Cache, host: &str, path: &str) -> Option<IngressRoute> {
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase();
    let mut best: Option<((u8, u8, usize), IngressRoute)> = None;
    let mut fallback = None;
    for ingress in cache.ingresses.store().state() {
        let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
        let Some(spec) = ingress.spec.as_ref() else {
            continue;
        };
        for rule in spec.rules.iter().flatten() {
            let host_rank = match rule.host.as_deref() {
                None | Some("") => 0,
                Some(rule_host) if rule_host.eq_ignore_ascii_case(&host) => 2,
                Some(rule_host) => match rule_host.strip_prefix("*.") {
                    Some(suffix)
                        if host
                            .split_once('.')
                            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix)) =>
                    {
                        1
                    }
                    _ => continue,
                },
            };
            let paths = rule
                .http
                .as_ref()
                .map(|h| h.paths.as_slice())
                .unwrap_or(&[]);
            for rule_path in paths {
                let wanted = rule_path.path.as_deref().unwrap_or("/");
                let rank = match rule_path.path_type.as_str() {
                    "Exact" if path == wanted => (host_rank, 1, wanted.len()),
                    "Exact" => continue,
                    _ if prefix_matches(wanted, path) => (host_rank, 0, wanted.len()),
                    _ => continue,
                };
                if best.as_ref().is_none_or(|(have, _)| rank > *have)
                    && let Some(route) = route_to(&namespace, &rule_path.backend)
                {
                    best = Some((rank, route));
                }
            }
        }
        if fallback.is_none() {
            fallback = spec
                .default_backend
                .as_ref()
                .and_then(|backend| route_to(&namespace, backend));
        }
    }
    best.map(|(_, route)| route).or(fallback)
}

/// Whether `path` is under `prefix`, element by element, as the Ingress `Prefix` type means:
/// `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn route_to(namespace: &str, backend: &IngressBackend) -> Option<IngressRoute> {
    let service = backend.service.as_ref()?;
    let port = service.port.as_ref();
    let port = match (
        port.and_then(|p| p.number),
        port.and_then(|p| p.name.clone()),
    ) {
        (Some(number), _) => PortRef::Number(u16::try_from(number).ok()?),
        (None, Some(name)) => PortRef::Name(name),
        (None, None) => PortRef::First,
    };
    Some(IngressRoute {
        namespace: namespace.to_string(),
        service: service.name.clone(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn prefixes_match_whole_path_elements() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/foo", "/foo"));
        assert!(prefix_matches("/foo/", "/foo/bar"));
        assert!(prefix_matches("/foo", "/foo/bar"));
        assert!(!prefix_matches("/foo", "/foobar"));
        assert!(!prefix_matches("/foo/bar", "/foo"));
    }
}
