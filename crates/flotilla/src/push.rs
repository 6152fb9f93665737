//! `flotilla push FILE NAME[:TAG]`: uploads a Wasm module to the cluster and points a tag of
//! the `Module` object NAME (flotilla.dev/v1, in the namespace) at it, so pods can run it as
//! `NAME:TAG` or, pinned, `NAME@sha256:DIGEST`.
//!
//! The bytes go first, to the apiserver's content-addressed blob store (skipped when it has
//! that digest already), and the tag moves only once they are stored durably, so a pod never
//! sees a tag whose bytes are missing.

use crate::user::Connection;
use anyhow::{Context, Result, bail};
use flotilla_api::image::{Image, Reference};
use http_body_util::BodyExt as _;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct PushArgs {
    /// The .wasm file: a WASI preview 1 module or a WASI 0.2 component.
    file: PathBuf,
    /// The module's name and tag, NAME:TAG (TAG defaults to latest).
    reference: String,
    #[command(flatten)]
    connection: Connection,
}

/// Uploads above this size show progress while they go.
const LARGE: usize = 4 * 1024 * 1024;

pub async fn push(args: PushArgs) -> Result<()> {
    let (name, tag) = match Image::parse(&args.reference) {
        Ok(Image::Module(module)) => match module.reference {
            Reference::Tag(tag) => (module.name, tag),
            Reference::Digest(_) => {
                bail!(
                    "push names a tag, not a digest: write NAME:TAG (the digest is computed from the file)"
                )
            }
        },
        Ok(_) => bail!(
            "{:?} is not a module name: write NAME:TAG, e.g. hello:v1 (flotilla push uploads to the cluster, not to a registry)",
            args.reference
        ),
        Err(why) => bail!("{:?}: {why}", args.reference),
    };
    let file = args.file.display().to_string();
    let metadata = std::fs::metadata(&args.file).with_context(|| format!("reading {file}"))?;
    if !metadata.is_file() {
        bail!("{file} is not a regular file");
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {file}"))?;
    // Refused here, before any upload: the apiserver would refuse it too, after the transfer.
    if !bytes.starts_with(b"\0asm") {
        bail!(
            "{file} is not a WebAssembly module or component (it does not start with \\0asm); build it for wasm32-wasip1 or wasm32-wasip2"
        );
    }
    let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
    let size = bytes.len() as u64;

    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let blob =
        format!("/apis/flotilla.dev/v1/namespaces/{namespace}/modules/{name}/blobs/{digest}");
    let (present, _) = send(&client, http::Method::HEAD, &blob, Vec::new()).await?;
    if present.is_success() {
        eprintln!("{namespace}/{name}: the cluster has {digest} already; not uploading it again");
    } else {
        upload(&client, &blob, bytes, &file).await?;
    }
    tag_module(&client, &namespace, &name, &tag, &digest, size).await?;

    println!("pushed {file} as {namespace}/{name}:{tag}");
    println!("  digest: {digest}");
    println!("  size:   {size} bytes");
    println!("run it with image: {name}:{tag}   (pinned: {name}@{digest})");
    Ok(())
}

/// PUTs the bytes; for large files a line on stderr says how the upload goes meanwhile.
async fn upload(client: &kube::Client, path: &str, bytes: Vec<u8>, file: &str) -> Result<()> {
    let size = bytes.len();
    let started = Instant::now();
    // kube's request body is sent whole, so what can be shown is time and the overall rate.
    let progress = (size > LARGE).then(|| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            loop {
                every.tick().await;
                eprintln!(
                    "  uploading {:.1} MiB… {}s",
                    size as f64 / 1048576.0,
                    started.elapsed().as_secs()
                );
            }
        })
    });
    if progress.is_some() {
        eprintln!("uploading {file} ({:.1} MiB)", size as f64 / 1048576.0);
    }
    let outcome = send(client, http::Method::PUT, path, bytes).await;
    if let Some(progress) = progress {
        progress.abort();
        eprintln!(
            "  uploaded {:.1} MiB in {:.1}s",
            size as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
    }
    let (status, body) = outcome?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|s| s["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("the apiserver refused the upload ({status}): {message}");
    }
    Ok(())
}

/// One raw request through the kube client (same credentials and transport as every command).
async fn send(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(http::StatusCode, Vec<u8>)> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/wasm")
        .body(kube::client::Body::from(body))?;
    let response = client
        .send(request)
        .await
        .context("sending the module to the apiserver")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the apiserver's answer")?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}

/// Creates the Module if needed and points `tag` at the digest, retrying when another push
/// changes the object between our read and write.
async fn tag_module(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    tag: &str,
    digest: &str,
    size: u64,
) -> Result<()> {
    let resource = ApiResource {
        group: "flotilla.dev".into(),
        version: "v1".into(),
        api_version: "flotilla.dev/v1".into(),
        kind: "Module".into(),
        plural: "modules".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let pushed = jiff::Timestamp::now()
        .round(jiff::Unit::Second)?
        .to_string();
    let entry = serde_json::json!({"name": tag, "digest": digest, "size": size, "pushed": pushed});
    let version = serde_json::json!({"digest": digest, "size": size, "pushed": pushed});
    for _ in 0..10 {
        let result = match api.get_opt(name).await? {
            None => {
                let mut module = DynamicObject::new(name, &resource).within(namespace);
                module.data = serde_json::json!({"spec": {"tags": [entry], "blobs": [version]}});
                api.create(&PostParams::default(), &module).await
            }
            Some(mut module) => {
                let tags = module.data["spec"]["tags"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut tags: Vec<serde_json::Value> =
                    tags.into_iter().filter(|t| t["name"] != tag).collect();
                tags.push(entry.clone());
                module.data["spec"]["tags"] = serde_json::Value::Array(tags);
                // Every version stays listed, so images pinned to it keep resolving.
                let mut versions = module.data["spec"]["blobs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !versions.iter().any(|v| v["digest"] == digest) {
                    versions.push(version.clone());
                }
                module.data["spec"]["blobs"] = serde_json::Value::Array(versions);
                api.replace(name, &PostParams::default(), &module).await
            }
        };
        match result {
            Ok(_) => return Ok(()),
            // Someone else wrote it meanwhile: read again and redo the change.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("tagging module {namespace}/{name}"));
            }
        }
    }
    bail!("module {namespace}/{name} kept changing while it was tagged; push again")
}
