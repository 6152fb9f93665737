//! The single writer: group commit of every pending write.
//!
//! One dedicated thread owns all writes. It blocks for the first request, takes whatever else is
//! already queued (up to `max_batch`) without waiting, applies them one after another in one
//! redb write transaction, commits once with `Durability::Immediate` (one fsync for the whole
//! batch), and only then publishes the batch's events and answers its requests. Under load the
//! queue fills while a commit is in flight, so batches grow with demand and the fsync cost is
//! shared; an idle store commits a lone write immediately, so nothing waits for a timer.
//!
//! It is a thread rather than a task because everything it does blocks: redb calls, the fsync,
//! and the callers' closures.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableTable, Table};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::codec::{self, HISTORY, META, META_COMPACTED, META_REVISION, OBJECTS};
use crate::error::{BoxError, ClosurePanicked, Error, InvalidObject, Result};
use crate::watch::{Event, EventKind};
use crate::{Mutation, Written};

/// A `mutate` closure, boxed so requests of any closure type share one queue.
pub(crate) type MutateFn = Box<dyn FnOnce(Option<&Value>) -> Result<Mutation, BoxError> + Send>;

/// What the writer is asked to do.
pub(crate) enum Command {
    Write(WriteRequest),
    /// Finish the writes queued before this, refuse later ones, release the database and
    /// then answer.
    Close(oneshot::Sender<()>),
}

pub(crate) struct WriteRequest {
    pub key: String,
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply>>,
}

pub(crate) enum Op {
    Create(Value),
    Mutate(MutateFn),
}

/// The writer's answer to a request. The writer thread is the store's one serial resource, so
/// it hands the new object over shared with the watch event, and the caller's task makes the
/// owned copy for [`Written`] (or takes it without copying if no watcher holds it any more).
#[derive(Debug)]
pub(crate) enum Reply {
    Changed {
        revision: u64,
        object: Option<Arc<Value>>,
        previous: Option<Value>,
    },
    /// Nothing was written; `current` is both the object and the previous one.
    Unchanged {
        revision: u64,
        current: Option<Value>,
    },
}

impl From<Reply> for Written {
    fn from(reply: Reply) -> Written {
        match reply {
            Reply::Changed {
                revision,
                object,
                previous,
            } => Written {
                revision,
                object: object.map(Arc::unwrap_or_clone),
                previous,
            },
            Reply::Unchanged { revision, current } => Written {
                revision,
                object: current.clone(),
                previous: current,
            },
        }
    }
}

pub(crate) struct Writer {
    pub db: Arc<Database>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub live: broadcast::Sender<Arc<Event>>,
    /// The latest committed revision, shared with readers. Only this thread stores to it.
    pub revision: Arc<AtomicU64>,
    /// History at or below this revision is deleted.
    pub compacted: u64,
    pub history_window: u64,
    pub max_batch: usize,
}

/// The result of applying a batch inside its transaction, before commit.
struct Applied {
    revision: u64,
    compacted: u64,
    outcomes: Vec<Result<Reply>>,
    events: Vec<Event>,
}

impl Writer {
    pub(crate) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("flotilla-store-writer".to_owned())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut closers = Vec::new();
        let mut batch = Vec::with_capacity(self.max_batch);
        // Ends when every Store handle is gone (the channel closes) or on Command::Close.
        while closers.is_empty() {
            let Some(first) = self.commands.blocking_recv() else {
                break;
            };
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Write(request) => batch.push(request),
                    Command::Close(done) => {
                        closers.push(done);
                        break;
                    }
                }
                if batch.len() < self.max_batch {
                    next = self.commands.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit_batch(std::mem::take(&mut batch));
            }
        }

        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Write(request) => {
                    let _ = request.reply.send(Err(Error::Closed));
                }
                Command::Close(done) => closers.push(done),
            }
        }
        // Drop our database handle before answering, so that a closer holding the last other
        // handle can release the file.
        drop(self);
        for done in closers {
            let _ = done.send(());
        }
        tracing::debug!("store writer stopped");
    }

    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let (ops, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|request| ((request.key, request.op), request.reply))
            .unzip();
        match self.apply(ops) {
            Ok(applied) => {
                self.compacted = applied.compacted;
                // Before the events and answers, so that anyone who has seen a revision also
                // sees revision() at least that high.
                self.revision.store(applied.revision, Ordering::Release);
                for event in applied.events {
                    // Err only means nobody is watching right now.
                    let _ = self.live.send(Arc::new(event));
                }
                for (reply, outcome) in replies.into_iter().zip(applied.outcomes) {
                    // The caller may have stopped waiting; the write stands anyway.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // The transaction was dropped, so nothing of the batch is stored.
                let message = error.to_string();
                tracing::error!(%message, requests = replies.len(), "store batch failed");
                for reply in replies {
                    let _ = reply.send(Err(Error::Storage(message.clone())));
                }
            }
        }
    }

    /// Applies `ops` in order in one write transaction and commits it. An `Err` is a storage
    /// failure of the whole batch; a request's own failure is in its outcome.
    fn apply(&self, ops: Vec<(String, Op)>) -> Result<Applied> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let before = self.revision.load(Ordering::Relaxed);
        let mut outcomes = Vec::with_capacity(ops.len());
        // The tables borrow the transaction, so they live in this block, closed before commit.
        let (revision, compacted, events) = {
            let mut batch = Batch {
                objects: txn.open_table(OBJECTS)?,
                history: txn.open_table(HISTORY)?,
                revision: before,
                events: Vec::new(),
            };
            for (key, op) in ops {
                outcomes.push(batch.apply(key, op)?);
            }
            let compacted = batch
                .revision
                .saturating_sub(self.history_window)
                .max(self.compacted);
            if batch.revision != before && compacted > self.compacted {
                batch
                    .history
                    .retain_in((self.compacted + 1)..=compacted, |_, _| false)?;
            }
            (batch.revision, compacted, batch.events)
        };

        if revision == before {
            // Only rejections, no-ops and lookups: nothing to make durable, so skip the fsync.
            txn.abort()?;
            return Ok(Applied {
                revision,
                compacted: self.compacted,
                outcomes,
                events,
            });
        }

        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_COMPACTED, compacted)?;
        }
        txn.commit()?;
        Ok(Applied {
            revision,
            compacted,
            outcomes,
            events,
        })
    }
}

