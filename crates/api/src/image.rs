//! What a container's `image` names, parsed once for everyone who needs to know: defaulting
//! (`imagePullPolicy` depends on the tag), the node's resolver and `flotilla push`.
//!
//! - `file:///abs/path/app.wasm` and `http(s)://…`: a file on the node, a download;
//! - `NAME`, `NAME:TAG`, `NAME@sha256:HEX`: a module pushed to the cluster (the `Module` kind
//!   in the pod's namespace), or a sample in the node's module directories;
//! - `REGISTRY/REPOSITORY[:TAG|@sha256:HEX]`, also written `oci://REGISTRY/…`: a Wasm
//!   artifact in an OCI registry. As in Docker, the first path component is a registry when
//!   it has a `.` or a `:` or is `localhost` (`127.0.0.1:5000/hello:1.0`); there is no
//!   default registry, so `library/hello` is refused rather than looked up on Docker Hub.
//!
//! ```
//! use flotilla_api::image::{Image, Reference};
//! let Image::Module(m) = Image::parse("hello:v1").unwrap() else { unreachable!() };
//! assert_eq!((m.name.as_str(), m.reference), ("hello", Reference::Tag("v1".into())));
//! assert_eq!(flotilla_api::image::default_pull_policy("hello"), "Always");
//! ```

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// `file:///…`: the path on the node.
    File(String),
    /// `http://…` or `https://…`, as written (digest pin included).
    Http(String),
    /// A module pushed to the cluster, or a sample module of the node.
    Module(ModuleRef),
    /// A Wasm artifact in an OCI registry.
    Oci(OciRef),
}

/// `NAME[:TAG]` or `NAME@sha256:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    pub name: String,
    pub reference: Reference,
}

/// `REGISTRY/REPOSITORY[:TAG]` or `REGISTRY/REPOSITORY@sha256:HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    /// `host[:port]`.
    pub registry: String,
    /// The repository path in the registry, e.g. `wasm/hello`.
    pub repository: String,
    pub reference: Reference,
}

/// A tag (moves when something new is pushed to it) or a digest (never moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag; `latest` when the image names none.
    Tag(String),
    /// `sha256:` and 64 lowercase hexadecimal digits.
    Digest(String),
}

impl Reference {
    /// The tag or digest as written in a reference.
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(tag) | Reference::Digest(tag) => tag,
        }
    }
}

impl Image {
    /// Parses an image reference; the error says what is wrong with it.
    pub fn parse(image: &str) -> Result<Image, String> {
        if image.is_empty() {
            return Err("the image is empty".into());
        }
        if let Some(path) = image.strip_prefix("file://") {
            return Ok(Image::File(path.to_string()));
        }
        if image.starts_with("http://") || image.starts_with("https://") {
            return Ok(Image::Http(image.to_string()));
        }
        if let Some(rest) = image.strip_prefix("oci://") {
            return match parse_named(rest)? {
                Image::Oci(oci) => Ok(Image::Oci(oci)),
                _ => Err(
                    "an oci:// reference names a registry first: oci://REGISTRY/REPOSITORY:TAG"
                        .into(),
                ),
            };
        }
        if image.contains("://") {
            return Err(
                "only file://, http://, https:// and oci:// URLs name images; a module pushed to the cluster is NAME[:TAG] or NAME@sha256:DIGEST"
                    .into(),
            );
        }
        parse_named(image)
    }

    /// Whether the tag can move: Kubernetes pulls such images `Always` by default.
    fn follows_latest(&self) -> bool {
        match self {
            Image::Module(ModuleRef { reference, .. }) | Image::Oci(OciRef { reference, .. }) => {
                *reference == Reference::Tag("latest".into())
            }
            Image::File(_) | Image::Http(_) => false,
        }
    }
}

/// Kubernetes' default `imagePullPolicy`: `Always` for the `latest` tag (also when no tag is
/// written), `IfNotPresent` otherwise, including digests and images that do not parse.
pub fn default_pull_policy(image: &str) -> &'static str {
    match Image::parse(image) {
        Ok(parsed) if parsed.follows_latest() => "Always",
        _ => "IfNotPresent",
    }
}

/// Whether `name` can name a pushed module: a DNS-1123 subdomain, as its `Module` object's
/// name must be.
pub fn valid_module_name(name: &str) -> Result<(), String> {
    crate::validation::dns1123_subdomain(name).map_err(|why| format!("module name {name:?}: {why}"))
}

/// Docker's tag syntax: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.`/`-`.
pub fn valid_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} is not valid: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ))
    }
}

/// Checks `sha256:` followed by 64 hexadecimal digits, returning it lower-cased.
pub fn valid_digest(digest: &str) -> Result<String, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
        }
        _ => Err(format!(
            "digest {digest:?} is not valid: write sha256: followed by 64 hexadecimal digits"
        )),
    }
}

