//! Which Service or Function a request is for, from its path and `Host`, before anything is
//! looked up: `/function/NAME[.NAMESPACE]/…`, `/service/NAME.NAMESPACE[:PORT]/…`, or a
//! `Host` of `NAME.NAMESPACE.svc[.cluster.local][:PORT]`. Anything else is left to the
//! Ingress rules.

/// Where a request goes, and the path (with query) its handler sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Function {
        namespace: String,
        name: String,
        path: String,
    },
    Service {
        namespace: String,
        name: String,
        /// The Service port asked for by number; the first port when `None`.
        port: Option<u16>,
        path: String,
    },
}

/// The target named by the request's path or `Host`, if it names one. `path_and_query` is
/// the request's, e.g. `/function/hello/greet?x=1`.
pub fn target(path_and_query: &str, host: Option<&str>) -> Option<Target> {
    if let Some(rest) = path_and_query.strip_prefix("/function/") {
        let (id, path) = split_first(rest);
        let (name, namespace) = id.split_once('.').unwrap_or((id, "default"));
        if name.is_empty() || namespace.is_empty() {
            return None;
        }
        return Some(Target::Function {
            namespace: namespace.into(),
            name: name.into(),
            path,
        });
    }
    if let Some(rest) = path_and_query.strip_prefix("/service/") {
        let (id, path) = split_first(rest);
        let (id, port) = match id.split_once(':') {
            Some((id, port)) => (id, Some(port.parse().ok()?)),
            None => (id, None),
        };
        let (name, namespace) = id.split_once('.')?;
        if name.is_empty() || namespace.is_empty() {
            return None;
        }
        return Some(Target::Service {
            namespace: namespace.into(),
            name: name.into(),
            port,
            path,
        });
    }
    let host = host?.to_ascii_lowercase();
    let (host, port) = match host.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host.to_string(), port.parse().ok())
        }
        _ => (host, None),
    };
    let service = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))?;
    let (name, namespace) = service.split_once('.')?;
    if name.is_empty() || namespace.is_empty() || namespace.contains('.') {
        return None;
    }
    Some(Target::Service {
        namespace: namespace.into(),
        name: name.into(),
        // Port 80 is what a client sends without one; it means "the Service's first port".
        port: port.filter(|p| *p != 80),
        path: path_and_query.to_string(),
    })
}

/// `ID/rest?query` → (`ID`, `/rest?query`); `ID?query` → (`ID`, `/?query`).
fn split_first(rest: &str) -> (&str, String) {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (id, tail) = rest.split_at(end);
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    (id, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(namespace: &str, name: &str, path: &str) -> Option<Target> {
        Some(Target::Function {
            namespace: namespace.into(),
            name: name.into(),
            path: path.into(),
        })
    }

    fn service(namespace: &str, name: &str, port: Option<u16>, path: &str) -> Option<Target> {
        Some(Target::Service {
            namespace: namespace.into(),
            name: name.into(),
            port,
            path: path.into(),
        })
    }

    #[test]
    fn functions_by_path_with_their_namespace_or_default() {
        assert_eq!(
            target("/function/hello", None),
            function("default", "hello", "/")
        );
        assert_eq!(
            target("/function/hello/a/b?x=1", None),
            function("default", "hello", "/a/b?x=1")
        );
        assert_eq!(
            target("/function/hello.shop?x=1", None),
            function("shop", "hello", "/?x=1")
        );
        assert_eq!(target("/function/", None), None);
    }

    #[test]
    fn services_by_path_or_host() {
        assert_eq!(
            target("/service/cart.shop/items", None),
            service("shop", "cart", None, "/items")
        );
        assert_eq!(
            target("/service/cart.shop:8080/items", None),
            service("shop", "cart", Some(8080), "/items")
        );
        assert_eq!(
            target("/service/cart/items", None),
            None,
            "needs a namespace"
        );
        assert_eq!(
            target("/items?q", Some("cart.shop.svc")),
            service("shop", "cart", None, "/items?q")
        );
        assert_eq!(
            target("/", Some("Cart.Shop.svc.cluster.local:9090")),
            service("shop", "cart", Some(9090), "/")
        );
        assert_eq!(
            target("/", Some("cart.shop.svc:80")),
            service("shop", "cart", None, "/")
        );
        assert_eq!(target("/", Some("example.com")), None);
        assert_eq!(target("/", None), None);
    }
}
