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

    let config = args.connection.config().await?;
    let client = kube::Client::try_from(config.clone()).context("building the API client")?;
    let namespace = args.connection.namespace(&client);
    let blob =
        format!("/apis/flotilla.dev/v1/namespaces/{namespace}/modules/{name}/blobs/{digest}");
    let (present, _) = send(&client, http::Method::HEAD, &blob, Vec::new()).await?;
    if present.is_success() {
        eprintln!("{namespace}/{name}: the cluster has {digest} already; not uploading it again");
    } else {
        upload(&client, &config, &blob, bytes, &file).await?;
    }
    tag_module(&client, &namespace, &name, &tag, &digest, size).await?;

    println!("pushed {file} as {namespace}/{name}:{tag}");
    println!("  digest: {digest}");
    println!("  size:   {size} bytes");
    println!("run it with image: {name}:{tag}   (pinned: {name}@{digest})");
    Ok(())
}

/// PUTs the bytes, showing progress for large files.
async fn upload(
    client: &kube::Client,
    config: &kube::Config,
    path: &str,
    bytes: Vec<u8>,
    file: &str,
) -> Result<()> {
    let size = bytes.len();
    let (status, body) = if size > LARGE && config.cluster_url.scheme_str() == Some("http") {
        eprintln!("uploading {file} ({:.1} MiB)", mib(size));
        let started = Instant::now();
        let answer = stream_with_progress(config, path, bytes).await?;
        if answer.0.is_success() {
            eprintln!("  uploaded in {:.1}s", started.elapsed().as_secs_f64());
        }
        answer
    } else {
        send(client, http::Method::PUT, path, bytes).await?
    };
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|s| s["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("the apiserver refused the upload ({status}): {message}");
    }
    Ok(())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// kube's client sends a request body in one piece, which leaves nothing to show while it
/// goes; so a large upload to a plain-HTTP cluster (what flotilla serves today) is streamed
/// over HTTP/1.1 straight to the server the kubeconfig names, with its token, printing how
/// much has been handed to the connection at most once a second.
async fn stream_with_progress(
    config: &kube::Config,
    path: &str,
    bytes: Vec<u8>,
) -> Result<(http::StatusCode, Vec<u8>)> {
    use secrecy::ExposeSecret as _;
    let url = &config.cluster_url;
    let authority = url
        .authority()
        .context("the kubeconfig's server URL has no host")?
        .to_string();
    // A server URL may carry a path prefix (a proxy in front of the apiserver).
    let target = format!("{}{path}", url.path().trim_end_matches('/'));
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .with_context(|| format!("connecting to the apiserver at {authority}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("talking HTTP to the apiserver")?;
    tokio::spawn(connection);

    const CHUNK: usize = 256 * 1024;
    let size = bytes.len();
    let bytes = bytes::Bytes::from(bytes);
    let mut shown = Instant::now();
    let frames = (0..size).step_by(CHUNK).map(move |start| {
        let chunk = bytes.slice(start..(start + CHUNK).min(size));
        let sent = start + chunk.len();
        if sent == size || shown.elapsed() >= Duration::from_secs(1) {
            shown = Instant::now();
            eprintln!(
                "  {:>3}%  {:.1} of {:.1} MiB",
                sent * 100 / size,
                mib(sent),
                mib(size)
            );
        }
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk))
    });
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let mut request = http::Request::put(target)
        .header(http::header::HOST, &authority)
        .header(http::header::CONTENT_TYPE, "application/wasm")
        .header(http::header::CONTENT_LENGTH, size)
        .header(http::header::USER_AGENT, "flotilla-push");
    if let Some(token) = &config.auth_info.token {
        request = request.header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose_secret()),
        );
    }
    let response = sender
        .send_request(request.body(body)?)
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
