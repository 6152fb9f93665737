//! Resolving a container's `image` to the bytes of a Wasm module (see
//! [`flotilla_api::image`] for the reference syntax).
//!
//! - `file:///abs/path/app.wasm`: a file on the node;
//! - `http://host[:port]/path/app.wasm[@sha256:HEX]`: downloaded (see [`http`]), checked
//!   against the digest when one is given;
//! - `NAME[:TAG]`, `NAME@sha256:HEX`: a module pushed to the cluster, fetched from the
//!   apiserver ([`cluster`]). A bare name or `:latest` that the pod's namespace has no
//!   `Module` tag for falls back to `NAME.wasm` in the node's module directories (the samples
//!   `flotilla up` points at), so manifests work from any checkout; a pushed tag wins, as it
//!   is what someone deliberately put in the cluster;
//! - `REGISTRY/REPOSITORY[:TAG|@sha256:HEX]`: a Wasm artifact in an OCI registry ([`oci`]).
//!
//! Pushed and registry modules are kept on the node by digest ([`cache`]), with the digest
//! each tag last resolved to, and `imagePullPolicy` says when to look a tag up again, as the
//! kubelet does: `IfNotPresent` uses the digest the node has for the tag, `Always` asks again
//! at every start (cheap: the bytes are fetched only for a digest the node lacks), `Never`
//! uses only what the node has and otherwise fails with `ErrImageNeverPull`.

mod cache;
mod cluster;
mod http;
mod oci;
mod tls;

use flotilla_api::image::{Image, ModuleRef, OciRef, Reference};
use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why an image could not be fetched; becomes `ErrImagePull` (or `ErrImageNeverPull`) with
/// this message.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("module file {path} could not be read: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no module named {name:?} in namespace {namespace} and none in the node's module directories ({searched}); push one with `flotilla push FILE {name}:TAG` or use a file:///absolute/path.wasm image"
    )]
    NotFound {
        name: String,
        namespace: String,
        searched: String,
    },
    #[error(
        "no module named {name:?} in namespace {namespace}; push it with `flotilla push FILE {name}:{tag}`"
    )]
    NoSuchModule {
        name: String,
        namespace: String,
        tag: String,
    },
    #[error(
        "module {namespace}/{name} has no tag {tag:?} (its tags: {tags}); push it with `flotilla push FILE {name}:{tag}`"
    )]
    NoSuchTag {
        name: String,
        namespace: String,
        tag: String,
        tags: String,
    },
    #[error(
        "image {image:?} is not present on this node and its imagePullPolicy is Never; pull it once with IfNotPresent or Always"
    )]
    NeverPull { image: String },
    #[error("image {0:?} is not supported: {1}")]
    Unsupported(String, String),
    #[error("image {image:?} is malformed: {why}")]
    BadReference { image: String, why: String },
    #[error("downloading {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "the module downloaded from {url} has digest sha256:{actual}, not the sha256:{expected} the image pins; it changed or was tampered with"
    )]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "module file {path} is {size} bytes, over this node's limit of {max} bytes (--max-module-size)"
    )]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("module file {path} is not a regular file")]
    NotAFile { path: String },
}

impl PullError {
    /// The container's waiting reason, as the kubelet names it.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::NeverPull { .. } => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// One image to fetch, with what decides how: the pod's namespace (where pushed modules are
/// looked up) and the container's pull policy.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub image: String,
    pub namespace: String,
    pub policy: PullPolicy,
}

impl ImageRequest {
    /// The request for one container of a pod. The apiserver defaults `imagePullPolicy`; a
    /// pod without one (written before that default, or by a test) gets the same default.
    pub fn of(pod: &Pod, container: &Container) -> Self {
        let image = container.image.clone().unwrap_or_default();
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| flotilla_api::image::default_pull_policy(&image).to_string());
        ImageRequest {
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            policy: match policy.as_str() {
                "Always" => PullPolicy::Always,
                "Never" => PullPolicy::Never,
                _ => PullPolicy::IfNotPresent,
            },
            image,
        }
    }
}

#[derive(Clone)]
pub struct Resolver {
    module_dirs: Vec<PathBuf>,
    max_size: u64,
    cluster: Option<cluster::ClusterModules>,
    cache: cache::Cache,
    /// One lock per digest being downloaded, so a thousand replicas of a new module starting
    /// at once fetch it once: the others wait, then find it in the cache.
    downloads: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Registries spoken to over plain HTTP besides those on loopback.
    insecure_registries: Arc<[String]>,
    /// How `https://` images are fetched: Mozilla's roots and the node's `--image-ca`s.
    tls: Option<tls::Tls>,
}

