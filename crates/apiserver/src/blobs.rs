//! The bytes of pushed modules: content-addressed blobs beside the store, uploaded and served
//! at `/apis/flotilla.dev/v1/namespaces/{ns}/modules/{name}/blobs/sha256:{hex}`.
//!
//! Blobs are files (`{dir}/sha256/{hex}`), not redb values: a module is up to
//! `--max-module-size` (256Mi), and a value that large would stall the store's single writer
//! (every other write waits behind its transaction) and be copied through memory whole on each
//! read, where a file streams. Content addressing makes files crash-safe without a journal: an
//! upload goes to a temporary file, is checked against the digest in its URL, fsynced, renamed
//! into place and the directory fsynced, and only then acknowledged, so an acknowledged push
//! survives SIGKILL and a torn one leaves only a temporary file. Two uploads of one digest
//! write the same bytes, so the later rename is harmless.
//!
//! `PUT` does not need the `Module` object to exist yet (push uploads, then tags, as OCI
//! registries do); `GET` serves a blob only through a Module in that namespace that lists it
//! (`spec.blobs`) or tags it, so a namespace's modules are read through its own objects. Deleting a Module leaves its
//! blobs on disk: nothing collects unreferenced blobs yet.

use crate::ApiState;
use crate::error::{ApiError, Result};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::ApiStatus;
use flotilla_api::resource;
use http_body_util::BodyExt as _;
use sha2::{Digest as _, Sha256};
use std::path::{Path as FsPath, PathBuf};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The route of one blob of one module.
pub const ROUTE: &str =
    "/apis/flotilla.dev/v1/namespaces/{namespace}/modules/{name}/blobs/{digest}";

/// Where blobs live and how large one may be.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    max_size: u64,
}

impl BlobStore {
    /// Blobs under `dir` (created as needed), each at most `max_size` bytes. Uploads a crash
    /// cut short are removed: nobody was told they were stored, and the store's lock makes
    /// this server the only one using the directory.
    pub fn new(dir: PathBuf, max_size: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("sha256"))?;
        let uploads = dir.join("uploads");
        if uploads.exists() {
            std::fs::remove_dir_all(&uploads)?;
        }
        std::fs::create_dir_all(&uploads)?;
        Ok(BlobStore { dir, max_size })
    }

    fn path(&self, hex: &str) -> PathBuf {
        self.dir.join("sha256").join(hex)
    }
}

/// `sha256:HEX` in the URL, as the 64 lower-case hex digits.
fn hex_of(digest: &str) -> Result<String> {
    flotilla_api::image::valid_digest(digest)
        .map(|d| d["sha256:".len()..].to_string())
        .map_err(|why| ApiError(ApiStatus::bad_request(why)))
}

fn store_of(state: &ApiState) -> Result<&BlobStore> {
    state.inner.blobs.as_ref().ok_or_else(|| {
        ApiError(ApiStatus::service_unavailable(
            "this apiserver keeps no module blobs (it was started without a data directory)",
        ))
    })
}

