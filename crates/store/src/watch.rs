//! Watches: replay of the history table, then the live broadcast, without gaps or repeats.
//!
//! The writer publishes every committed revision, in order, on one broadcast channel. A watcher
//! subscribes to it *before* it reads history, so a revision is either in the history it reads
//! or arrives on the channel afterwards (the writer publishes only after the commit). It keeps a
//! cursor, the highest revision it has handled: live events at or below the cursor were already
//! replayed and are skipped. Because every revision is published, live revisions arrive
//! consecutively; a jump past `cursor + 1` means the channel overflowed and dropped events this
//! watcher needed, which ends the stream with [`Error::Lagged`]. An overflow that only dropped
//! events already replayed from history is harmless and goes unnoticed, as it should.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use redb::{Database, ReadableDatabase};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::codec::{self, HISTORY};
use crate::error::{Error, Result};

/// History records read per redb read transaction during replay. Bounded so that a replay of a
/// long history neither holds one read transaction (and the pages it pins) for long nor loads
/// the whole history into memory.
const REPLAY_CHUNK: usize = 1024;

/// What a change did to its key.
#[derive(Clone, Debug, PartialEq, Eq, Copy)]
pub enum EventKind {
    /// The key had no object before this revision.
    Added,
    /// The key's object was replaced.
    Modified,
    /// The key's object was removed.
    Deleted,
}

/// One committed change, as watchers see it.
#[derive(Clone, Debug)]
pub struct Event {
    /// The revision of the change; also `metadata.resourceVersion` of `object`.
    pub revision: u64,
    pub kind: EventKind,
    pub key: String,
    /// The object after the change. For [`EventKind::Deleted`], the last stored object with its
    /// `metadata.resourceVersion` set to the deletion's revision, as Kubernetes reports deletes.
    /// Shared, because every watcher of the key receives the same object.
    pub object: Arc<Value>,
    /// The object before the change: `None` for [`EventKind::Added`]. Lets a watcher with a
    /// selector tell an object that stopped matching from one it never saw.
    pub previous: Option<Arc<Value>>,
}

/// The changes under a prefix, in revision order, each once. Returned by
/// [`crate::Store::watch`].
///
/// Ends after yielding [`Error::Lagged`] (fell behind the live stream), [`Error::Compacted`]
/// (fell behind history compaction while replaying) or [`Error::Closed`] (store shut down).
pub struct WatchStream {
    inner: Pin<Box<dyn Stream<Item = Result<Event>> + Send>>,
    progress: Arc<AtomicU64>,
}

impl WatchStream {
    /// Every revision up to this one has been handed out by this stream or did not concern
    /// it: a watcher that has consumed everything yielded so far is current at this revision.
    /// This is what a Kubernetes watch bookmark reports; it advances with writes under other
    /// prefixes too, so a quiet watch's resourceVersion does not fall behind compaction.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Acquire)
    }
}

impl Stream for WatchStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

/// Starts a watch. `live` must have been subscribed before this is called (see the module docs).
/// The first history chunk is read here so that a compacted `from_revision` fails the call
/// itself rather than the stream.
pub(crate) async fn start(
    db: &Arc<Database>,
    live: broadcast::Receiver<Arc<Event>>,
    prefix: &str,
    from_revision: u64,
) -> Result<WatchStream> {
    let progress = Arc::new(AtomicU64::new(from_revision));
    let mut watcher = Watcher {
        progress: progress.clone(),
        prefix: prefix.into(),
        // Weak, so that a forgotten watch stream does not keep the database file open after
        // the store is closed.
        db: Arc::downgrade(db),
        live,
        cursor: from_revision,
        pending: VecDeque::new(),
        replaying: true,
        finished: false,
    };
    watcher.replay_chunk().await?;
    let inner = futures::stream::unfold(watcher, |mut watcher| async move {
        let item = watcher.next().await?;
        Some((item, watcher))
    });
    Ok(WatchStream {
        inner: Box::pin(inner),
        progress,
    })
}