impl Resolver {
    /// Finds bare names in `module_dirs` and refuses module files over `max_size` bytes. Pushed
    /// modules need [`Resolver::with_cluster`]; nothing is kept across restarts without
    /// [`Resolver::with_cache`].
    pub fn new(module_dirs: Vec<PathBuf>, max_size: u64) -> Self {
        Resolver {
            module_dirs,
            max_size,
            cluster: None,
            cache: cache::Cache::in_memory_only(),
            downloads: Arc::default(),
            insecure_registries: Arc::new([]),
            tls: tls::Tls::new(&[] as &[&str]).ok(),
        }
    }

    /// Trusts the certificate authorities in these PEM files too, for `https://` images
    /// served with a private CA.
    pub fn with_image_cas(mut self, files: &[PathBuf]) -> Result<Self, String> {
        self.tls = Some(tls::Tls::new(files)?);
        Ok(self)
    }

    /// Fetches pushed modules from the apiserver `client` talks to.
    pub fn with_cluster(mut self, client: kube::Client) -> Self {
        self.cluster = Some(cluster::ClusterModules::new(client));
        self
    }

    /// Keeps fetched modules, and what their tags last resolved to, in `dir`.
    pub fn with_cache(mut self, dir: PathBuf) -> Self {
        self.cache = cache::Cache::on_disk(dir);
        self
    }

    /// Pulls from these registries (`host[:port]`) over plain HTTP too, not only from
    /// loopback ones.
    pub fn with_insecure_registries(mut self, registries: Vec<String>) -> Self {
        self.insecure_registries = registries.into();
        self
    }

    /// The bytes of the module a container's image names.
    pub async fn fetch(&self, request: &ImageRequest) -> Result<Vec<u8>, PullError> {
        let image = request.image.as_str();
        let parsed = Image::parse(image).map_err(|why| PullError::BadReference {
            image: image.to_string(),
            why,
        })?;
        match parsed {
            Image::File(path) => self.read_file(&PathBuf::from(path)).await,
            Image::Http(_) => {
                let tls = self.tls.as_ref().ok_or_else(|| PullError::Download {
                    url: image.to_string(),
                    reason: "this node has no TLS configuration".into(),
                })?;
                http::HttpImage::parse(image)?
                    .download(self.max_size, tls)
                    .await
            }
            Image::Module(module) => self.pushed_module(request, &module).await,
            Image::Oci(reference) => self.registry_module(request, &reference).await,
        }
    }

    /// A module pushed to the cluster, else (for `latest`) a sample module of the node.
    async fn pushed_module(
        &self,
        request: &ImageRequest,
        module: &ModuleRef,
    ) -> Result<Vec<u8>, PullError> {
        let (namespace, name) = (request.namespace.as_str(), module.name.as_str());
        let key = format!("module {namespace} {name} {}", module.reference.as_str());
        let found = match &self.cluster {
            None => None,
            Some(cluster) => {
                let resolve = async {
                    match &module.reference {
                        Reference::Digest(digest) => Ok(Some(digest.clone())),
                        Reference::Tag(tag) => {
                            match cluster.resolve_tag(namespace, name, tag).await {
                                // The node's sample stands in for a `latest` nobody pushed.
                                Err(
                                    PullError::NoSuchModule { .. } | PullError::NoSuchTag { .. },
                                ) if tag == "latest" => Ok(None),
                                other => other.map(Some),
                            }
                        }
                    }
                };
                let download = |digest: String| async move {
                    cluster
                        .download(namespace, name, &digest, self.max_size)
                        .await
                };
                self.through_cache(request, &key, resolve, download).await?
            }
        };
        if let Some(bytes) = found {
            return Ok(bytes);
        }
        // Nothing pushed under that name and tag: a sample of the node's, which counts as
        // present even for `Never`, as an image preloaded on a node does.
        match &module.reference {
            Reference::Tag(tag) if tag == "latest" => match self.locate_sample(name, namespace) {
                Ok(path) => self.read_file(&path).await,
                Err(_) if request.policy == PullPolicy::Never => Err(PullError::NeverPull {
                    image: request.image.clone(),
                }),
                Err(missing) => Err(missing),
            },
            _ if request.policy == PullPolicy::Never => Err(PullError::NeverPull {
                image: request.image.clone(),
            }),
            _ => Err(PullError::Unsupported(
                request.image.clone(),
                "this node has no API client to fetch pushed modules with".into(),
            )),
        }
    }

