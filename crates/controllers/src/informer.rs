//! Informers: one list+watch per kind feeding a cache that every controller reads, and
//! change handlers that turn object changes into work-queue keys.
//!
//! kube-runtime's `watcher` does the protocol work (list, then watch from the returned
//! resourceVersion; relist when the server answers 410 Gone or the connection drops, with
//! back-off), and its reflector `Store` is the cache. This module adds what client-go's shared
//! informers add on top: several handlers per cache, told the previous and the new object.

use crate::queue::WorkQueue;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};

/// A change an informer observed.
pub enum Change<'a, K> {
    /// An object was created or updated; `old` is the cached version it replaced, if any.
    Applied { old: Option<&'a K>, new: &'a K },
    /// An object was deleted (its last known state).
    Deleted(&'a K),
    /// The cache was rebuilt from a fresh list (at start, or after the watch was lost):
    /// deletions may have been missed, so everything should be looked at again.
    Resynced,
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// A cache of one kind kept current by list+watch, with change handlers.
pub struct Informer<K: Resource<DynamicType = ()> + Clone + 'static> {
    api: Api<K>,
    config: watcher::Config,
    store: Store<K>,
    writer: Mutex<Option<reflector::store::Writer<K>>>,
    handlers: RwLock<Vec<Handler<K>>>,
    /// Becomes true at the first complete list. (The reflector Store's own
    /// `wait_until_ready` wakes only one of several concurrent waiters: its oneshot channel
    /// keeps a single waker.)
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn new(api: Api<K>, config: watcher::Config) -> Arc<Self> {
        let (store, writer) = reflector::store();
        Arc::new(Informer {
            api,
            config,
            store,
            writer: Mutex::new(Some(writer)),
            handlers: RwLock::new(Vec::new()),
            synced: tokio::sync::watch::Sender::new(false),
        })
    }

    /// The cache. Empty until the first list completes: see [`Informer::synced`].
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Completes once the first list has filled the cache. Controllers must not act on an
    /// unsynced cache: an empty pod cache would make every ReplicaSet look short of pods.
    pub async fn synced(&self) {
        let _ = self.synced.subscribe().wait_for(|synced| *synced).await;
    }

    /// Calls `handler` on every change from now on. Register handlers before [`Informer::run`].
    pub fn on_change(&self, handler: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        self.handlers
            .write()
            .expect("handlers lock")
            .push(Box::new(handler));
    }

    /// Puts the key of every created, changed or deleted object on `queue`, and every cached
    /// object's key after a resync: how a controller follows its own kind.
    pub fn enqueue_changes(self: &Arc<Self>, queue: &Arc<WorkQueue<ObjectKey>>) {
        let queue = queue.clone();
        // Weak: the informer owns its handlers, which must not own it back.
        let informer = Arc::downgrade(self);
        self.on_change(move |change| match change {
            Change::Applied { new, .. } => queue.add(ObjectKey::of(*new)),
            Change::Deleted(old) => queue.add(ObjectKey::of(*old)),
            Change::Resynced => {
                if let Some(informer) = informer.upgrade() {
                    for object in informer.store.state() {
                        queue.add(ObjectKey::of(object.as_ref()));
                    }
                }
            }
        });
    }

    /// Calls `keys_of` on both the previous and the new version of every changed object and
    /// puts the keys it returns on `queue`: how a controller follows the objects it owns (a pod
    /// whose labels changed may concern its old owner as well as its new one).
    pub fn enqueue_related(
        &self,
        queue: &Arc<WorkQueue<ObjectKey>>,
        keys_of: impl Fn(&K) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) {
        let queue = queue.clone();
        self.on_change(move |change| {
            let (old, new) = match change {
                Change::Applied { old, new } => (*old, Some(*new)),
                Change::Deleted(old) => (Some(*old), None),
                Change::Resynced => return,
            };
            for object in old.into_iter().chain(new) {
                keys_of(object).into_iter().for_each(|key| queue.add(key));
            }
        });
    }

    /// A cached object by namespace and name.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut reference = ObjectRef::new(name);
        if let Some(namespace) = namespace {
            reference = reference.within(namespace);
        }
        self.store.get(&reference)
    }

    /// Lists and watches until `shutdown` completes. Runs once per informer.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let Some(mut writer) = self.writer.lock().expect("writer lock").take() else {
            tracing::error!("an informer was run twice");
            return;
        };
        let kind = K::kind(&());
        let events = watcher(self.api.clone(), self.config.clone()).default_backoff();
        futures::pin_mut!(events, shutdown);
        loop {
            let event = tokio::select! {
                _ = &mut shutdown => break,
                event = events.next() => event,
            };
            match event {
                Some(Ok(event)) => self.apply(&mut writer, event),
                Some(Err(error)) => {
                    tracing::warn!(%kind, %error, "watch failed; relisting after back-off")
                }
                None => break,
            }
        }
    }

    fn apply(&self, writer: &mut reflector::store::Writer<K>, event: watcher::Event<K>) {
        let handlers = self.handlers.read().expect("handlers lock");
        match &event {
            watcher::Event::Apply(new) => {
                let old = self.store.get(&ObjectRef::from_obj(new));
                writer.apply_watcher_event(&event);
                let change = Change::Applied {
                    old: old.as_deref(),
                    new,
                };
                handlers.iter().for_each(|h| h(&change));
            }
            watcher::Event::Delete(old) => {
                writer.apply_watcher_event(&event);
                let change = Change::Deleted(old);
                handlers.iter().for_each(|h| h(&change));
            }
            watcher::Event::InitDone => {
                writer.apply_watcher_event(&event);
                self.synced.send_replace(true);
                tracing::debug!(kind = %K::kind(&()), objects = self.store.len(), "cache synced");
                handlers.iter().for_each(|h| h(&Change::Resynced));
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {
                writer.apply_watcher_event(&event)
            }
        }
    }
}

/// Namespace and name of an object: what work queues hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of<K: Resource>(object: &K) -> Self {
        ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any())
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Keys are hashable values; anything else about them is the controller's business.
pub trait QueueKey: Clone + Eq + Hash + Send + Sync + std::fmt::Display + 'static {}
impl<T: Clone + Eq + Hash + Send + Sync + std::fmt::Display + 'static> QueueKey for T {}