/// `PUT`: stores the body as the blob its URL names, refusing bytes that are too many, are not
/// Wasm, or do not hash to that digest.
pub async fn put(
    State(state): State<ApiState>,
    Path((namespace, name, digest)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    respond(upload(&state, &namespace, &name, &digest, request).await)
}

/// `HEAD`: whether the blob is stored, so a push can skip the upload.
pub async fn head(
    State(state): State<ApiState>,
    Path((_, _, digest)): Path<(String, String, String)>,
) -> Response {
    let found = async {
        let hex = hex_of(&digest)?;
        let path = store_of(&state)?.path(&hex);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(meta.len()),
            Err(_) => Err(ApiError(ApiStatus::not_found("", "blobs", &digest))),
        }
    }
    .await;
    match found {
        Ok(size) => (StatusCode::OK, [(header::CONTENT_LENGTH, size.to_string())]).into_response(),
        // HEAD answers carry no body: the code says it all.
        Err(error) => StatusCode::from_u16(error.0.code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
    }
}

/// `GET`: the blob's bytes, if the Module lists it.
pub async fn get(
    State(state): State<ApiState>,
    Path((namespace, name, digest)): Path<(String, String, String)>,
) -> Response {
    respond(download(&state, &namespace, &name, &digest).await)
}

fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn upload(
    state: &ApiState,
    namespace: &str,
    name: &str,
    digest: &str,
    request: Request,
) -> Result<Response> {
    let hex = hex_of(digest)?;
    flotilla_api::image::valid_module_name(name)
        .map_err(|why| ApiError(ApiStatus::bad_request(why)))?;
    let blobs = store_of(state)?;
    let too_large = |size: &str| {
        ApiError(ApiStatus::too_large(format!(
            "the module is {size} bytes, over this cluster's limit of {} bytes (flotilla up --max-module-size)",
            blobs.max_size
        )))
    };
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = announced.filter(|size| *size > blobs.max_size) {
        return Err(too_large(&size.to_string()));
    }
    let temporary = blobs
        .dir
        .join("uploads")
        .join(uuid::Uuid::new_v4().to_string());
    let written = receive(blobs, &temporary, request.into_body()).await;
    let outcome = match written {
        Ok(Received::TooLarge) => Err(too_large(&format!("more than {}", blobs.max_size))),
        Ok(Received::Done { size, actual, head }) => {
            if !head.starts_with(b"\0asm") {
                Err(ApiError(ApiStatus::bad_request(
                    "the upload is not a WebAssembly module or component (it does not start with \\0asm)",
                )))
            } else if actual != hex {
                Err(ApiError(ApiStatus::bad_request(format!(
                    "the uploaded bytes have digest sha256:{actual}, not the sha256:{hex} in the URL: the upload was corrupted or cut short; push again"
                ))))
            } else {
                commit(blobs, &temporary, &hex).await.map(|existed| {
                    let code = if existed {
                        StatusCode::OK
                    } else {
                        StatusCode::CREATED
                    };
                    tracing::info!(%namespace, module = %name, digest = %format!("sha256:{hex}"), size, "module blob stored");
                    let answer = serde_json::json!({"digest": format!("sha256:{hex}"), "size": size});
                    (code, axum::Json(answer)).into_response()
                })
            }
        }
        Err(error) => Err(error),
    };
    // Whatever happened, the temporary file is gone afterwards (renamed or removed).
    let _ = tokio::fs::remove_file(&temporary).await;
    outcome
}

enum Received {
    Done {
        size: u64,
        actual: String,
        head: Vec<u8>,
    },
    TooLarge,
}

/// Streams the body into `path`, hashing as it goes and stopping past the size cap; the file
/// is fsynced before this returns, so a rename publishes durable bytes.
async fn receive(blobs: &BlobStore, path: &FsPath, mut body: Body) -> Result<Received> {
    let io = |e: std::io::Error| internal("writing an uploaded module blob", e);
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head = Vec::with_capacity(4);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError(ApiStatus::bad_request(format!(
                "the upload was interrupted: {e}; push again"
            )))
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        size += data.len() as u64;
        if size > blobs.max_size {
            return Ok(Received::TooLarge);
        }
        if head.len() < 4 {
            head.extend(data.iter().take(4 - head.len()));
        }
        hasher.update(data);
        file.write_all(data).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    Ok(Received::Done {
        size,
        actual: format!("{:x}", hasher.finalize()),
        head,
    })
}

/// Renames a verified upload into place and fsyncs the directory so the name is durable too.
/// Returns whether the blob was there already.
async fn commit(blobs: &BlobStore, temporary: &FsPath, hex: &str) -> Result<bool> {
    let io = |e: std::io::Error| internal("storing a module blob", e);
    let target = blobs.path(hex);
    let existed = tokio::fs::try_exists(&target).await.unwrap_or(false);
    if !existed {
        tokio::fs::rename(temporary, &target).await.map_err(io)?;
        let dir = blobs.dir.join("sha256");
        tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
            .await
            .map_err(|e| internal("syncing the blob directory", std::io::Error::other(e)))?
            .map_err(io)?;
    }
    Ok(existed)
}

async fn download(state: &ApiState, namespace: &str, name: &str, digest: &str) -> Result<Response> {
    let hex = hex_of(digest)?;
    let blobs = store_of(state)?;
    let modules = resource::lookup("flotilla.dev", "v1", "modules").expect("modules are served");
    let module = state
        .store()
        .get(&modules.key(namespace, name))
        .await?
        .ok_or_else(|| ApiError(ApiStatus::not_found("flotilla.dev", "modules", name)))?;
    let wanted = format!("sha256:{hex}");
    // Tagged now, or pushed before (a digest pinned in a pod outlives its tag moving).
    let tagged = ["/spec/tags", "/spec/blobs"].iter().any(|list| {
        module
            .pointer(list)
            .and_then(serde_json::Value::as_array)
            .is_some_and(|entries| entries.iter().any(|e| e["digest"] == wanted.as_str()))
    });
    let not_here = || {
        let mut status = ApiStatus::not_found("flotilla.dev", "modules", name);
        status.message = format!(
            "module {namespace}/{name} has no version {wanted}; `kubectl get module {name} -n {namespace} -o yaml` lists its tags and blobs"
        );
        ApiError(status)
    };
    if !tagged {
        return Err(not_here());
    }
    let file = match tokio::fs::File::open(blobs.path(&hex)).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut status = not_here().0;
            status.message = format!(
                "module {namespace}/{name} names {wanted}, but its bytes were never uploaded to this cluster; push it again"
            );
            return Err(ApiError(status));
        }
        Err(e) => return Err(internal("opening a module blob", e)),
    };
    let size = file
        .metadata()
        .await
        .map_err(|e| internal("reading a module blob", e))?
        .len();
    // Streamed in chunks: a large module need not fit in memory once per reader.
    let stream = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(bytes::Bytes::from(buffer)), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        "docker-content-digest",
        HeaderValue::from_str(&wanted).expect("hex digits"),
    );
    Ok(response)
}

fn internal(what: &str, error: std::io::Error) -> ApiError {
    tracing::error!(%error, "{what}");
    ApiError(ApiStatus::internal(format!(
        "{what} failed; see the apiserver log"
    )))
}