struct Watcher {
    /// Shared with the [`WatchStream`]: see [`WatchStream::progress`].
    progress: Arc<AtomicU64>,
    prefix: Arc<str>,
    db: Weak<Database>,
    live: broadcast::Receiver<Arc<Event>>,
    /// Every revision up to here has been delivered or filtered out.
    cursor: u64,
    /// Replayed events not yet handed out.
    pending: VecDeque<Event>,
    /// Still reading history (the last chunk was full, so more may follow).
    replaying: bool,
    finished: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.publish_progress();
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if self.replaying {
                if let Err(error) = self.replay_chunk().await {
                    return self.finish(error);
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.revision <= self.cursor => {}
                Ok(event) if event.revision != self.cursor + 1 => {
                    return self.finish(Error::Lagged);
                }
                Ok(event) => {
                    self.cursor = event.revision;
                    self.publish_progress();
                    if event.key.starts_with(&*self.prefix) {
                        return Some(Ok(Arc::unwrap_or_clone(event)));
                    }
                }
                // The receiver skipped to the oldest event still buffered; whether we lost
                // anything we needed shows in that event's revision (the arms above).
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return self.finish(Error::Closed),
            }
        }
    }

    /// Everything before the next pending event, or up to the cursor, is handed out.
    fn publish_progress(&self) {
        let handed_out = match self.pending.front() {
            Some(next) => next.revision - 1,
            None => self.cursor,
        };
        self.progress.store(handed_out, Ordering::Release);
    }

    fn finish(&mut self, error: Error) -> Option<Result<Event>> {
        self.finished = true;
        Some(Err(error))
    }

    /// Reads the next chunk of history after the cursor into `pending`.
    async fn replay_chunk(&mut self) -> Result<()> {
        let db = self.db.upgrade().ok_or(Error::Closed)?;
        let prefix = self.prefix.clone();
        let after = self.cursor;
        // A chunk parses up to REPLAY_CHUNK objects; keep that off the async workers.
        let chunk =
            tokio::task::spawn_blocking(move || read_history(&db, &prefix, after, REPLAY_CHUNK))
                .await??;
        self.cursor = chunk.cursor;
        self.pending.extend(chunk.events);
        self.replaying = !chunk.at_end;
        self.publish_progress();
        Ok(())
    }
}

struct Chunk {
    events: Vec<Event>,
    /// The last revision read (whether or not its key matched).
    cursor: u64,
    /// History had fewer than `limit` records after `after`.
    at_end: bool,
}

