//! Wasm artifacts in an OCI registry: Debian's `docker-registry` (distribution 2.8) on a
//! loopback port, the hello module pushed into it as an OCI artifact over the distribution API,
//! then pulled by a pod as `127.0.0.1:PORT/wasm/hello:1.0`. A tag the registry lacks is
//! `ErrImagePull`/`ImagePullBackOff` with the registry's reason.

use crate::SETTLE;
use crate::pods::checked_apply;
use anyhow::{Context, bail};
use flotilla_e2e::{Cluster, modules_dir, wait_until};
use sha2::Digest as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` on a free loopback port with its storage in a temporary
/// directory, killed when dropped.
struct Registry {
    process: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> anyhow::Result<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            bail!(
                "{REGISTRY_BIN} is missing: run scripts/setup, which installs Debian's docker-registry package"
            );
        }
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {address}}}\n",
                dir.path().join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let process = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let registry = Registry {
            process,
            address,
            _dir: dir,
        };
        wait_until(
            Duration::from_secs(20),
            "the registry to answer /v2/",
            || {
                Ok(registry
                    .request("GET", "/v2/", &[], &[])
                    .is_ok_and(|(status, _, _)| status == 200))
            },
        )?;
        Ok(registry)
    }

    /// One HTTP/1.1 request with a binary body; returns the status, head and body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(u16, String, Vec<u8>)> {
        let mut stream = TcpStream::connect(&self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no end of the HTTP head")?;
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        Ok((status, head, raw[end + 4..].to_vec()))
    }

    /// Uploads a blob (monolithic upload: POST, then PUT with the digest); returns its digest.
    fn push_blob(&self, repository: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        let (status, head, _) = self.request(
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            &[],
            &[],
        )?;
        anyhow::ensure!(
            status == 202,
            "starting an upload answered {status}: {head}"
        );
        let location = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
            })
            .map(|(_, v)| v.trim().to_string())
            .context("no Location for the upload")?;
        let path = match location.find("/v2/") {
            Some(start) => location[start..].to_string(),
            None => location,
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let (status, head, _) = self.request(
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )?;
        anyhow::ensure!(
            status == 201,
            "finishing an upload answered {status}: {head}"
        );
        Ok(digest)
    }

    /// Pushes `wasm` as an OCI artifact (an image manifest with one `application/wasm` layer),
    /// tagged `tag`; returns the layer's digest.
    fn push_wasm(&self, repository: &str, tag: &str, wasm: &[u8]) -> anyhow::Result<String> {
        let config = b"{}";
        let config_digest = self.push_blob(repository, config)?;
        let layer_digest = self.push_blob(repository, wasm)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": layer_digest, "size": wasm.len()}],
        });
        let (status, head, body) = self.request(
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.to_string().as_bytes(),
        )?;
        anyhow::ensure!(
            status == 201,
            "pushing the manifest answered {status}: {head}\n{}",
            String::from_utf8_lossy(&body)
        );
        Ok(layer_digest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn pod(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{restartPolicy: Never, containers: [{{name: c, image: \"{image}\"}}]}}\n"
    )
}

#[test]
fn a_wasm_artifact_runs_from_an_oci_registry_and_a_missing_tag_says_so() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let hello = std::fs::read(modules_dir().join("hello.wasm"))?;
    let layer = registry.push_wasm("wasm/hello", "1.0", &hello)?;
    let cluster = Cluster::start(1)?;

    let image = format!("{}/wasm/hello:1.0", registry.address);
    checked_apply(&cluster, &pod("from-registry", &image))?;
    cluster.wait_for_field("pod/from-registry", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "from-registry"])?;
    assert!(logs.contains("Hello from flotilla!"), "{logs}");
    assert_eq!(
        cluster.field("pod/from-registry", ".status.containerStatuses[0].imageID"),
        layer
    );

    let missing = format!("{}/wasm/hello:9.9", registry.address);
    checked_apply(&cluster, &pod("missing-tag", &missing))?;
    let waiting = ".status.containerStatuses[0].state.waiting";
    let mut message = String::new();
    wait_until(SETTLE, "the missing tag to be reported", || {
        message = cluster.field("pod/missing-tag", &format!("{waiting}.message"));
        Ok(message.contains("MANIFEST_UNKNOWN"))
    })
    .with_context(|| format!("last message: {message:?}"))?;
    assert!(message.contains("no manifest wasm/hello:9.9"), "{message}");
    let reason = cluster.field("pod/missing-tag", &format!("{waiting}.reason"));
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{reason}"
    );
    Ok(())
}
