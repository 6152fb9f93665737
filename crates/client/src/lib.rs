//! flotilla-client: how every flotilla component and command talks to the apiserver.
//!
//! One typed client — [`kube::Client`] over the Kubernetes types of [`k8s_openapi`] — used by
//! the CLI, the scheduler, node agents and controllers. kube-rs is the well-kept Rust
//! Kubernetes client; building on it means flotilla's own components exercise the API exactly
//! as third-party clients do, and its `runtime` module gives informers (list, then watch from
//! the returned resourceVersion, relisting on 410) instead of polling.
//!
//! Two transports, same semantics:
//! - [`connect`]: over HTTP, from a kubeconfig (as kubectl finds it);
//! - [`in_process`]: calling the apiserver's router directly as a `tower::Service`, used by
//!   `flotilla up` to skip loopback TCP. Requests still go through authentication, validation
//!   and the store's revisions.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use k8s_openapi::api::core::v1::Pod;
//! let client = flotilla_client::connect(None).await?;
//! let pods: kube::Api<Pod> = kube::Api::default_namespaced(client);
//! for pod in pods.list(&Default::default()).await? {
//!     println!("{}", pod.metadata.name.unwrap_or_default());
//! }
//! # Ok(()) }
//! ```

pub mod events;
pub mod kubeconfig;

pub use k8s_openapi;
pub use kube;

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where a kubeconfig is looked for when none is named: `$KUBECONFIG`, then the default data
/// directory of `flotilla up` in the current directory, then `~/.kube/config`.
pub fn find_kubeconfig(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let first = std::env::split_paths(&env).next().unwrap_or_default();
        return Ok(first);
    }
    let local = PathBuf::from("flotilla-data/kubeconfig");
    if local.exists() {
        return Ok(local);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let path = PathBuf::from(home).join(".kube/config");
        if path.exists() {
            return Ok(path);
        }
    }
    anyhow::bail!(
        "no kubeconfig found: pass --kubeconfig PATH, set KUBECONFIG, or run from the directory where `flotilla up` wrote flotilla-data/kubeconfig"
    )
}

/// A client for the cluster a kubeconfig names (see [`find_kubeconfig`]).
pub async fn connect(explicit: Option<&Path>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config(explicit).await?).context("building the API client")
}

/// The client configuration a kubeconfig gives (see [`find_kubeconfig`]), for the rare
/// request kube's client cannot make (`flotilla push` streams large uploads itself).
pub async fn config(explicit: Option<&Path>) -> anyhow::Result<kube::Config> {
    let path = find_kubeconfig(explicit)?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))
}

/// A client that calls `router` in process, presenting `token` as a remote client would.
pub fn in_process(router: axum::Router, token: Option<String>) -> kube::Client {
    use tower::ServiceExt;
    let authorization = token
        .map(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).expect("tokens are ASCII"));
    let service = router.map_request(move |mut request: http::Request<kube::client::Body>| {
        if let Some(value) = &authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        request
    });
    kube::Client::new(service, "default")
}