/// Reads up to `limit` history records after revision `after`, keeping those under `prefix`.
fn read_history(db: &Database, prefix: &str, after: u64, limit: usize) -> Result<Chunk> {
    let txn = db.begin_read()?;
    codec::ensure_history_after(&txn, after)?;
    let history = txn.open_table(HISTORY)?;
    let range = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
    let mut chunk = Chunk {
        events: Vec::new(),
        cursor: after,
        at_end: true,
    };
    for (read, entry) in history.range::<u64>(range)?.enumerate() {
        if read == limit {
            chunk.at_end = false;
            break;
        }
        let (revision, record) = entry?;
        let revision = revision.value();
        let record = record.value();
        let record = codec::decode_event(record)?;
        chunk.cursor = revision;
        if record.key.starts_with(prefix) {
            chunk.events.push(Event {
                revision,
                kind: record.kind,
                key: record.key.to_owned(),
                object: Arc::new(codec::decode_object(record.object_json)?),
                previous: record
                    .previous_json
                    .map(codec::decode_object)
                    .transpose()?
                    .map(Arc::new),
            });
        }
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use serde_json::json;

    use crate::{Error, EventKind, Mutation, Store, StoreConfig, WatchStream};

    async fn store_with(config: StoreConfig) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb"), config)
            .await
            .unwrap();
        (dir, store)
    }

    async fn next(stream: &mut WatchStream) -> crate::Event {
        tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10s")
            .expect("the stream goes on")
            .expect("an event, not an error")
    }

    /// Creates `n` keys `{prefix}00000`, ... concurrently, so they are group-committed.
    async fn create_many(store: &Store, prefix: &str, n: usize) {
        let writes = (0..n).map(|i| {
            let key = format!("{prefix}{i:05}");
            async move { store.create(&key, json!({})).await }
        });
        for written in futures::future::join_all(writes).await {
            written.unwrap();
        }
    }

    async fn assert_quiet(stream: &mut WatchStream) {
        let more = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(more.is_err(), "unexpected item: {:?}", more.unwrap());
    }

    #[tokio::test]
    async fn replays_history_then_streams_live() {
        let (_dir, store) = store_with(StoreConfig::default()).await;
        store.create("pods/a", json!({"n": 1})).await.unwrap();
        store
            .mutate("pods/a", |_| Ok(Mutation::Put(json!({"n": 2}))))
            .await
            .unwrap();

        let mut watch = store.watch("pods/", 0).await.unwrap();
        let first = next(&mut watch).await;
        assert_eq!((first.revision, first.kind), (1, EventKind::Added));
        assert_eq!(first.key, "pods/a");
        assert_eq!(first.object["n"], 1);
        assert_eq!(first.object["metadata"]["resourceVersion"], "1");
        let second = next(&mut watch).await;
        assert_eq!((second.revision, second.kind), (2, EventKind::Modified));
        assert_quiet(&mut watch).await;

        store
            .mutate("pods/a", |_| Ok(Mutation::Delete))
            .await
            .unwrap();
        let deleted = next(&mut watch).await;
        assert_eq!((deleted.revision, deleted.kind), (3, EventKind::Deleted));
        // The last stored object, stamped with the deletion's revision.
        assert_eq!(deleted.object["n"], 2);
        assert_eq!(deleted.object["metadata"]["resourceVersion"], "3");
    }

    #[tokio::test]
    async fn starts_after_the_requested_revision() {
        let (_dir, store) = store_with(StoreConfig::default()).await;
        for i in 0..5 {
            store.create(&format!("k/{i}"), json!({})).await.unwrap();
        }
        let mut watch = store.watch("", 3).await.unwrap();
        assert_eq!(next(&mut watch).await.revision, 4);
        assert_eq!(next(&mut watch).await.revision, 5);
        assert_quiet(&mut watch).await;

        // From the current revision: live only.
        let mut live = store.watch("", store.revision()).await.unwrap();
        assert_quiet(&mut live).await;
        store.create("k/9", json!({})).await.unwrap();
        assert_eq!(next(&mut live).await.revision, 6);
    }

    #[tokio::test]
    async fn filters_by_prefix_in_replay_and_live() {
        let (_dir, store) = store_with(StoreConfig::default()).await;
        store.create("pods/default/a", json!({})).await.unwrap();
        store.create("nodes//n1", json!({})).await.unwrap();
        store.create("pods/other/b", json!({})).await.unwrap();
        let mut watch = store.watch("pods/default/", 0).await.unwrap();
        store.create("pods/other/c", json!({})).await.unwrap();
        store.create("pods/default/d", json!({})).await.unwrap();

        assert_eq!(next(&mut watch).await.key, "pods/default/a");
        let live = next(&mut watch).await;
        assert_eq!((live.key.as_str(), live.revision), ("pods/default/d", 5));
        assert_quiet(&mut watch).await;
    }

    #[tokio::test]
    async fn watching_compacted_history_is_refused() {
        let config = StoreConfig {
            history_window: 3,
            ..StoreConfig::default()
        };
        let (_dir, store) = store_with(config).await;
        for i in 0..10 {
            store.create(&format!("k/{i}"), json!({})).await.unwrap();
        }
        // Revisions 8, 9 and 10 are kept, so a watch can start from 7.
        match store.watch("", 6).await {
            Err(Error::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (6, 7)),
            other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
        }
        let mut watch = store.watch("", 7).await.unwrap();
        for revision in 8..=10 {
            assert_eq!(next(&mut watch).await.revision, revision);
        }
    }

    #[tokio::test]
    async fn replays_more_than_one_chunk() {
        let (_dir, store) = store_with(StoreConfig::default()).await;
        let total = super::REPLAY_CHUNK as u64 * 2 + 10;
        create_many(&store, "k/", total as usize).await;
        let mut watch = store.watch("k/", 0).await.unwrap();
        for revision in 1..=total {
            assert_eq!(next(&mut watch).await.revision, revision);
        }
        assert_quiet(&mut watch).await;
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_gets_lagged_then_the_end() {
        let (_dir, store) = store_with(StoreConfig::default()).await;
        let mut watch = store.watch("", 0).await.unwrap();
        // Not polled while more events than the live buffer holds are published.
        let total = crate::LIVE_CAPACITY + 100;
        create_many(&store, "k/", total).await;
        let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap();
        assert!(matches!(item, Some(Err(Error::Lagged))), "{item:?}");
        assert!(watch.next().await.is_none());

        // History still has everything: watching again from the start recovers.
        let mut again = store.watch("", 0).await.unwrap();
        for revision in 1..=total as u64 {
            assert_eq!(next(&mut again).await.revision, revision);
        }
    }

    #[tokio::test]
    async fn overflow_during_replay_is_not_lag() {
        // Events dropped from the live buffer while the watcher is still replaying are ones the
        // replay delivers from history anyway, so the watcher goes on without a gap.
        let (_dir, store) = store_with(StoreConfig::default()).await;
        let before = super::REPLAY_CHUNK + 10;
        create_many(&store, "a/", before).await;
        // watch() reads one full chunk, so the stream is still replaying when the burst comes.
        let mut watch = store.watch("", 0).await.unwrap();
        let burst = crate::LIVE_CAPACITY + 100;
        create_many(&store, "b/", burst).await;
        let total = (before + burst) as u64;
        for revision in 1..=total {
            assert_eq!(next(&mut watch).await.revision, revision);
        }
        store.create("c/last", json!({})).await.unwrap();
        assert_eq!(next(&mut watch).await.revision, total + 1);
        assert_quiet(&mut watch).await;
    }

    #[tokio::test]
    async fn the_stream_ends_with_closed_when_the_store_closes() {
        let (_dir, store) = store_with(StoreConfig::default()).await;
        let mut watch = store.watch("", 0).await.unwrap();
        store.close().await.unwrap();
        let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap();
        assert!(matches!(item, Some(Err(Error::Closed))), "{item:?}");
        assert!(watch.next().await.is_none());
    }
}
