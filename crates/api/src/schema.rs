//! The OpenAPI schemas of the kinds flotilla serves, generated from the Kubernetes types in
//! [`k8s_openapi`] rather than written by hand, so `kubectl explain`, client-side validation,
//! strategic merge patch and server-side apply all see the same schema Kubernetes publishes.
//!
//! - [`definitions`]: every schema by its OpenAPI name (`io.k8s.api.core.v1.Pod`), in OpenAPI v2
//!   form (`$ref: "#/definitions/…"`), with the `x-kubernetes-*` extensions clients rely on.
//! - [`SchemaNode`]: a position in those schemas, for code that walks an object and its schema
//!   together (patching, field ownership, unknown-field checks).
//! - [`unknown_fields`]: the fields of an object its schema does not declare
//!   (`fieldValidation=Strict`).

mod definitions;
mod node;
mod patch_metadata;
mod unknown_fields;

pub use definitions::{definition_name, definitions};
pub use node::SchemaNode;
pub use unknown_fields::unknown_fields;

/// Where `$ref`s point in OpenAPI v2 documents, and so in [`definitions`].
pub const REF_PREFIX: &str = "#/definitions/";
