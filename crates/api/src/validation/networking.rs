//! Services, Ingresses and Functions: the kinds the gateway serves. Each is checked for what
//! the gateway needs to route to it, and for what flotilla cannot do (a UDP port, a
//! `LoadBalancer`), which is refused with a reason rather than accepted and ignored.

use super::{
    Cause, dns1123_label, dns1123_subdomain, invalid, invalid_value, not_supported, required,
};
use serde_json::Value;
use std::collections::HashSet;

/// `spec.type`, `spec.ports` (number, unique name, TCP, targetPort) and `spec.selector`.
pub(super) fn validate_service(object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let type_ = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if type_ != "ClusterIP" {
        causes.push(Cause {
            message: format!(
                "Unsupported value: \"{type_}\": supported values: \"ClusterIP\" (flotilla's \
                 gateway serves every Service at http://GATEWAY/service/NAME.NAMESPACE/ and as \
                 Host NAME.NAMESPACE.svc, so no node ports or load balancers are needed)"
            ),
            ..not_supported("spec.type", type_, &["ClusterIP"])
        });
    }
    let ports = match spec.get("ports") {
        Some(Value::Array(ports)) => ports.as_slice(),
        None | Some(Value::Null) => &[],
        Some(other) => {
            causes.push(invalid_value("spec.ports", other, "must be a list"));
            &[]
        }
    };
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if ports.is_empty() && !headless {
        causes.push(required("spec.ports"));
    }
    let mut names = HashSet::new();
    for (index, port) in ports.iter().enumerate() {
        let at = |field: &str| format!("spec.ports[{index}].{field}");
        match port.get("port").and_then(Value::as_i64) {
            Some(1..=65535) => {}
            Some(other) => causes.push(invalid_value(
                at("port"),
                &Value::from(other),
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(required(at("port"))),
        }
        let name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause {
                message: "Required value: a name is required when a Service has several ports"
                    .into(),
                ..required(at("name"))
            });
        }
        if !name.is_empty() {
            if let Err(why) = dns1123_label(name) {
                causes.push(invalid(at("name"), name, why));
            }
            if !names.insert(name) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    message: format!("Duplicate value: \"{name}\""),
                    field: at("name"),
                });
            }
        }
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if protocol != "TCP" {
            causes.push(Cause {
                message: format!(
                    "Unsupported value: \"{protocol}\": supported values: \"TCP\" (Wasm pods \
                     serve HTTP)"
                ),
                ..not_supported(at("protocol"), protocol, &["TCP"])
            });
        }
        validate_port_reference(port.get("targetPort"), &at("targetPort"), causes);
    }
    if let Some(selector) = spec.get("selector")
        && !selector.is_null()
    {
        match selector.as_object() {
            Some(labels) => super::validate_labels(labels, "spec.selector", causes),
            None => causes.push(invalid_value(
                "spec.selector",
                selector,
                "must be a map of labels",
            )),
        }
    }
}

