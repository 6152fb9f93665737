//! Wasm artifacts in OCI registries (`REGISTRY/REPOSITORY[:TAG|@sha256:HEX]`), through the
//! OCI distribution API: `GET /v2/{repository}/manifests/{reference}` for the image manifest,
//! whose Wasm layer (media type `application/wasm`, or the wasm-to-oci and Wasm working
//! group types) names a blob, then `GET /v2/{repository}/blobs/{digest}`.
//!
//! A small client over the same HTTP/1.1 code as plain downloads rather than a registry crate:
//! two GETs and a JSON document are all a pull needs, and it keeps the node's dependency tree
//! and its one HTTP stack as they are. Like plain downloads it speaks HTTP only, so it talks
//! to registries on loopback (`localhost`, `127.0.0.1`, `[::1]`), where that is safe, and to
//! those a node names with `--insecure-registry HOST[:PORT]` (its operator's call, as with
//! containerd's and Docker's insecure registries); others are refused with a message until
//! HTTPS lands. Registries that ask for credentials are refused the same way. Layer bytes
//! are verified against their digest (and, for `@sha256:` references, the manifest too), so
//! plain HTTP cannot swap a pinned module.

use super::PullError;
use super::http::{self, GetError, TIMEOUT};
use flotilla_api::image::{OciRef, Reference};
use sha2::{Digest as _, Sha256};

/// Layer media types that hold a Wasm module or component.
const WASM_LAYER_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// Manifests flotilla reads; an index is recognised only to say it is not supported.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";

/// The largest manifest read: they are a few hundred bytes.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

pub struct Registry<'a> {
    image: &'a str,
    reference: &'a OciRef,
}

impl<'a> Registry<'a> {
    /// A client for `reference`'s registry, if flotilla can talk to it.
    pub fn new(
        image: &'a str,
        reference: &'a OciRef,
        insecure: &[String],
    ) -> Result<Self, PullError> {
        if !is_loopback(&reference.registry) && !insecure.contains(&reference.registry) {
            return Err(PullError::Unsupported(
                image.to_string(),
                format!(
                    "registry {} is not on loopback; flotilla pulls over plain HTTP, so only from loopback registries and those the node allows with --insecure-registry {}, until HTTPS is supported (or push the module to the cluster with `flotilla push`)",
                    reference.registry, reference.registry
                ),
            ));
        }
        Ok(Registry { image, reference })
    }

