//! Parsing a request path into the resource, namespace, name and subresource it addresses.

use flotilla_api::ApiStatus;
use flotilla_api::resource::{self, ResourceType};

/// What a REST path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/apis/{group}/{version}`: the group version's resource list.
    GroupVersion { group: String, version: String },
    /// A collection or one object, optionally a subresource of it.
    Resource(ResourceRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    pub resource: &'static ResourceType,
    /// `None` for cluster-scoped resources and for namespaced lists across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl ResourceRequest {
    /// The namespace part of the store key (empty for cluster-scoped objects).
    pub fn key_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// The store key of the object this request names (requests for one object only).
    pub fn key(&self) -> String {
        self.resource.key(
            self.key_namespace(),
            self.name.as_deref().unwrap_or_default(),
        )
    }

    /// The key prefix a list or watch of this request scans.
    pub fn prefix(&self) -> String {
        match &self.namespace {
            Some(ns) => self.resource.namespace_prefix(ns),
            None => self.resource.key_prefix(),
        }
    }
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths.
pub fn parse(path: &str) -> Result<Target, ApiStatus> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiStatus::no_route(path)),
    };
    if rest.is_empty() {
        return Ok(Target::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        });
    }
    let find = |plural: &str| {
        resource::lookup(group, version, plural).ok_or_else(|| ApiStatus::no_route(path))
    };
    let namespaces = resource::lookup("", "v1", "namespaces").expect("namespaces are served");
    // `/api/v1/namespaces/{ns}/{plural}/...` addresses namespaced objects, but
    // `/api/v1/namespaces/{name}/status` addresses the Namespace itself.
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && namespaces.subresources.contains(plural)) =>
        {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [plural] => (find(plural)?, None, None),
        [plural, name] => (find(plural)?, Some(name.to_string()), None),
        [plural, name, sub] => (find(plural)?, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(ApiStatus::no_route(path)),
    };
    if namespace.is_some() && !resource.namespaced {
        return Err(ApiStatus::no_route(path));
    }
    if namespace.is_none() && resource.namespaced && name.is_some() {
        return Err(ApiStatus::no_route(path));
    }
    if let Some(sub) = &subresource
        && !resource.subresources.contains(&sub.as_str())
    {
        return Err(ApiStatus::no_route(path));
    }
    Ok(Target::Resource(ResourceRequest {
        resource,
        namespace,
        name,
        subresource,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> ResourceRequest {
        match parse(path).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{path} parsed as {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths() {
        let r = request("/api/v1/namespaces/default/pods/hello/log");
        assert_eq!(r.resource.kind, "Pod");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("hello"));
        assert_eq!(r.subresource.as_deref(), Some("log"));
        let all = request("/api/v1/pods");
        assert_eq!((all.namespace, all.name), (None, None));
    }

    #[test]
    fn namespace_objects_and_their_status() {
        let ns = request("/api/v1/namespaces/default");
        assert_eq!(ns.resource.kind, "Namespace");
        assert_eq!(ns.name.as_deref(), Some("default"));
        let status = request("/api/v1/namespaces/default/status");
        assert_eq!(status.resource.kind, "Namespace");
        assert_eq!(status.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/api/v1/widgets",
            "/api/v1/namespaces/default/nodes/x",
            "/api/v1/pods/x",
            "/api/v1/namespaces/default/pods/x/exec",
            "/nope",
        ] {
            assert_eq!(parse(path).unwrap_err().code, 404, "{path}");
        }
    }
}
