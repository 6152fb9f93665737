//! `?watch=true`: one JSON event per line, from the requested revision on, for as long as the
//! client stays (or `timeoutSeconds`).
//!
//! Without a resourceVersion (or with "0") the watch starts with a synthetic `ADDED` for every
//! current object, as Kubernetes does; with one, it replays the store's history after that
//! revision. A revision older than the kept history answers an `ERROR` event with a 410 Status,
//! which tells informers to list again.

use crate::error::{ApiError, Result};
use crate::path::ResourceRequest;
use crate::rest::{Query, Selectors};
use crate::{ApiState, table};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_api::resource::ResourceType;
use flotilla_api::{ApiStatus, meta};
use flotilla_store::{Event, EventKind};
use futures::StreamExt;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;

/// How long a watch lasts when the client gives no `timeoutSeconds` (Kubernetes picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub async fn serve(
    state: &ApiState,
    request: &ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response> {
    let selectors = Selectors::from_query(query)?;
    let resource_version = query.get("resourceVersion").filter(|v| !v.is_empty());
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(t.parse().map_err(|_| {
            ApiError(ApiStatus::bad_request(format!(
                "timeoutSeconds must be a whole number, not {t:?}"
            )))
        })?),
        None => DEFAULT_TIMEOUT,
    };
    let prefix = request.prefix();
    let (initial, from) = match resource_version.map(String::as_str) {
        Some(rv) if rv != "0" && !send_initial => {
            let revision = meta::parse_revision(rv).ok_or_else(|| {
                ApiError(ApiStatus::bad_request(format!(
                    "resourceVersion must be a revision number, not {rv:?}"
                )))
            })?;
            (Vec::new(), revision)
        }
        _ => {
            let (objects, revision) = state.store().list(&prefix).await?;
            let matching: Vec<Value> = objects
                .into_iter()
                .filter(|o| selectors.matches(o))
                .collect();
            (matching, revision)
        }
    };
    let live = match state.store().watch(&prefix, from).await {
        Ok(live) => live,
        Err(flotilla_store::Error::Compacted { requested, oldest }) => {
            let status =
                ApiStatus::gone(format!("too old resource version: {requested} ({oldest})"));
            let line = encode("ERROR", &status.to_json());
            return Ok(stream_response(futures::stream::iter([line]).boxed()));
        }
        Err(other) => return Err(other.into()),
    };
    let view = View {
        resource: request.resource,
        selectors,
        as_table: table::wanted(headers),
        query: query.clone(),
    };
    let mut opening: Vec<Bytes> = initial.iter().map(|o| view.encode("ADDED", o)).collect();
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    if send_initial && bookmarks {
        opening.push(encode("BOOKMARK", &bookmark(request.resource, from, true)));
    }
    let every = bookmarks.then_some(state.inner.bookmark_interval);
    let events = with_bookmarks(live, view, every).take_until(tokio::time::sleep(timeout));
    Ok(stream_response(
        futures::stream::iter(opening).chain(events).boxed(),
    ))
}

/// The watch's events as lines, with a `BOOKMARK` carrying the revision the watch has caught
/// up to every `every` (when the client allows them), so that a client's resourceVersion keeps
/// up with the store even when nothing it watches changes.
fn with_bookmarks(
    live: flotilla_store::WatchStream,
    view: View,
    every: Option<Duration>,
) -> impl futures::Stream<Item = Bytes> + Send {
    let ticks = every.map(|every| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    futures::stream::unfold(
        (live, view, ticks, 0u64),
        |(mut live, view, mut ticks, mut last_bookmark)| async move {
            loop {
                let tick = async {
                    match ticks.as_mut() {
                        Some(ticks) => ticks.tick().await,
                        None => std::future::pending().await,
                    }
                };
                let line = tokio::select! {
                    item = live.next() => match item? {
                        Ok(event) => view.transition(&event),
                        Err(error) => {
                            tracing::info!(%error, "ending a watch that fell behind");
                            let status = ApiStatus::gone(format!("the watch fell behind the event stream ({error}); watch again from a newer resourceVersion"));
                            Some(encode("ERROR", &status.to_json()))
                        }
                    },
                    _ = tick => {
                        let progress = live.progress();
                        (progress > last_bookmark).then(|| {
                            last_bookmark = progress;
                            encode("BOOKMARK", &bookmark(view.resource, progress, false))
                        })
                    }
                };
                if let Some(line) = line {
                    return Some((line, (live, view, ticks, last_bookmark)));
                }
            }
        },
    )
}

/// What one watcher sees: an object entering its selector reads as `ADDED`, one leaving it as
/// `DELETED`, as Kubernetes reports them; each event's previous object says which it is.
struct View {
    resource: &'static ResourceType,
    selectors: Selectors,
    as_table: bool,
    query: Query,
}

impl View {
    fn transition(&self, event: &Event) -> Option<Bytes> {
        let now = self.selectors.matches(&event.object);
        let before = event
            .previous
            .as_deref()
            .is_some_and(|p| self.selectors.matches(p));
        let kind = match (event.kind, before, now) {
            (EventKind::Deleted, true, _) => "DELETED",
            (EventKind::Deleted, false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        Some(self.encode(kind, &event.object))
    }

    fn encode(&self, kind: &str, object: &Value) -> Bytes {
        if self.as_table {
            let revision = meta::resource_version(object)
                .and_then(meta::parse_revision)
                .unwrap_or(0);
            let rendered = table::render(
                self.resource,
                std::slice::from_ref(object),
                revision,
                &self.query,
            );
            encode(kind, &rendered)
        } else {
            encode(kind, object)
        }
    }
}

/// A bookmark: an object of the watched kind with only a resourceVersion (and, closing the
/// initial events of `sendInitialEvents`, the annotation that says so).
fn bookmark(resource: &ResourceType, revision: u64, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata})
}

fn encode(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON values encode");
    line.push(b'\n');
    Bytes::from(line)
}

fn stream_response(lines: futures::stream::BoxStream<'static, Bytes>) -> Response {
    let body = Body::from_stream(lines.map(Ok::<_, Infallible>));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