    /// A Wasm artifact in an OCI registry.
    async fn registry_module(
        &self,
        request: &ImageRequest,
        reference: &OciRef,
    ) -> Result<Vec<u8>, PullError> {
        let registry = oci::Registry::new(&request.image, reference, &self.insecure_registries)?;
        let key = format!(
            "oci {}/{} {}",
            reference.registry,
            reference.repository,
            reference.reference.as_str()
        );
        let resolve = async { registry.wasm_layer(self.max_size).await.map(Some) };
        let download = |digest: String| {
            let registry = &registry;
            async move { registry.blob(&digest, self.max_size).await }
        };
        let found = self.through_cache(request, &key, resolve, download).await?;
        found.ok_or_else(|| PullError::NeverPull {
            image: request.image.clone(),
        })
    }

    /// The pull policy over the node's cache: the digest `key` (a tag, or a digest that
    /// needs no lookup) names, from the cache unless the policy says to look again, then the
    /// bytes of that digest, from the cache when present, else downloaded and checked.
    /// `Ok(None)` when `resolve` finds nothing, or when `Never` finds nothing cached.
    async fn through_cache<R, D, F>(
        &self,
        request: &ImageRequest,
        key: &str,
        resolve: R,
        download: D,
    ) -> Result<Option<Vec<u8>>, PullError>
    where
        R: Future<Output = Result<Option<String>, PullError>>,
        D: FnOnce(String) -> F,
        F: Future<Output = Result<Vec<u8>, PullError>>,
    {
        if request.policy != PullPolicy::Always
            && let Some(digest) = self.cache.tag(key).await
            && let Some(bytes) = self.cache.blob(&digest).await
        {
            return Ok(Some(bytes));
        }
        if request.policy == PullPolicy::Never {
            // The caller says why: a sample may still stand in for `NAME:latest`.
            return Ok(None);
        }
        let Some(digest) = resolve.await? else {
            return Ok(None);
        };
        let bytes = match self.cache.blob(&digest).await {
            Some(bytes) => bytes,
            None => {
                let gate = self
                    .downloads
                    .lock()
                    .expect("download gates poisoned")
                    .entry(digest.clone())
                    .or_default()
                    .clone();
                let _downloading = gate.lock().await;
                if let Some(bytes) = self.cache.blob(&digest).await {
                    // Another start downloaded it while this one waited.
                    self.cache.set_tag(key, &digest).await;
                    return Ok(Some(bytes));
                }
                let bytes = download(digest.clone()).await?;
                let actual = format!("{:x}", Sha256::digest(&bytes));
                let expected = digest.trim_start_matches("sha256:");
                if actual != expected {
                    return Err(PullError::DigestMismatch {
                        url: request.image.clone(),
                        expected: expected.to_string(),
                        actual,
                    });
                }
                self.cache.put_blob(&digest, &bytes).await;
                bytes
            }
        };
        self.cache.set_tag(key, &digest).await;
        Ok(Some(bytes))
    }

