//! flotilla-store: the cluster's single source of truth.
//!
//! An embedded, revisioned key/value store of JSON objects with etcd-style semantics, kept in one
//! [redb] file. The apiserver is its only user; every other component reaches cluster state
//! through the apiserver:
//!
//! ```text
//! apiserver ──create / mutate / get / list / watch──▶ Store ──▶ redb file
//! ```
//!
//! - Keys are strings such as `pods/default/hello` or `nodes//node-1`; a prefix such as
//!   `pods/default/` selects a resource in a namespace for [`Store::list`] and [`Store::watch`].
//! - Every committed change takes the next revision of one global counter, and the stored
//!   object's `metadata.resourceVersion` is set to it. Read-modify-write goes through
//!   [`Store::mutate`], whose closure runs inside the writer and so sees the current value: that
//!   is where the apiserver checks a client's resourceVersion and answers 409.
//! - A write's future resolves only after its transaction is durable (fsynced). Writes are
//!   group-committed: one writer thread applies every pending write in one transaction with one
//!   fsync (see `writer.rs`), which is what lets the cluster do thousands of durable writes per
//!   second.
//! - A watch from revision R replays the kept history after R and then follows live changes, in
//!   order, each exactly once (see `watch.rs`). History is kept for the last
//!   [`StoreConfig::history_window`] revisions; older starting points get [`Error::Compacted`].
//!
//! ```no_run
//! use flotilla_store::{Mutation, Store, StoreConfig};
//! use futures::StreamExt;
//! use serde_json::json;
//!
//! # async fn demo() -> flotilla_store::Result<()> {
//! let store = Store::open("cluster.redb".as_ref(), StoreConfig::default()).await?;
//! let pod = json!({"kind": "Pod", "metadata": {"name": "hello", "namespace": "default"}});
//! let created = store.create("pods/default/hello", pod).await?;
//! assert_eq!(created.object.unwrap()["metadata"]["resourceVersion"], created.revision.to_string());
//!
//! // List, then watch from the list's revision: no change is missed or seen twice.
//! let (pods, revision) = store.list("pods/default/").await?;
//! let mut changes = store.watch("pods/default/", revision).await?;
//!
//! // Read-modify-write; returning Err from the closure rejects the write (e.g. a 409).
//! store
//!     .mutate("pods/default/hello", |current| {
//!         let mut pod = current.cloned().ok_or("gone")?;
//!         pod["spec"]["nodeName"] = json!("node-1");
//!         Ok(Mutation::Put(pod))
//!     })
//!     .await?;
//! let event = changes.next().await.unwrap()?;
//! assert_eq!(event.object["spec"]["nodeName"], "node-1");
//! # Ok(())
//! # }
//! ```

mod codec;
mod error;
mod watch;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use error::{BoxError, ClosurePanicked, Error, InvalidObject, Result};
pub use watch::{Event, EventKind, WatchStream};

use codec::{HISTORY, META, META_COMPACTED, META_REVISION, OBJECTS};
use writer::{Command, Op, WriteRequest, Writer};

/// Events the live channel buffers per watcher. A watcher more than this many revisions behind
/// the writer gets [`Error::Lagged`]. One full batch (`max_batch`, 1024 by default) is published
/// at once, so this leaves room for a few batches while a watcher's task waits for a core.
const LIVE_CAPACITY: usize = 4096;

/// Tuning for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How many recent revisions keep their change in history, for watch replay. A watch can
    /// start from revisions this far back; older ones get [`Error::Compacted`]. Default 100,000.
    pub history_window: u64,
    /// The most writes committed in one transaction. Default 1024. Larger batches share one
    /// fsync among more writes but make the writes that arrive during a commit wait longer.
    pub max_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_window: 100_000,
            max_batch: 1024,
        }
    }
}

/// What a [`Store::mutate`] closure decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Store this object (its `metadata.resourceVersion` is overwritten with the new revision).
    Put(Value),
    /// Remove the key. Takes no revision if the key was already absent.
    Delete,
    /// Leave everything as it is; takes no revision.
    Unchanged,
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The revision of this write. For a write that changed nothing
    /// ([`Mutation::Unchanged`], or deleting an absent key): the object's resourceVersion, or
    /// the store's revision if there is no object.
    pub revision: u64,
    /// The object now stored, with `metadata.resourceVersion` set; `None` after a delete.
    pub object: Option<Value>,
    /// The object stored before this write, if any.
    pub previous: Option<Value>,
}

