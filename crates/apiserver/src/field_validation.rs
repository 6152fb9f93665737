//! `fieldValidation`: what the server does with fields a request's object does not declare —
//! usually a typo that would otherwise be dropped without a word.

use crate::error::{ApiError, Result};
use crate::rest::Query;
use axum::http::HeaderValue;
use axum::response::Response;
use flotilla_api::ApiStatus;
use flotilla_api::resource::ResourceType;
use flotilla_api::schema::{SchemaNode, unknown_fields};
use serde_json::Value;

/// The three levels Kubernetes offers; `Warn` is the default, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(query: &Query) -> Result<Self> {
        match query.get("fieldValidation").map(String::as_str) {
            None | Some("" | "Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError(ApiStatus::bad_request(format!(
                "fieldValidation must be Ignore, Warn or Strict, not {other:?}"
            )))),
        }
    }

    /// Checks a request's object (or patch) against the kind's schema: `Strict` refuses unknown
    /// fields with 400 naming each, `Warn` returns them as warnings for the response.
    pub fn check(self, r: &ResourceType, object: &Value) -> Result<Warnings> {
        if self == FieldValidation::Ignore {
            return Ok(Warnings::default());
        }
        let unknown: Vec<String> = unknown_fields(object, SchemaNode::of_kind(r))
            .into_iter()
            .map(|path| format!("unknown field \"{path}\""))
            .collect();
        if self == FieldValidation::Strict && !unknown.is_empty() {
            return Err(ApiError(ApiStatus::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                unknown.join(", "),
                kind = r.kind,
                version = r.version,
            ))));
        }
        Ok(Warnings(unknown))
    }
}

/// Warnings for the response's `Warning` headers, which kubectl prints.
#[derive(Debug, Default)]
pub struct Warnings(Vec<String>);

impl Warnings {
    pub fn attach(self, mut response: Response) -> Response {
        for warning in self.0 {
            let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
            if let Ok(value) = HeaderValue::from_str(&text) {
                response.headers_mut().append("warning", value);
            }
        }
        response
    }
}
