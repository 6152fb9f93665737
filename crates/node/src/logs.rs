//! Container logs: one file per container run, under `pods/{ns}_{pod}_{uid}/{container}/N.log`
//! (N = restart count, so `--previous` reads N-1), served over HTTP at
//! `/containerLogs/{ns}/{pod}/{container}` for the apiserver to proxy, as a kubelet serves them.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Where container logs are kept, and which are still being written.
#[derive(Clone)]
pub struct LogStore {
    root: PathBuf,
    live: Arc<Mutex<HashSet<PathBuf>>>,
}

impl LogStore {
    pub fn new(root: PathBuf) -> Self {
        LogStore {
            root,
            live: Arc::default(),
        }
    }

    /// Opens (appending) the log of one run of a container and marks it live.
    pub fn open(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        run: i32,
    ) -> std::io::Result<(PathBuf, std::fs::File)> {
        let dir = self
            .root
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{run}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        self.live
            .lock()
            .expect("log registry poisoned")
            .insert(path.clone());
        Ok((path, file))
    }

    /// The run whose log this was has ended: followers stop at its end.
    pub fn finished(&self, path: &Path) {
        self.live
            .lock()
            .expect("log registry poisoned")
            .remove(path);
    }

    fn is_live(&self, path: &Path) -> bool {
        self.live
            .lock()
            .expect("log registry poisoned")
            .contains(path)
    }

    /// Removes the logs of a deleted pod.
    pub fn forget_pod(&self, uid: &str) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(&format!("_{uid}"))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// The log file of the latest (or, with `previous`, the one before) run of a container of
    /// the newest pod with that name.
    fn find(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<PathBuf> {
        let prefix = format!("{namespace}_{pod}_");
        let pod_dir = std::fs::read_dir(&self.root)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
            .path();
        let mut runs: Vec<i64> = std::fs::read_dir(pod_dir.join(container))
            .ok()?
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        runs.sort_unstable();
        let path_of = |run: &i64| pod_dir.join(container).join(format!("{run}.log"));
        let latest = path_of(runs.last()?);
        if !previous {
            return Some(latest);
        }
        // The previous run is the one before a running container's, or the latest if the
        // container is not running now (waiting to restart).
        if self.is_live(&latest) {
            runs.iter().rev().nth(1).map(path_of)
        } else {
            Some(latest)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    previous: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

pub async fn serve(listener: tokio::net::TcpListener, store: LogStore) {
    let app = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            axum::routing::get(container_log),
        )
        .with_state(store);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "node log endpoint failed");
    }
}

async fn container_log(
    State(store): State<LogStore>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let Some(path) = store.find(&namespace, &pod, &container, query.previous) else {
        let message = if query.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" has not started on this node yet")
        };
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let mut content = match tokio::fs::read(&path).await {
        Ok(content) => content,
        Err(error) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading {}: {error}", path.display()),
            )
                .into_response();
        }
    };
    let offset = content.len() as u64;
    if let Some(lines) = query.tail_lines {
        content = tail(&content, lines).to_vec();
    }
    if let Some(limit) = query.limit_bytes {
        content.truncate(limit);
    }
    if !query.follow {
        return (StatusCode::OK, content).into_response();
    }
    let stream = futures::stream::unfold(
        (Some(content), offset, store, path),
        |(first, offset, store, path)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, std::io::Error>(first), (None, offset, store, path)));
            }
            loop {
                let live = store.is_live(&path);
                let mut file = tokio::fs::File::open(&path).await.ok()?;
                file.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
                let mut more = Vec::new();
                file.read_to_end(&mut more).await.ok()?;
                if !more.is_empty() {
                    let next = offset + more.len() as u64;
                    return Some((Ok(more), (None, next, store, path)));
                }
                if !live {
                    return None;
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        },
    );
    (StatusCode::OK, Body::from_stream(stream)).into_response()
}

/// The last `lines` lines of `content`.
fn tail(content: &[u8], lines: usize) -> &[u8] {
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut newlines = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i);
    match lines.checked_sub(1).and_then(|skip| newlines.nth(skip)) {
        Some(i) => &content[i + 1..],
        None if lines == 0 => &[],
        None => content,
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_takes_whole_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }
}