/// A handle to an open store. Cheap to clone; all clones share one database and one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    commands: mpsc::UnboundedSender<Command>,
    /// Kept to subscribe new watchers; the writer publishes on its own clone.
    live: broadcast::Sender<Arc<Event>>,
    revision: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates the redb file at `path`, resuming its revision counter, objects and
    /// history, and starts the writer thread. Must be called inside a tokio runtime.
    pub async fn open(path: &Path, config: StoreConfig) -> Result<Store> {
        let path = path.to_owned();
        // Opening may read and repair the whole file after a crash.
        let (db, revision, compacted) =
            tokio::task::spawn_blocking(move || open_database(&path)).await??;
        let db = Arc::new(db);
        let revision = Arc::new(AtomicU64::new(revision));
        let (commands, queue) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Writer {
            db: db.clone(),
            commands: queue,
            live: live.clone(),
            revision: revision.clone(),
            compacted,
            history_window: config.history_window,
            max_batch: config.max_batch.max(1),
        }
        .spawn()?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                commands,
                live,
                revision,
            }),
        })
    }

    /// The latest committed revision; 0 for a new, empty store.
    pub fn revision(&self) -> u64 {
        self.inner.revision.load(Ordering::Acquire)
    }

    /// The object stored under `key`.
    ///
    /// Runs on the calling task: a point read touches a few B-tree pages that are nearly always
    /// in redb's cache, and costs less than the hop to a blocking thread would.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        let txn = self.inner.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let object = objects.get(key)?;
        object
            .map(|object| codec::decode_object(object.value()))
            .transpose()
    }

    /// Every object whose key starts with `prefix`, in key order, and the revision the snapshot
    /// was taken at (both from one read transaction, so a watch from that revision continues
    /// exactly where the list ends).
    ///
    /// Runs on the blocking pool: its cost grows with the number of objects listed.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Value>, u64)> {
        let db = self.inner.db.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            let revision = txn
                .open_table(META)?
                .get(META_REVISION)?
                .map_or(0, |guard| guard.value());
            let mut listed = Vec::new();
            codec::scan_objects(&txn, &prefix, |_, object| listed.push(object))?;
            Ok((listed, revision))
        })
        .await?
    }

    /// The objects under `prefix` as they were at `revision`, rebuilt from the current state by
    /// undoing the kept history after it, and the revision listed at. A revision at or past the
    /// latest lists the latest; one older than the kept history is [`Error::Compacted`].
    pub async fn list_at(&self, prefix: &str, revision: u64) -> Result<(Vec<Value>, u64)> {
        let db = self.inner.db.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            let latest = txn
                .open_table(META)?
                .get(META_REVISION)?
                .map_or(0, |guard| guard.value());
            codec::ensure_history_after(&txn, revision)?;
            let mut state = std::collections::BTreeMap::new();
            codec::scan_objects(&txn, &prefix, |key, object| {
                state.insert(key.to_owned(), object);
            })?;
            if revision >= latest {
                return Ok((state.into_values().collect(), latest));
            }
            let history = txn.open_table(HISTORY)?;
            let after = (
                std::ops::Bound::Excluded(revision),
                std::ops::Bound::Unbounded,
            );
            for entry in history.range::<u64>(after)?.rev() {
                let (_, record) = entry?;
                let record = codec::decode_event(record.value())?;
                if !record.key.starts_with(&prefix) {
                    continue;
                }
                match record.previous_json {
                    None => state.remove(record.key),
                    Some(previous) => {
                        state.insert(record.key.to_owned(), codec::decode_object(previous)?)
                    }
                };
            }
            Ok((state.into_values().collect(), revision))
        })
        .await?
    }

    /// Stores `object` under `key` if the key is free; [`Error::AlreadyExists`] otherwise.
    /// Returns the stored object, with `metadata.resourceVersion` set to the new revision.
    pub async fn create(&self, key: &str, object: Value) -> Result<Written> {
        self.submit(key, Op::Create(object)).await
    }

    /// Read-modify-write of `key`, atomically: `f` runs inside the writer with the current value
    /// (`None` if absent) and decides what to do. An `Err` from `f` comes back unchanged inside
    /// [`Error::Rejected`] and fails only this request.
    ///
    /// `f` runs on the writer thread, between other writes: keep it short and never block in it.
    pub async fn mutate<F>(&self, key: &str, f: F) -> Result<Written>
    where
        F: FnOnce(Option<&Value>) -> Result<Mutation, Box<dyn std::error::Error + Send + Sync>>
            + Send
            + 'static,
    {
        self.submit(key, Op::Mutate(Box::new(f))).await
    }

    /// Every change to keys under `prefix` with revision greater than `from_revision`: first the
    /// kept history, then live changes, in revision order, each exactly once.
    ///
    /// Fails with [`Error::Compacted`] if history after `from_revision` is no longer complete.
    /// The stream ends after an error item; see [`WatchStream`].
    pub async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream> {
        // Subscribe before reading history: see watch.rs for why this leaves no gap.
        let live = self.inner.live.subscribe();
        watch::start(&self.inner.db, live, prefix, from_revision).await
    }

    /// Finishes the writes queued before this call, stops the writer, and closes the database
    /// file once no other clone of this store is left (watch streams do not keep it open).
    /// Later writes through any clone fail with [`Error::Closed`]; reads through other clones
    /// keep working until they are dropped.
    pub async fn close(self) -> Result<()> {
        let (done, closed) = oneshot::channel();
        // If the writer is already gone, there is nothing left to stop.
        if self.inner.commands.send(Command::Close(done)).is_ok() {
            let _ = closed.await;
        }
        // Dropping the last handle drops the database and releases the file lock.
        drop(self);
        Ok(())
    }

    async fn submit(&self, key: &str, op: Op) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            key: key.to_owned(),
            op,
            reply,
        };
        // Queued on the first poll, before any await: requests a task submits in order (e.g.
        // through join_all) are applied in that order.
        self.inner
            .commands
            .send(Command::Write(request))
            .map_err(|_| Error::Closed)?;
        let reply = answer.await.map_err(|_| Error::Closed)??;
        Ok(reply.into())
    }
}

