//! flotilla-api: the bottom of the flotilla stack — what a resource *is*, independent of how it
//! is stored or served.
//!
//! Objects travel through flotilla as JSON (`serde_json::Value`) so the apiserver can store and
//! serve every kind the same way; typed views come from [`k8s_openapi`], re-exported here so
//! that every crate agrees on one version of the Kubernetes types.
//!
//! - [`resource`]: the table of kinds the API serves (group, version, plural, scope).
//! - [`meta`]: reading and writing `metadata` on untyped objects.
//! - [`status`]: Kubernetes `Status` errors with the right code and reason.
//! - [`validation`]: name rules, per-kind required and immutable fields, reported by field
//!   path.
//! - [`defaults`]: the defaults Kubernetes fills in on create and update.
//! - [`function`]: the typed `Function` kind, for the components that act on it.
//! - [`image`]: what a container's `image` names (pushed module, registry artifact, file, URL).
//! - [`selector`]: label and field selectors.
//! - [`schema`]: the OpenAPI schemas of the served kinds, from k8s-openapi, for documents,
//!   patching and field validation.
//! - [`strategic_merge`]: Kubernetes' strategic merge patch, guided by those schemas.
//! - [`field_manager`]: server-side apply's field ownership (`managedFields`) and conflicts.
//!
//! ```
//! use flotilla_api::{resource, validation};
//! let pods = resource::lookup("", "v1", "pods").unwrap();
//! assert_eq!(pods.kind, "Pod");
//! assert!(validation::dns1123_subdomain("hello").is_ok());
//! ```

pub mod defaults;
pub mod field_manager;
pub mod function;
pub mod image;
pub mod meta;
pub mod resource;
pub mod schema;
pub mod selector;
pub mod status;
pub mod strategic_merge;
pub mod validation;

pub use k8s_openapi;
pub use status::{ApiStatus, Cause};

/// The current time in the RFC 3339 form Kubernetes uses for timestamps (second precision).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
