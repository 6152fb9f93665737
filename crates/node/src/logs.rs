//! Container logs: one file per container run, under `pods/{ns}_{pod}_{uid}/{container}/N.log`
//! (N = restart count, so `--previous` reads N-1), served over HTTP at
//! `/containerLogs/{ns}/{pod}/{container}` for the apiserver to proxy, as a kubelet serves them.
//!
//! The files hold timestamped records ([`crate::log_file`]); the endpoint shows them as the
//! kubelet does: the text alone, or with `timestamps=true` each line after its RFC 3339
//! timestamp, and honours `sinceSeconds`/`sinceTime`, `tailLines`, `limitBytes` (over the
//! whole response, followed or not), `follow` and `previous` in any combination.

use crate::log_file::{self, Timestamp, View, ViewOptions, timestamp};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// How many runs of a container keep their log files (this one and the ones before).
const RUNS_KEPT: i32 = 5;

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
        // Keep the logs of the last few runs only, as the kubelet keeps a bounded number of
        // rotated files: a container that restarts forever must not fill the disk.
        if let Some(expired) = run.checked_sub(RUNS_KEPT) {
            let _ = std::fs::remove_file(dir.join(format!("{expired}.log")));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        // The file exists already when an agent restarted under a running pod; one written
        // before records had timestamps may end mid-line, and this run's records must start
        // on a line of their own.
        if ends_mid_line(&path)? {
            file.write_all(b"\n")?;
        }
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

/// Whether the log at `path` ends in the middle of a line.
fn ends_mid_line(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(std::io::SeekFrom::End(-1))?;
    let mut last = [0];
    file.read_exact(&mut last)?;
    Ok(last != *b"\n")
}

/// The query of `/containerLogs/...`, as the apiserver forwards it from `pods/{name}/log`
/// (which has already checked the values; this endpoint only refuses what it cannot use).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    previous: bool,
    #[serde(default)]
    timestamps: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
    since_seconds: Option<u64>,
    since_time: Option<String>,
}

impl LogQuery {
    /// The oldest line to show, from `sinceSeconds` (counted back from `now`) or `sinceTime`.
    fn since(&self, now: SystemTime) -> Result<Option<Timestamp>, String> {
        match (self.since_seconds, &self.since_time) {
            (Some(_), Some(_)) => {
                Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(seconds), None) => {
                let since = now
                    .checked_sub(Duration::from_secs(seconds))
                    .unwrap_or(UNIX_EPOCH);
                Ok(Some(timestamp(since)))
            }
            (None, Some(time)) => {
                let time: jiff::Timestamp = time.parse().map_err(|error| {
                    format!("sinceTime: {time:?} is not an RFC 3339 time: {error}")
                })?;
                Ok(Some(timestamp(time.into())))
            }
            (None, None) => Ok(None),
        }
    }
}

/// The log endpoint's routes, apart from serving them so that tests can call them directly.
pub fn router(store: LogStore) -> Router {
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            axum::routing::get(container_log),
        )
        .with_state(store)
}

async fn container_log(
    State(store): State<LogStore>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let since = match query.since(SystemTime::now()) {
        Ok(since) => since,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let Some(path) = store.find(&namespace, &pod, &container, query.previous) else {
        let message = if query.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" has not started on this node yet")
        };
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    // Asked before reading: a run that ends after this has its last records read by the next
    // poll of a follower, never lost.
    let live = store.is_live(&path);
    let (content, modified) = match read_log(&path).await {
        Ok(read) => read,
        Err(error) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading {}: {error}", path.display()),
            )
                .into_response();
        }
    };
    // A live log may end in a record still being written: leave it for the next read.
    let complete = if live {
        whole_lines(&content)
    } else {
        content.len()
    };
    let lines = &content[..complete];
    let start = query
        .tail_lines
        .map_or(0, |lines_wanted| log_file::tail_start(lines, lines_wanted));
    let mut follower = Follower {
        view: View::new(ViewOptions {
            timestamps: query.timestamps,
            since,
            bare_lines_written_by: modified.map(timestamp),
        }),
        budget: query.limit_bytes.unwrap_or(usize::MAX),
        offset: complete as u64,
        store,
        path,
    };
    let first = follower.render(&lines[start..]);
    if !query.follow || follower.budget == 0 {
        return (StatusCode::OK, first).into_response();
    }
    let rest = futures::stream::unfold(follower, Follower::next);
    let stream = futures::stream::once(async { Ok(first) }).chain(rest);
    (StatusCode::OK, Body::from_stream(stream)).into_response()
}