/// Opens the file, creates the tables if they are new (so that readers never find them
/// missing), and reads the revision counter and compaction point.
fn open_database(path: &Path) -> Result<(Database, u64, u64)> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    let (revision, compacted) = {
        txn.open_table(OBJECTS)?;
        txn.open_table(HISTORY)?;
        let meta = txn.open_table(META)?;
        let read = |name| -> Result<u64> { Ok(meta.get(name)?.map_or(0, |guard| guard.value())) };
        (read(META_REVISION)?, read(META_COMPACTED)?)
    };
    txn.commit()?;
    Ok((db, revision, compacted))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    async fn open(path: &Path) -> Store {
        Store::open(path, StoreConfig::default()).await.unwrap()
    }

    #[tokio::test]
    async fn handles_streams_and_futures_can_cross_threads() {
        fn handle<T: Clone + Send + Sync + 'static>(_: &T) {}
        fn stream<T: futures::Stream<Item = Result<Event>> + Send + Unpin + 'static>(_: &T) {}
        fn future<T: std::future::Future + Send>(_: T) {}

        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        handle(&store);
        stream(&store.watch("", 0).await.unwrap());
        // Built and dropped unpolled: only their types matter here.
        future(Store::open(dir.path(), StoreConfig::default()));
        future(store.get("k"));
        future(store.list(""));
        future(store.create("k", json!({})));
        future(store.mutate("k", |_| Ok(Mutation::Unchanged)));
        future(store.watch("", 0));
        future(store.clone().close());
        assert_eq!(store.revision(), 0);
    }

    #[tokio::test]
    async fn create_get_list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        assert_eq!(store.revision(), 0);
        assert_eq!(store.list("").await.unwrap(), (vec![], 0));

        let written = store
            .create("pods/default/a", json!({"spec": {"x": 1}}))
            .await
            .unwrap();
        assert_eq!(written.revision, 1);
        assert_eq!(written.previous, None);
        let expected = json!({"spec": {"x": 1}, "metadata": {"resourceVersion": "1"}});
        assert_eq!(written.object.as_ref(), Some(&expected));
        assert_eq!(store.get("pods/default/a").await.unwrap(), Some(expected));
        assert_eq!(store.get("pods/default/zz").await.unwrap(), None);

        store.create("pods/default/b", json!({})).await.unwrap();
        store.create("pods/kube-system/c", json!({})).await.unwrap();
        store.create("podsx/default/d", json!({})).await.unwrap();
        let (pods, revision) = store.list("pods/default/").await.unwrap();
        assert_eq!(revision, 4);
        let versions: Vec<_> = pods
            .iter()
            .map(|pod| pod["metadata"]["resourceVersion"].clone())
            .collect();
        assert_eq!(versions, vec![json!("1"), json!("2")]);
        assert_eq!(store.list("pods/").await.unwrap().0.len(), 3);

        let deleted = store
            .mutate("pods/default/a", |_| Ok(Mutation::Delete))
            .await
            .unwrap();
        assert_eq!(deleted.revision, 5);
        assert_eq!(deleted.object, None);
        assert_eq!(
            deleted.previous.unwrap()["metadata"]["resourceVersion"],
            "1"
        );
        assert_eq!(store.get("pods/default/a").await.unwrap(), None);
        assert_eq!(store.list("pods/default/").await.unwrap().0.len(), 1);
        assert_eq!(store.revision(), 5);
    }

    #[tokio::test]
    async fn create_on_an_existing_key_fails_and_takes_no_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        store.create("k", json!({"v": 1})).await.unwrap();
        match store.create("k", json!({"v": 2})).await {
            Err(Error::AlreadyExists { key }) => assert_eq!(key, "k"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.revision(), 1);
        assert_eq!(store.get("k").await.unwrap().unwrap()["v"], 1);
    }

    #[tokio::test]
    async fn mutate_sees_the_current_value_and_can_reject_a_stale_write() {
        #[derive(Debug, thiserror::Error)]
        #[error("conflict: expected {expected}, found {found}")]
        struct Conflict {
            expected: String,
            found: String,
        }

        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        store.create("k", json!({"v": 1})).await.unwrap();
        store
            .mutate("k", |_| Ok(Mutation::Put(json!({"v": 2}))))
            .await
            .unwrap();

        // What the apiserver does with a client's resourceVersion: an update based on "1" is
        // stale once "2" is stored.
        let update_from = |expected: &'static str| {
            move |current: Option<&Value>| -> Result<Mutation, BoxError> {
                let found = current.unwrap()["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                if found != expected {
                    return Err(Box::new(Conflict {
                        expected: expected.to_owned(),
                        found,
                    }));
                }
                Ok(Mutation::Put(json!({"v": 3})))
            }
        };
        match store.mutate("k", update_from("1")).await {
            Err(Error::Rejected(error)) => {
                let conflict = error.downcast::<Conflict>().unwrap();
                assert_eq!(conflict.found, "2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.revision(), 2);

        let written = store.mutate("k", update_from("2")).await.unwrap();
        assert_eq!(written.revision, 3);
        assert_eq!(written.previous.unwrap()["v"], 2);
        assert_eq!(written.object.unwrap()["metadata"]["resourceVersion"], "3");
    }

    #[tokio::test]
    async fn unchanged_and_absent_deletes_take_no_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        store.create("a", json!({})).await.unwrap();
        store.create("b", json!({})).await.unwrap();

        let unchanged = store
            .mutate("a", |_| Ok(Mutation::Unchanged))
            .await
            .unwrap();
        assert_eq!(unchanged.revision, 1);
        assert_eq!(unchanged.object, unchanged.previous);
        assert_eq!(
            unchanged.object.unwrap()["metadata"]["resourceVersion"],
            "1"
        );

        let absent = store.mutate("zz", |current| {
            assert!(current.is_none());
            Ok(Mutation::Delete)
        });
        assert_eq!(
            absent.await.unwrap(),
            Written {
                revision: 2,
                object: None,
                previous: None
            }
        );
        assert_eq!(store.revision(), 2);
    }

    #[tokio::test]
    async fn mutate_creates_an_absent_key_and_metadata_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        let written = store
            .mutate("k", |current| {
                assert!(current.is_none());
                Ok(Mutation::Put(
                    json!({"metadata": {"resourceVersion": "999"}}),
                ))
            })
            .await
            .unwrap();
        // The store, not the caller, decides resourceVersion.
        assert_eq!(written.object.unwrap()["metadata"]["resourceVersion"], "1");
    }

    #[tokio::test]
    async fn values_that_are_not_objects_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        match store.create("k", json!([1])).await {
            Err(Error::Rejected(error)) => assert!(error.is::<InvalidObject>()),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.revision(), 0);
        assert_eq!(store.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn revisions_increase_by_one_per_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        let mut last = 0;
        for i in 0..20 {
            let written = if i % 3 == 0 {
                store.create(&format!("k{i}"), json!({})).await.unwrap()
            } else {
                store
                    .mutate("k0", |current| Ok(Mutation::Put(current.unwrap().clone())))
                    .await
                    .unwrap()
            };
            assert_eq!(written.revision, last + 1);
            assert_eq!(store.revision(), written.revision);
            last = written.revision;
        }
    }

    #[tokio::test]
    async fn reopening_resumes_objects_revision_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let store = open(&path).await;
        store.create("a", json!({"v": 1})).await.unwrap();
        store.create("b", json!({"v": 2})).await.unwrap();
        store.mutate("a", |_| Ok(Mutation::Delete)).await.unwrap();
        store.close().await.unwrap();

        let store = open(&path).await;
        assert_eq!(store.revision(), 3);
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(store.get("b").await.unwrap().unwrap()["v"], 2);
        assert_eq!(store.create("c", json!({})).await.unwrap().revision, 4);

        use futures::StreamExt;
        let events: Vec<_> = store
            .watch("", 0)
            .await
            .unwrap()
            .take(4)
            .map(|event| {
                let event = event.unwrap();
                (event.revision, event.kind, event.key)
            })
            .collect()
            .await;
        assert_eq!(
            events,
            vec![
                (1, EventKind::Added, "a".to_owned()),
                (2, EventKind::Added, "b".to_owned()),
                (3, EventKind::Deleted, "a".to_owned()),
                (4, EventKind::Added, "c".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn writes_after_close_fail_with_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        let other = store.clone();
        store.close().await.unwrap();
        assert!(matches!(
            other.create("k", json!({})).await,
            Err(Error::Closed)
        ));
        // Reads through a remaining handle still work.
        assert_eq!(other.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_file_is_refused_while_the_first_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let store = open(&path).await;
        assert!(matches!(
            Store::open(&path, StoreConfig::default()).await,
            Err(Error::Storage(_))
        ));
        store.close().await.unwrap();
        open(&path).await;
    }

    #[tokio::test]
    async fn lists_rebuild_earlier_revisions_from_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        let a1 = store
            .create("cm/a", json!({"v": 1}))
            .await
            .unwrap()
            .revision;
        store.create("cm/b", json!({"v": 1})).await.unwrap();
        let before_changes = store.revision();
        store
            .mutate("cm/a", |_| Ok(Mutation::Put(json!({"v": 2}))))
            .await
            .unwrap();
        store
            .mutate("cm/b", |_| Ok(Mutation::Delete))
            .await
            .unwrap();
        store.create("cm/c", json!({"v": 1})).await.unwrap();
        store.create("other/x", json!({})).await.unwrap();

        let values = |listed: Vec<Value>| listed.iter().map(|o| o["v"].clone()).collect::<Vec<_>>();
        let (at_start, revision) = store.list_at("cm/", before_changes).await.unwrap();
        assert_eq!(revision, before_changes);
        assert_eq!(values(at_start), [json!(1), json!(1)]);
        let (first, _) = store.list_at("cm/", a1).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["metadata"]["resourceVersion"], a1.to_string());
        let (now, revision) = store.list_at("cm/", u64::MAX).await.unwrap();
        assert_eq!(
            (values(now), revision),
            (vec![json!(2), json!(1)], store.revision())
        );
        assert_eq!(store.list_at("cm/", 0).await.unwrap().0.len(), 0);
    }

    #[tokio::test]
    async fn events_carry_the_previous_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db.redb")).await;
        store.create("k", json!({"v": 1})).await.unwrap();
        store
            .mutate("k", |_| Ok(Mutation::Put(json!({"v": 2}))))
            .await
            .unwrap();
        store.mutate("k", |_| Ok(Mutation::Delete)).await.unwrap();
        let mut events = store.watch("", 0).await.unwrap();
        let mut previous = Vec::new();
        for _ in 0..3 {
            let event = futures::StreamExt::next(&mut events)
                .await
                .unwrap()
                .unwrap();
            previous.push(event.previous.map(|p| p["v"].clone()));
        }
        assert_eq!(previous, [None, Some(json!(1)), Some(json!(2))]);
    }
}
