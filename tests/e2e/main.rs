//! End-to-end tests: the real `flotilla` binary, real wasmtime, a real redb file, the real
//! kubectl. One test binary with modules keeps link time down.

mod bad_input;
mod cli;
mod clients;
mod dashboard;
mod deployments;
mod durability;
mod functions;
mod hostile;
mod images;
mod kubectl_apply;
mod kubectl_commands;
mod modules;
mod node_failure;
mod nodes;
mod oci;
mod pod_spec;
mod pods;
mod probes;
mod services;
mod static_pods;
mod termination;
mod watch;
mod workloads_batch;

use std::time::Duration;

/// Generous bound for pod transitions: they take milliseconds, but CI machines stall.
pub const SETTLE: Duration = Duration::from_secs(30);

/// The path of a sample manifest.
pub fn manifest(name: &str) -> String {
    flotilla_e2e::repo_root()
        .join("wasm-samples/manifests")
        .join(name)
        .display()
        .to_string()
}