/// A port given by number (1–65535) or by the name of a container port (an IANA service
/// name: lower case, at most 15 characters, at least one letter).
fn validate_port_reference(port: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    match port {
        None | Some(Value::Null) => {}
        Some(Value::Number(number)) => {
            if !matches!(number.as_i64(), Some(1..=65535)) {
                causes.push(invalid_value(
                    field,
                    &Value::Number(number.clone()),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        Some(Value::String(name)) => {
            let ok = !name.is_empty()
                && name.len() <= 15
                && dns1123_label(name).is_ok()
                && name.bytes().any(|b| b.is_ascii_lowercase())
                && !name.contains("--");
            if !ok {
                causes.push(invalid(
                    field,
                    name,
                    "must be a port number or the name of a container port (at most 15 lower \
                     case alphanumeric characters or '-', with at least one letter)",
                ));
            }
        }
        Some(other) => causes.push(invalid_value(field, other, "must be a number or a name")),
    }
}

/// Rules (host, paths with a `pathType`, service backends) and the default backend.
pub(super) fn validate_ingress(object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let rules = spec.get("rules").and_then(Value::as_array);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_none_or(Vec::is_empty) && default_backend.is_none() {
        causes.push(Cause {
            message: "Required value: either `defaultBackend` or `rules` must be specified".into(),
            ..required("spec")
        });
    }
    if let Some(backend) = default_backend {
        validate_backend(backend, "spec.defaultBackend", causes);
    }
    for (index, rule) in rules.into_iter().flatten().enumerate() {
        let at = format!("spec.rules[{index}]");
        if let Some(host) = rule.get("host").and_then(Value::as_str)
            && !host.is_empty()
        {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if let Err(why) = dns1123_subdomain(bare) {
                causes.push(invalid(format!("{at}.host"), host, why));
            }
        }
        let paths = rule.pointer("/http/paths").and_then(Value::as_array);
        for (p, path) in paths.into_iter().flatten().enumerate() {
            let at = format!("{at}.http.paths[{p}]");
            let kind = path.get("pathType").and_then(Value::as_str);
            match kind {
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => causes.push(not_supported(
                    format!("{at}.pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
                None => causes.push(Cause {
                    message: "Required value: pathType must be specified".into(),
                    ..required(format!("{at}.pathType"))
                }),
            }
            match path.get("path").and_then(Value::as_str) {
                Some(p) if p.starts_with('/') => {}
                Some(p) => {
                    causes.push(invalid(format!("{at}.path"), p, "must be an absolute path"))
                }
                None if kind == Some("ImplementationSpecific") => {}
                None => causes.push(Cause {
                    message: "Required value: must be specified when pathType is Exact or Prefix"
                        .into(),
                    ..required(format!("{at}.path"))
                }),
            }
            match path.get("backend") {
                Some(backend) => validate_backend(backend, &format!("{at}.backend"), causes),
                None => causes.push(required(format!("{at}.backend"))),
            }
        }
    }
}

/// An Ingress backend: a Service by name with a port by number or name. Resource backends
/// have nothing to route to in flotilla.
fn validate_backend(backend: &Value, at: &str, causes: &mut Vec<Cause>) {
    let Some(service) = backend.get("service").filter(|s| !s.is_null()) else {
        let why = if backend.get("resource").is_some() {
            "resource backends are not supported: flotilla's gateway routes to Services"
        } else {
            "Required value"
        };
        causes.push(Cause {
            message: why.into(),
            ..required(format!("{at}.service"))
        });
        return;
    };
    match service.get("name").and_then(Value::as_str) {
        Some(name) => {
            if let Err(why) = dns1123_label(name) {
                causes.push(invalid(format!("{at}.service.name"), name, why));
            }
        }
        None => causes.push(required(format!("{at}.service.name"))),
    }
    let port = service.get("port");
    let number = port.and_then(|p| p.get("number")).filter(|n| !n.is_null());
    let name = port.and_then(|p| p.get("name")).filter(|n| !n.is_null());
    match (number, name) {
        (Some(_), Some(_)) => causes.push(invalid_value(
            format!("{at}.service.port"),
            port.unwrap_or(&Value::Null),
            "cannot set both port name & port number",
        )),
        (None, None) => causes.push(Cause {
            message: "Required value: port name or number is required".into(),
            ..required(format!("{at}.service.port"))
        }),
        (Some(number), None) => {
            validate_port_reference(Some(number), &format!("{at}.service.port.number"), causes)
        }
        (None, Some(name)) => {
            validate_port_reference(Some(name), &format!("{at}.service.port.name"), causes)
        }
    }
}

/// `spec.image`, and scale and timeout bounds that make sense together.
pub(super) fn validate_function(object: &Value, causes: &mut Vec<Cause>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    match spec.get("image").and_then(Value::as_str) {
        Some(image) if !image.trim().is_empty() => {}
        _ => causes.push(Cause {
            message: "Required value: the HTTP component to run, e.g. file:///path/app.wasm \
                      or a module pushed with `flotilla push`"
                .into(),
            ..required("spec.image")
        }),
    }
    let number = |field: &str| spec.get(field).filter(|v| !v.is_null());
    let mut bound = |field: &str, low: i64, high: i64| -> Option<i64> {
        let value = number(field)?;
        match value.as_i64() {
            Some(n) if (low..=high).contains(&n) => Some(n),
            _ => {
                causes.push(invalid_value(
                    format!("spec.{field}"),
                    value,
                    format!("must be an integer between {low} and {high}, inclusive"),
                ));
                None
            }
        }
    };
    let min = bound("minScale", 0, 10_000);
    let max = bound("maxScale", 1, 10_000);
    bound("concurrency", 1, 100_000);
    bound("timeoutSeconds", 1, 3_600);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        causes.push(invalid_value(
            "spec.maxScale",
            &Value::from(max),
            format!("must be greater than or equal to spec.minScale ({min})"),
        ));
    }
}