/// `NAME[:TAG][@sha256:HEX]` or `REGISTRY/REPO[:TAG][@sha256:HEX]`.
fn parse_named(image: &str) -> Result<Image, String> {
    let (named, digest) = match image.split_once('@') {
        Some((named, digest)) => (named, Some(valid_digest(digest)?)),
        None => (image, None),
    };
    // A tag is after the last ':' of the last path component (a registry's port has its own).
    let last = named.rfind('/').map_or(0, |slash| slash + 1);
    let (path, tag) = match named[last..].rfind(':') {
        Some(colon) => (&named[..last + colon], Some(&named[last + colon + 1..])),
        None => (named, None),
    };
    if let Some(tag) = tag {
        valid_tag(tag)?;
    }
    // Docker's rule: a digest wins over a tag written beside it.
    let reference = match (digest, tag) {
        (Some(digest), _) => Reference::Digest(digest),
        (None, Some(tag)) => Reference::Tag(tag.to_string()),
        (None, None) => Reference::Tag("latest".into()),
    };
    let Some((first, repository)) = path.split_once('/') else {
        valid_module_name(path)?;
        return Ok(Image::Module(ModuleRef {
            name: path.to_string(),
            reference,
        }));
    };
    if !(first.contains('.') || first.contains(':') || first == "localhost") {
        return Err(format!(
            "{image:?} names no registry: write REGISTRY/REPOSITORY:TAG (e.g. 127.0.0.1:5000/{path}:1.0); flotilla has no default registry"
        ));
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    };
    if !repository.split('/').all(component_ok) {
        return Err(format!(
            "repository {repository:?} is not valid: lower-case letters, digits, '.', '_' and '-', separated by '/'"
        ));
    }
    Ok(Image::Oci(OciRef {
        registry: first.to_string(),
        repository: repository.to_string(),
        reference,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, reference: Reference) -> Image {
        Image::Module(ModuleRef {
            name: name.into(),
            reference,
        })
    }

    #[test]
    fn module_references() {
        let tag = |t: &str| Reference::Tag(t.into());
        assert_eq!(
            Image::parse("hello").unwrap(),
            module("hello", tag("latest"))
        );
        assert_eq!(
            Image::parse("hello:v1").unwrap(),
            module("hello", tag("v1"))
        );
        let hex = "A".repeat(64);
        let digest = Reference::Digest(format!("sha256:{}", "a".repeat(64)));
        assert_eq!(
            Image::parse(&format!("hello@sha256:{hex}")).unwrap(),
            module("hello", digest.clone())
        );
        assert_eq!(
            Image::parse(&format!("hello:v1@sha256:{hex}")).unwrap(),
            module("hello", digest)
        );
        for bad in [
            "Hello",
            "hello:",
            "hello:-x",
            "hello@sha256:12",
            "hello@md5:00",
            "",
        ] {
            assert!(Image::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_references() {
        let oci = |registry: &str, repository: &str, reference: Reference| {
            Image::Oci(OciRef {
                registry: registry.into(),
                repository: repository.into(),
                reference,
            })
        };
        assert_eq!(
            Image::parse("127.0.0.1:5000/hello:1.0").unwrap(),
            oci("127.0.0.1:5000", "hello", Reference::Tag("1.0".into()))
        );
        assert_eq!(
            Image::parse("oci://localhost/wasm/hello").unwrap(),
            oci("localhost", "wasm/hello", Reference::Tag("latest".into()))
        );
        assert_eq!(
            Image::parse("registry.example/a/b:x").unwrap(),
            oci("registry.example", "a/b", Reference::Tag("x".into()))
        );
        let refused = Image::parse("library/hello").unwrap_err();
        assert!(refused.contains("no registry"), "{refused}");
        assert!(Image::parse("oci://hello").is_err());
        assert!(Image::parse("ftp://x/y").is_err());
    }

    #[test]
    fn pull_policy_follows_kubernetes() {
        assert_eq!(default_pull_policy("hello"), "Always");
        assert_eq!(default_pull_policy("hello:latest"), "Always");
        assert_eq!(default_pull_policy("hello:v1"), "IfNotPresent");
        let pinned = format!("hello@sha256:{}", "0".repeat(64));
        assert_eq!(default_pull_policy(&pinned), "IfNotPresent");
        assert_eq!(default_pull_policy("127.0.0.1:5000/hello"), "Always");
        assert_eq!(
            default_pull_policy("127.0.0.1:5000/hello:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("file:///x/hello.wasm"), "IfNotPresent");
        assert_eq!(default_pull_policy("http://h/x.wasm"), "IfNotPresent");
    }
}
