//! Kubernetes `Status` errors: what every failed API call answers, with the HTTP code, the
//! machine-readable reason and a message a person can act on.

use serde_json::{Value, json};

/// One field-level cause of an `Invalid` error, e.g. `spec.containers[0].image: Required value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, …
    pub reason: &'static str,
    /// Human-readable detail, already including the value where useful.
    pub message: String,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
}

/// A failed API call, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiStatus {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind` where the error concerns one object.
    /// Boxed: errors travel in `Result`s everywhere, so the common case stays small.
    pub details: Option<Box<(String, String, String)>>,
    pub causes: Vec<Cause>,
    /// Seconds the client should wait before retrying (429, 503).
    pub retry_after_seconds: Option<u64>,
}

impl ApiStatus {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiStatus {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    /// Attaches the object the error is about.
    pub fn about(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            kind.to_string(),
        )));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// `pods "hello" not found`, as Kubernetes words it.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .about(group, plural, name)
    }

    /// A URL that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .about(group, plural, name)
    }

    /// A write based on a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
        )
        .about(group, plural, name)
    }

    /// A watch or list from a revision older than the kept history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// A patch that cannot be applied to the object as it stands.
    /// The reason is also given as a cause on the field `patch`, which is what older kubectl
    /// prints for an `Invalid` status.
    pub fn invalid_patch(message: impl Into<String>) -> Self {
        let message = message.into();
        let mut status = Self::new(
            422,
            "Invalid",
            format!("the patch could not be applied: {message}"),
        );
        status.causes = vec![Cause {
            reason: "FieldValueInvalid",
            message,
            field: "patch".into(),
        }];
        status
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 422 with one cause per field, e.g. `Pod "x" is invalid: spec.containers: Required value`.
    pub fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if summary.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", summary[0])
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", summary.join(", "))
        };
        let mut status = Self::new(422, "Invalid", message);
        status.details = Some(Box::new((
            name.to_string(),
            String::new(),
            kind.to_string(),
        )));
        status.causes = causes;
        status
    }

    /// 409 for a server-side apply that would take fields other managers own.
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let mut status = Self::new(409, "Conflict", message);
        status.causes = causes;
        status
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u64) -> Self {
        let mut status = Self::new(429, "TooManyRequests", message);
        status.retry_after_seconds = Some(retry_after_seconds);
        status
    }

    /// An unexpected failure. The message must not leak internals; log those where it happens.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object as Kubernetes serializes it.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(details_of) = &self.details {
            let (name, group, kind) = &**details_of;
            details.insert("name".into(), json!(name));
            if !group.is_empty() {
                details.insert("group".into(), json!(group));
            }
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(seconds) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(seconds));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `pods` in the core group, `deployments.apps` elsewhere: how Kubernetes names a resource in messages.
fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// A `Status` reporting success, as DELETE of a collection answers.
pub fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_kubernetes() {
        let status = ApiStatus::not_found("", "pods", "hello").to_json();
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["message"], "pods \"hello\" not found");
        assert_eq!(status["details"]["name"], "hello");
    }

    #[test]
    fn invalid_names_each_field() {
        let status = ApiStatus::invalid(
            "Pod",
            "x",
            vec![Cause {
                reason: "FieldValueRequired",
                message: "Required value".into(),
                field: "spec.containers".into(),
            }],
        );
        assert_eq!(status.code, 422);
        assert_eq!(
            status.message,
            "Pod \"x\" is invalid: spec.containers: Required value"
        );
        assert_eq!(
            status.to_json()["details"]["causes"][0]["field"],
            "spec.containers"
        );
    }
}