/// The open tables of a batch and what it has done so far.
struct Batch<'txn> {
    objects: Table<'txn, &'static str, &'static [u8]>,
    history: Table<'txn, u64, &'static [u8]>,
    /// The revision of the batch's last write (or of the last commit, before any).
    revision: u64,
    events: Vec<Event>,
}

impl Batch<'_> {
    /// Applies one request. The outer `Result` is a storage failure (fails the batch), the inner
    /// one the request's answer.
    fn apply(&mut self, key: String, op: Op) -> Result<Result<Reply>> {
        // Reads inside the write transaction see the earlier writes of this batch.
        match op {
            Op::Create(_) if self.objects.get(key.as_str())?.is_some() => {
                Ok(Err(Error::AlreadyExists { key }))
            }
            Op::Create(object) => self.put(key, object, None),
            Op::Mutate(f) => {
                let current = match self.objects.get(key.as_str())? {
                    Some(guard) => Some(codec::decode_object(guard.value())?),
                    None => None,
                };
                let decision = match catch_unwind(AssertUnwindSafe(|| f(current.as_ref()))) {
                    Ok(decision) => decision,
                    Err(panic) => {
                        let message = panic_message(panic.as_ref());
                        tracing::error!(%key, %message, "mutate closure panicked");
                        return Ok(Err(Error::Rejected(Box::new(ClosurePanicked {
                            key,
                            message,
                        }))));
                    }
                };
                match decision {
                    Err(rejection) => Ok(Err(Error::Rejected(rejection))),
                    Ok(Mutation::Put(object)) => self.put(key, object, current),
                    Ok(Mutation::Delete) => match current {
                        Some(previous) => self.delete(key, previous),
                        None => Ok(Ok(Reply::Unchanged {
                            revision: self.revision,
                            current: None,
                        })),
                    },
                    Ok(Mutation::Unchanged) => Ok(Ok(Reply::Unchanged {
                        revision: current
                            .as_ref()
                            .and_then(codec::resource_version)
                            .unwrap_or(self.revision),
                        current,
                    })),
                }
            }
        }
    }

    fn put(
        &mut self,
        key: String,
        mut object: Value,
        previous: Option<Value>,
    ) -> Result<Result<Reply>> {
        let revision = self.revision + 1;
        if let Err(reason) = codec::set_resource_version(&mut object, revision) {
            return Ok(Err(Error::Rejected(Box::new(InvalidObject {
                key,
                reason,
            }))));
        }
        let kind = match previous {
            Some(_) => EventKind::Modified,
            None => EventKind::Added,
        };
        let json = codec::encode_object(&object);
        let previous_json = previous.as_ref().map(codec::encode_object);
        self.objects.insert(key.as_str(), json.as_slice())?;
        self.history.insert(
            revision,
            codec::encode_event(kind, &key, previous_json.as_deref(), &json).as_slice(),
        )?;
        self.revision = revision;
        let object = Arc::new(object);
        self.events.push(Event {
            revision,
            kind,
            key,
            object: object.clone(),
            previous: previous.clone().map(Arc::new),
        });
        Ok(Ok(Reply::Changed {
            revision,
            object: Some(object),
            previous,
        }))
    }

    fn delete(&mut self, key: String, previous: Value) -> Result<Result<Reply>> {
        let revision = self.revision + 1;
        let mut tombstone = previous.clone();
        codec::set_resource_version(&mut tombstone, revision)
            .map_err(|reason| Error::Storage(format!("stored object {key}: {reason}")))?;
        self.objects.remove(key.as_str())?;
        let previous_json = codec::encode_object(&previous);
        self.history.insert(
            revision,
            codec::encode_event(
                EventKind::Deleted,
                &key,
                Some(&previous_json),
                &codec::encode_object(&tombstone),
            )
            .as_slice(),
        )?;
        self.revision = revision;
        self.events.push(Event {
            revision,
            kind: EventKind::Deleted,
            key,
            object: Arc::new(tombstone),
            previous: Some(Arc::new(previous.clone())),
        });
        Ok(Ok(Reply::Changed {
            revision,
            object: None,
            previous: Some(previous),
        }))
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use serde_json::json;

    use crate::{ClosurePanicked, Error, Mutation, Store, StoreConfig};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb"), StoreConfig::default())
            .await
            .unwrap();
        (dir, store)
    }

    fn increment(current: Option<&serde_json::Value>) -> Result<Mutation, crate::BoxError> {
        let n = current.map_or(0, |object| object["n"].as_u64().unwrap());
        Ok(Mutation::Put(json!({"n": n + 1})))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_read_modify_writes_lose_no_update() {
        let (_dir, store) = store().await;
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.mutate("counter", increment).await })
            })
            .collect();
        let mut revisions = Vec::new();
        for task in tasks {
            revisions.push(task.await.unwrap().unwrap().revision);
        }
        revisions.sort_unstable();
        assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
        assert_eq!(store.get("counter").await.unwrap().unwrap()["n"], 200);
    }

    #[tokio::test]
    async fn a_later_request_in_a_batch_sees_the_earlier_ones() {
        let (_dir, store) = store().await;
        // join_all polls in order, so all three are queued before the writer wakes up (and
        // most likely land in one batch); each must still see its predecessor's write.
        let (a, b, c) = futures::join!(
            store.create("k", json!({"n": 0})),
            store.mutate("k", increment),
            store.mutate("k", increment),
        );
        assert_eq!(a.unwrap().revision, 1);
        let b = b.unwrap();
        assert_eq!(b.previous.unwrap()["n"], 0);
        assert_eq!(b.object.unwrap()["n"], 1);
        assert_eq!(c.unwrap().object.unwrap()["n"], 2);
    }

    #[tokio::test]
    async fn a_rejected_or_panicking_closure_fails_only_its_own_request() {
        let (_dir, store) = store().await;
        let (ok1, rejected, panicked, ok2) = futures::join!(
            store.create("a", json!({})),
            store.mutate("a", |_| Err("conflict".into())),
            store.mutate("b", |_| panic!("boom")),
            store.create("c", json!({})),
        );
        assert_eq!(ok1.unwrap().revision, 1);
        match rejected {
            Err(Error::Rejected(error)) => assert_eq!(error.to_string(), "conflict"),
            other => panic!("{other:?}"),
        }
        match panicked {
            Err(Error::Rejected(error)) => {
                let panicked = error.downcast::<ClosurePanicked>().unwrap();
                assert_eq!(
                    (panicked.key.as_str(), panicked.message.as_str()),
                    ("b", "boom")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ok2.unwrap().revision, 2);
        // The writer is still alive.
        assert_eq!(store.create("d", json!({})).await.unwrap().revision, 3);
    }

    #[tokio::test]
    async fn batches_are_bounded_by_max_batch() {
        // With max_batch 1 every write is its own transaction; still correct, in order.
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            max_batch: 1,
            ..StoreConfig::default()
        };
        let store = Store::open(&dir.path().join("db.redb"), config)
            .await
            .unwrap();
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let writes = (0..20).map(|_| {
            let calls = calls.clone();
            store.mutate("k", move |current| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                increment(current)
            })
        });
        let written = futures::future::join_all(writes).await;
        let revisions: Vec<u64> = written.into_iter().map(|w| w.unwrap().revision).collect();
        assert_eq!(revisions, (1..=20).collect::<Vec<_>>());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn history_is_compacted_to_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            history_window: 5,
            ..StoreConfig::default()
        };
        let path = dir.path().join("db.redb");
        let store = Store::open(&path, config).await.unwrap();
        for _ in 0..12 {
            store.mutate("k", increment).await.unwrap();
        }
        store.close().await.unwrap();

        let db = redb::Database::create(&path).unwrap();
        use redb::{ReadableDatabase, ReadableTable};
        let txn = db.begin_read().unwrap();
        let history = txn.open_table(crate::codec::HISTORY).unwrap();
        let kept: Vec<u64> = history
            .iter()
            .unwrap()
            .map(|entry| entry.unwrap().0.value())
            .collect();
        assert_eq!(kept, vec![8, 9, 10, 11, 12]);
        let meta = txn.open_table(crate::codec::META).unwrap();
        assert_eq!(
            meta.get(crate::codec::META_COMPACTED)
                .unwrap()
                .unwrap()
                .value(),
            7
        );
    }
}
