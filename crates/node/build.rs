//! Records the version of wasmtime this agent is built with (from the workspace's
//! Cargo.lock; wasmtime exports no version constant), for the Node's
//! `status.nodeInfo.containerRuntimeVersion`.

fn main() {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    println!("cargo::rerun-if-changed={}", lock.display());
    let version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let at = text.find("\nname = \"wasmtime\"\nversion = \"")?;
            let rest = &text[at + "\nname = \"wasmtime\"\nversion = \"".len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=FLOTILLA_WASMTIME_VERSION={version}");
}