/// A log being followed (`follow=true`): where it has been read to, and how it is shown.
struct Follower {
    view: View,
    /// What is left of `limitBytes`, which bounds the whole response, not each chunk.
    budget: usize,
    offset: u64,
    store: LogStore,
    path: PathBuf,
}

impl Follower {
    /// Renders whole lines of the log, spending their size from the budget.
    fn render(&mut self, lines: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.view.render(lines, &mut out, self.budget);
        out.truncate(self.budget);
        self.budget -= out.len();
        out
    }

    /// The next chunk of output: waits for new records while the run lasts, and ends when it
    /// is over (or the log is gone, or the budget is spent).
    async fn next(mut self) -> Option<(std::io::Result<Vec<u8>>, Follower)> {
        while self.budget > 0 {
            let live = self.store.is_live(&self.path);
            let more = read_from(&self.path, self.offset).await.ok()?;
            let complete = if live { whole_lines(&more) } else { more.len() };
            if complete > 0 {
                self.offset += complete as u64;
                let chunk = self.render(&more[..complete]);
                if !chunk.is_empty() {
                    return Some((Ok(chunk), self));
                }
                // Everything new was older than `since`: look again at once.
                continue;
            }
            if !live {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
        None
    }
}

/// A log file and when it was last written.
async fn read_log(path: &Path) -> std::io::Result<(Vec<u8>, Option<SystemTime>)> {
    let content = tokio::fs::read(path).await?;
    let modified = tokio::fs::metadata(path).await?.modified().ok();
    Ok((content, modified))
}

async fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut more = Vec::new();
    file.read_to_end(&mut more).await?;
    Ok(more)
}

/// The length of the whole lines at the start of `content`.
fn whole_lines(content: &[u8]) -> usize {
    content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_file::log_streams;
    use axum::http::Request;
    use tower::ServiceExt;

    #[test]
    fn only_the_last_runs_keep_their_logs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().join("pods"));
        for run in 0..8 {
            store.open("ns", "p", "u", "c", run).unwrap();
        }
        let mut kept: Vec<String> = std::fs::read_dir(dir.path().join("pods/ns_p_u/c"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(kept, ["3.log", "4.log", "5.log", "6.log", "7.log"]);
    }

    fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().join("pods"));
        (dir, store)
    }

    async fn get(store: &LogStore, query: &str) -> (StatusCode, String) {
        let request = Request::get(format!("/containerLogs/ns/pod/c?{query}"))
            .body(Body::empty())
            .unwrap();
        let response = router(store.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// A finished run with one line from 2020 and two from just now.
    fn finished_run(store: &LogStore) -> String {
        let (path, mut file) = store.open("ns", "pod", "uid", "c", 0).unwrap();
        let now = timestamp(SystemTime::now());
        let now = std::str::from_utf8(&now).unwrap();
        write!(
            file,
            "2020-01-01T00:00:00.000000000Z stdout F old\n\
             {now} stdout F new 1\n\
             {now} stderr F new 2\n"
        )
        .unwrap();
        store.finished(&path);
        now.to_string()
    }

    #[tokio::test]
    async fn timestamps_since_tail_and_limit_combine() {
        let (_dir, store) = store();
        let now = finished_run(&store);
        let cases = [
            ("", "old\nnew 1\nnew 2\n".to_string()),
            (
                "timestamps=true",
                format!("2020-01-01T00:00:00.000000000Z old\n{now} new 1\n{now} new 2\n"),
            ),
            ("sinceSeconds=3600", "new 1\nnew 2\n".into()),
            (
                "sinceTime=2021-01-01T00%3A00%3A00Z",
                "new 1\nnew 2\n".into(),
            ),
            (
                "sinceTime=2019-06-01T12:00:00%2B02:00",
                "old\nnew 1\nnew 2\n".into(),
            ),
            ("tailLines=1&timestamps=true", format!("{now} new 2\n")),
            ("tailLines=3&sinceSeconds=3600", "new 1\nnew 2\n".into()),
            ("tailLines=0", String::new()),
            ("limitBytes=6&sinceSeconds=60", "new 1\n".into()),
            ("limitBytes=5&timestamps=true", "2020-".into()),
            ("follow=true&tailLines=2", "new 1\nnew 2\n".into()),
        ];
        for (query, expected) in cases {
            assert_eq!(
                get(&store, query).await,
                (StatusCode::OK, expected),
                "{query}"
            );
        }
    }

    #[tokio::test]
    async fn bad_values_are_refused_with_a_reason() {
        let (_dir, store) = store();
        finished_run(&store);
        for (query, reason) in [
            ("sinceSeconds=soon", "sinceSeconds"),
            ("sinceTime=yesterday", "not an RFC 3339 time"),
            (
                "sinceSeconds=1&sinceTime=2021-01-01T00:00:00Z",
                "at most one",
            ),
            ("tailLines=-1", "tailLines"),
            ("timestamps=yes", "timestamps"),
        ] {
            let (status, body) = get(&store, query).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            assert!(body.contains(reason), "{query}: {body}");
        }
    }

    #[tokio::test]
    async fn follow_streams_lines_as_the_guest_writes_them_until_its_run_ends() {
        let (_dir, store) = store();
        let (path, file) = store.open("ns", "pod", "uid", "c", 0).unwrap();
        let (stdout, stderr) = log_streams(file, u64::MAX);
        stdout.write_bytes(b"before\n").unwrap();
        let follow = tokio::spawn({
            let store = store.clone();
            async move { get(&store, "follow=true&timestamps=true&sinceSeconds=60").await }
        });
        tokio::time::sleep(FOLLOW_POLL * 2).await;
        stdout.write_bytes(b"during, in ").unwrap();
        stderr.write_bytes(b"err\n").unwrap();
        stdout.write_bytes(b"two writes\nunfinished").unwrap();
        drop((stdout, stderr));
        store.finished(&path);
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), follow)
            .await
            .expect("the follower ended with the run")
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<&str> = body.lines().collect();
        let texts: Vec<&str> = lines.iter().map(|l| &l[31..]).collect();
        assert_eq!(
            texts,
            ["before", "err", "during, in two writes", "unfinished"]
        );
        for line in lines {
            assert!(line[..30].parse::<jiff::Timestamp>().is_ok(), "{line}");
        }
    }

    #[tokio::test]
    async fn limit_bytes_bounds_a_followed_log_as_a_whole() {
        let (_dir, store) = store();
        let (path, file) = store.open("ns", "pod", "uid", "c", 0).unwrap();
        let (stdout, _stderr) = log_streams(file, u64::MAX);
        stdout.write_bytes(b"12345\n").unwrap();
        let follow = tokio::spawn({
            let store = store.clone();
            async move { get(&store, "follow=true&limitBytes=10").await }
        });
        tokio::time::sleep(FOLLOW_POLL * 2).await;
        stdout.write_bytes(b"67890\nabcdef\n").unwrap();
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), follow)
            .await
            .expect("the follower stopped at the limit while the run goes on")
            .unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "12345\n6789"));
        store.finished(&path);
    }

    #[tokio::test]
    async fn logs_written_before_timestamps_are_still_served() {
        let (_dir, store) = store();
        let (path, mut file) = store.open("ns", "pod", "uid", "c", 0).unwrap();
        file.write_all(b"old line\nold unfinished").unwrap();
        drop(file);
        store.finished(&path);
        assert_eq!(
            get(&store, "timestamps=true").await.1,
            "old line\nold unfinished"
        );
        assert_eq!(get(&store, "tailLines=1").await.1, "old unfinished");
        assert_eq!(
            get(&store, "sinceSeconds=3600").await.1,
            "old line\nold unfinished",
            "the file was written within the hour"
        );

        // An upgraded agent appends this run's records on a line of their own.
        let (path, file) = store.open("ns", "pod", "uid", "c", 0).unwrap();
        let (stdout, _) = log_streams(file, u64::MAX);
        stdout.write_bytes(b"new line\n").unwrap();
        store.finished(&path);
        assert_eq!(
            get(&store, "").await.1,
            "old line\nold unfinished\nnew line\n"
        );
        let (_, with_timestamps) = get(&store, "timestamps=true").await;
        assert!(
            with_timestamps.starts_with("old line\nold unfinished\n20"),
            "{with_timestamps}"
        );
    }
}