    /// The digest of the Wasm layer the manifest names.
    pub async fn wasm_layer(&self, max: u64) -> Result<String, PullError> {
        let repository = &self.reference.repository;
        let wanted = self.reference.reference.as_str();
        let path = format!("/v2/{repository}/manifests/{wanted}");
        let answer = self
            .get(&path, &[(hyper::header::ACCEPT, ACCEPT)], MAX_MANIFEST)
            .await?;
        if answer.status == hyper::StatusCode::NOT_FOUND {
            return Err(self.failed(format!(
                "the registry has no manifest {repository}:{wanted} ({}); check the repository and tag",
                registry_error(&answer.body)
            )));
        }
        self.check_status(&answer)?;
        if let Reference::Digest(digest) = &self.reference.reference {
            let actual = format!("{:x}", Sha256::digest(&answer.body));
            let expected = digest.trim_start_matches("sha256:");
            if actual != expected {
                return Err(PullError::DigestMismatch {
                    url: self.image.to_string(),
                    expected: expected.into(),
                    actual,
                });
            }
        }
        let manifest: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|e| self.failed(format!("the manifest is not JSON: {e}")))?;
        let media_type = manifest["mediaType"]
            .as_str()
            .unwrap_or(answer.content_type.as_str());
        if media_type.contains("index") || media_type.contains("manifest.list") {
            return Err(self.failed(
                "the reference names an image index; name the manifest of the Wasm artifact itself (by its tag or digest)".into(),
            ));
        }
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let layer = layers
            .iter()
            .find(|l| {
                l["mediaType"]
                    .as_str()
                    .is_some_and(|t| WASM_LAYER_TYPES.contains(&t))
            })
            .ok_or_else(|| {
                let found: Vec<&str> = layers.iter().filter_map(|l| l["mediaType"].as_str()).collect();
                self.failed(format!(
                    "the manifest has no Wasm layer (one of {}); its layers are: {}. Is this a container image rather than a Wasm artifact?",
                    WASM_LAYER_TYPES.join(", "),
                    if found.is_empty() { "none".into() } else { found.join(", ") }
                ))
            })?;
        if let Some(size) = layer["size"].as_u64().filter(|size| *size > max) {
            return Err(PullError::TooLarge {
                path: self.image.to_string(),
                size,
                max,
            });
        }
        layer["digest"]
            .as_str()
            .and_then(|d| flotilla_api::image::valid_digest(d).ok())
            .ok_or_else(|| self.failed("the Wasm layer has no sha256 digest".into()))
    }

    /// The bytes of one blob (the caller checks them against the digest).
    pub async fn blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, PullError> {
        let path = format!("/v2/{}/blobs/{digest}", self.reference.repository);
        let answer = self.get(&path, &[], max).await?;
        self.check_status(&answer)?;
        Ok(answer.body)
    }

    async fn get(
        &self,
        path: &str,
        headers: &[(hyper::header::HeaderName, &str)],
        max: u64,
    ) -> Result<http::Answer, PullError> {
        let fetched = tokio::time::timeout(
            TIMEOUT,
            http::get(&self.reference.registry, path, headers, max),
        )
        .await
        .map_err(|_| self.failed(format!("no complete answer within {TIMEOUT:?}")))?;
        fetched.map_err(|e| match e {
            GetError::Failed(reason) => self.failed(reason),
            GetError::TooLarge(size) => PullError::TooLarge {
                path: self.image.to_string(),
                size,
                max,
            },
        })
    }

    fn check_status(&self, answer: &http::Answer) -> Result<(), PullError> {
        match answer.status {
            hyper::StatusCode::OK => Ok(()),
            hyper::StatusCode::UNAUTHORIZED | hyper::StatusCode::FORBIDDEN => Err(self.failed(
                "the registry asks for credentials; flotilla pulls only from registries without authentication for now".into(),
            )),
            other => Err(self.failed(format!(
                "the registry answered {other} ({})",
                registry_error(&answer.body)
            ))),
        }
    }

    fn failed(&self, reason: String) -> PullError {
        PullError::Download {
            url: self.image.to_string(),
            reason,
        }
    }
}

/// The first error of a registry's error document: `CODE: message`.
fn registry_error(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let first = &v["errors"][0];
            Some(format!(
                "{}: {}",
                first["code"].as_str()?,
                first["message"].as_str().unwrap_or_default()
            ))
        })
        .unwrap_or_else(|| "no error details".into())
}

/// Whether `host[:port]` is this machine.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_spoken_to() {
        for yes in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.0.0.2",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["registry.example:5000", "10.0.0.1:5000", "[fe80::1]:5000"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn other_registries_need_to_be_allowed() {
        let reference = OciRef {
            registry: "registry.lan:5000".into(),
            repository: "hello".into(),
            reference: Reference::Tag("1".into()),
        };
        let refused = Registry::new("registry.lan:5000/hello:1", &reference, &[]);
        let message = refused.err().expect("refused").to_string();
        assert!(
            message.contains("--insecure-registry registry.lan:5000"),
            "{message}"
        );
        let allowed = ["registry.lan:5000".to_string()];
        assert!(Registry::new("registry.lan:5000/hello:1", &reference, &allowed).is_ok());
    }

    #[test]
    fn registry_errors_are_summarised() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_error(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(registry_error(b"<html>"), "no error details");
    }
}