    /// Reads a module file. A file over the size cap is refused before it is read, and so is
    /// anything but a regular file (`/dev/zero` would never end); the read itself stops at
    /// the cap in case the file grows meanwhile.
    async fn read_file(&self, path: &Path) -> Result<Vec<u8>, PullError> {
        use tokio::io::AsyncReadExt as _;
        let shown = || path.display().to_string();
        let unreadable = |source| PullError::Unreadable {
            path: shown(),
            source,
        };
        let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
        let metadata = file.metadata().await.map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(PullError::NotAFile { path: shown() });
        }
        let too_large = |size| PullError::TooLarge {
            path: shown(),
            size,
            max: self.max_size,
        };
        if metadata.len() > self.max_size {
            return Err(too_large(metadata.len()));
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        file.take(self.max_size.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(unreadable)?;
        if bytes.len() as u64 > self.max_size {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// `NAME.wasm` in the first module directory that has it.
    fn locate_sample(&self, name: &str, namespace: &str) -> Result<PathBuf, PullError> {
        let file = format!("{name}.wasm");
        self.module_dirs
            .iter()
            .map(|dir| dir.join(&file))
            .find(|candidate| Path::new(candidate).is_file())
            .ok_or_else(|| PullError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
                searched: if self.module_dirs.is_empty() {
                    "none configured".into()
                } else {
                    self.module_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(image: &str, policy: PullPolicy) -> ImageRequest {
        ImageRequest {
            image: image.into(),
            namespace: "default".into(),
            policy,
        }
    }

    #[tokio::test]
    async fn names_resolve_in_module_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
        let resolver = Resolver::new(
            vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()],
            1 << 20,
        );
        for image in ["hello", "hello:latest"] {
            for policy in [PullPolicy::Always, PullPolicy::Never] {
                let bytes = resolver.fetch(&request(image, policy)).await.unwrap();
                assert_eq!(bytes, b"\0asm");
            }
        }
        let missing = resolver.fetch(&request("nope", PullPolicy::Always)).await;
        assert!(
            matches!(missing, Err(PullError::NotFound { .. })),
            "{missing:?}"
        );
        let never = resolver
            .fetch(&request("hello:v2", PullPolicy::Never))
            .await;
        assert_eq!(never.unwrap_err().reason(), "ErrImageNeverPull");
        let file = format!("file://{}", dir.path().join("hello.wasm").display());
        let bytes = resolver.fetch(&request(&file, PullPolicy::Never)).await;
        assert_eq!(bytes.unwrap(), b"\0asm");
        let bad = resolver.fetch(&request("Hello", PullPolicy::Always)).await;
        assert!(
            matches!(bad, Err(PullError::BadReference { .. })),
            "{bad:?}"
        );
    }

    #[tokio::test]
    async fn the_cache_serves_tags_unless_the_policy_is_always() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = Resolver::new(Vec::new(), 1 << 20).with_cache(dir.path().to_path_buf());
        let module = b"\0asm\x01\0\0\0".to_vec();
        let digest = format!("sha256:{:x}", Sha256::digest(&module));
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let pull = |policy| {
            let module = module.clone();
            let digest = digest.clone();
            let fetches = &fetches;
            let resolver = &resolver;
            async move {
                let request = request("hello:v1", policy);
                let resolve = async {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(Some(digest))
                };
                let download = |_| async { Ok(module) };
                resolver
                    .through_cache(&request, "k", resolve, download)
                    .await
            }
        };
        assert!(pull(PullPolicy::Never).await.unwrap().is_none());
        assert!(pull(PullPolicy::IfNotPresent).await.unwrap().is_some());
        assert!(pull(PullPolicy::IfNotPresent).await.unwrap().is_some());
        assert!(pull(PullPolicy::Never).await.unwrap().is_some());
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(pull(PullPolicy::Always).await.unwrap().is_some());
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);

        // A restarted node finds both the tag and the bytes on disk.
        let again = Resolver::new(Vec::new(), 1 << 20).with_cache(dir.path().to_path_buf());
        assert_eq!(again.cache.tag("k").await, Some(digest.clone()));
        assert_eq!(again.cache.blob(&digest).await, Some(module));
    }

    #[tokio::test]
    async fn concurrent_starts_download_a_new_digest_once() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = Resolver::new(Vec::new(), 1 << 20).with_cache(dir.path().to_path_buf());
        let module = b"\0asm\x01\0\0\0".to_vec();
        let digest = format!("sha256:{:x}", Sha256::digest(&module));
        let downloads = std::sync::atomic::AtomicUsize::new(0);
        let start = || async {
            let request = request("hello:v1", PullPolicy::Always);
            let resolve = async { Ok(Some(digest.clone())) };
            let download = |_| async {
                downloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(module.clone())
            };
            resolver
                .through_cache(&request, "k", resolve, download)
                .await
        };
        let results = futures::future::join_all((0..20).map(|_| start())).await;
        assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));
        assert_eq!(downloads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn downloads_that_do_not_match_their_digest_are_refused() {
        let resolver = Resolver::new(Vec::new(), 1 << 20);
        let request = request("hello:v1", PullPolicy::Always);
        let resolve = async { Ok(Some(format!("sha256:{}", "0".repeat(64)))) };
        let download = |_| async { Ok(b"\0asm".to_vec()) };
        let refused = resolver
            .through_cache(&request, "k", resolve, download)
            .await;
        assert!(
            matches!(refused, Err(PullError::DigestMismatch { .. })),
            "{refused:?}"
        );
    }
}
