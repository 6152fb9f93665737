//! The garbage collector: deletes objects whose owners are gone, and carries out the
//! `Foreground` and `Orphan` deletion policies.
//!
//! It keeps a graph of ownerReferences (owner uid → dependents) fed by the shared informers.
//! - **Background** (the default): the owner is deleted at once; its dependents, now
//!   dangling, are deleted here. Before deleting, an owner missing from the cache is looked up
//!   live, so a cache that trails a just-created owner never costs its dependents.
//! - **Foreground**: the apiserver gives the owner a deletionTimestamp and the
//!   `foregroundDeletion` finalizer; its dependents are deleted here (in foreground too, so a
//!   Deployment waits for its ReplicaSets, which wait for their pods), and the finalizer is
//!   removed once none is left.
//! - **Orphan**: the owner gets the `orphan` finalizer; its dependents lose their
//!   ownerReference to it, then the finalizer is removed.

use crate::informer::{Change, Informer};
use crate::queue::WorkQueue;
use crate::worker::{Action, run_workers};
use anyhow::Context as _;
use flotilla_api::function::Function;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

const COMPONENT: &str = "garbage-collector";
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// The kinds the collector follows, as owners and as dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pod,
    ReplicaSet,
    Deployment,
    ReplicationController,
    Job,
    DaemonSet,
    Node,
    Lease,
    Function,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::Pod,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::ReplicationController,
        Kind::Job,
        Kind::DaemonSet,
        Kind::Node,
        Kind::Lease,
        Kind::Function,
    ];

    fn api_resource(self) -> ApiResource {
        match self {
            Kind::Pod => ApiResource::erase::<Pod>(&()),
            Kind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::ReplicationController => ApiResource::erase::<ReplicationController>(&()),
            Kind::Job => ApiResource::erase::<Job>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            Kind::Node => ApiResource::erase::<Node>(&()),
            Kind::Lease => ApiResource::erase::<Lease>(&()),
            Kind::Function => ApiResource::erase::<Function>(&()),
        }
    }

    fn namespaced(self) -> bool {
        self != Kind::Node
    }

    /// The kind an ownerReference names, if the collector knows it.
    fn of_reference(reference: &OwnerReference) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| {
            let resource = kind.api_resource();
            resource.kind == reference.kind && resource.api_version == reference.api_version
        })
    }
}

/// An object in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcKey {
    kind: Kind,
    namespace: String,
    name: String,
}

impl std::fmt::Display for GcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Metadata lookups in one informer's cache, whatever its kind.
trait MetaCache: Send + Sync {
    fn meta(&self, namespace: &str, name: &str) -> Option<ObjectMeta>;
}

impl<K> MetaCache for Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn meta(&self, namespace: &str, name: &str) -> Option<ObjectMeta> {
        let namespace = (!namespace.is_empty()).then_some(namespace);
        self.get(namespace, name).map(|o| o.meta().clone())
    }
}

#[derive(Default)]
struct Graph {
    /// Owner uid → the objects that reference it.
    dependents: HashMap<String, HashSet<GcKey>>,
    /// Every object's uid → its key, to find owners of a deleted dependent.
    objects: HashMap<String, GcKey>,
}

impl Graph {
    fn add(&mut self, key: &GcKey, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.objects.insert(uid.clone(), key.clone());
        }
        for reference in meta.owner_references.iter().flatten() {
            self.dependents
                .entry(reference.uid.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    fn remove(&mut self, key: &GcKey, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.objects.remove(uid);
        }
        for reference in meta.owner_references.iter().flatten() {
            if let Some(set) = self.dependents.get_mut(&reference.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&reference.uid);
                }
            }
        }
    }
}

pub struct GarbageCollector {
    client: Client,
    caches: HashMap<Kind, Arc<dyn MetaCache>>,
    /// Completes when every followed cache has synced; taken by `run`.
    synced: Mutex<Vec<futures::future::BoxFuture<'static, ()>>>,
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue<GcKey>>,
}

/// Builds the collector over the manager's informers.
pub struct Builder {
    collector: GarbageCollector,
    handlers: Vec<Registration>,
}

/// Registers the collector's change handler on one informer, once the collector exists.
type Registration = Box<dyn FnOnce(&Arc<GarbageCollector>)>;

impl Builder {
    pub fn new(client: Client) -> Self {
        Builder {
            collector: GarbageCollector {
                client,
                caches: HashMap::new(),
                synced: Mutex::new(Vec::new()),
                graph: Mutex::new(Graph::default()),
                queue: WorkQueue::new(),
            },
            handlers: Vec::new(),
        }
    }

    /// Follows one kind's objects, as owners and as dependents.
    pub fn follow<K>(mut self, kind: Kind, informer: &Arc<Informer<K>>) -> Self
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.collector.caches.insert(kind, informer.clone());
        let synced = informer.clone();
        self.collector
            .synced
            .get_mut()
            .expect("synced lock")
            .push(Box::pin(async move { synced.synced().await }));
        let informer = informer.clone();
        self.handlers.push(Box::new(move |collector| {
            let collector = Arc::downgrade(collector);
            let cache = informer.clone();
            informer.on_change(move |change| {
                if let Some(collector) = collector.upgrade() {
                    collector.observe(kind, &cache, change);
                }
            });
        }));
        self
    }

    pub fn build(self) -> Arc<GarbageCollector> {
        let collector = Arc::new(self.collector);
        for register in self.handlers {
            register(&collector);
        }
        collector
    }
}

fn key_of(kind: Kind, meta: &ObjectMeta) -> GcKey {
    GcKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Being deleted, and waiting for this collector.
fn awaits_collector(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
        && (has_finalizer(meta, FOREGROUND) || has_finalizer(meta, ORPHAN))
}

impl GarbageCollector {
    pub fn queue(&self) -> &Arc<WorkQueue<GcKey>> {
        &self.queue
    }

    fn observe<K>(&self, kind: Kind, cache: &Informer<K>, change: &Change<'_, K>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut graph = self.graph.lock().expect("graph lock");
        match change {
            Change::Applied { old, new } => {
                let new = new.meta();
                let key = key_of(kind, new);
                let references_changed =
                    old.is_none_or(|old| old.meta().owner_references != new.owner_references);
                if let Some(old) = old {
                    graph.remove(&key, old.meta());
                }
                graph.add(&key, new);
                if (references_changed
                    && new.owner_references.as_ref().is_some_and(|r| !r.is_empty()))
                    || awaits_collector(new)
                {
                    self.queue.add(key);
                }
            }
            Change::Deleted(old) => {
                let old = old.meta();
                let key = key_of(kind, old);
                graph.remove(&key, old);
                // Its dependents now dangle; an owner waiting for it in foreground may be free.
                if let Some(uid) = &old.uid {
                    for dependent in graph.dependents.get(uid).into_iter().flatten() {
                        self.queue.add(dependent.clone());
                    }
                }
                for reference in old.owner_references.iter().flatten() {
                    if let Some(owner) = graph.objects.get(&reference.uid) {
                        self.queue.add(owner.clone());
                    }
                }
            }
            Change::Resynced => {
                let stale: Vec<String> = graph
                    .objects
                    .iter()
                    .filter(|(_, key)| key.kind == kind)
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in stale {
                    graph.objects.remove(&uid);
                }
                for set in graph.dependents.values_mut() {
                    set.retain(|key| key.kind != kind);
                }
                graph.dependents.retain(|_, set| !set.is_empty());
                for object in cache.store().state() {
                    let meta = object.meta();
                    let key = key_of(kind, meta);
                    graph.add(&key, meta);
                    if meta
                        .owner_references
                        .as_ref()
                        .is_some_and(|r| !r.is_empty())
                        || awaits_collector(meta)
                    {
                        self.queue.add(key);
                    }
                }
            }
        }
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let synced = std::mem::take(&mut *self.synced.lock().expect("synced lock"));
        futures::future::join_all(synced).await;
        tracing::info!(controller = COMPONENT, "started");
        let collector = self.clone();
        run_workers(COMPONENT, self.queue.clone(), workers, move |key| {
            let collector = collector.clone();
            async move { collector.reconcile(&key).await }
        })
        .await;
    }

    fn api(&self, kind: Kind, namespace: &str) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        if kind.namespaced() {
            Api::namespaced_with(self.client.clone(), namespace, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        }
    }

    async fn reconcile(&self, key: &GcKey) -> anyhow::Result<Action> {
        let Some(meta) = self.caches[&key.kind].meta(&key.namespace, &key.name) else {
            return Ok(Action::AwaitChange);
        };
        if awaits_collector(&meta) {
            self.finish_owner(key, &meta).await?;
        }
        if meta
            .owner_references
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            self.check_dependent(key, &meta).await?;
        }
        Ok(Action::AwaitChange)
    }

    /// Carries out an owner's Orphan or Foreground deletion.
    async fn finish_owner(&self, key: &GcKey, meta: &ObjectMeta) -> anyhow::Result<()> {
        let uid = meta.uid.clone().unwrap_or_default();
        let dependents: Vec<GcKey> = {
            let graph = self.graph.lock().expect("graph lock");
            graph
                .dependents
                .get(&uid)
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        };
        if has_finalizer(meta, ORPHAN) {
            for dependent in &dependents {
                self.remove_owner_references(dependent, |r| r.uid == uid)
                    .await?;
            }
            tracing::info!(object = %key, dependents = dependents.len(), "orphaned dependents");
            return self.remove_finalizer(key, meta, ORPHAN).await;
        }
        if dependents.is_empty() {
            tracing::info!(object = %key, "every dependent is gone; finishing foreground deletion");
            return self.remove_finalizer(key, meta, FOREGROUND).await;
        }
        for dependent in &dependents {
            let Some(dependent_meta) =
                self.caches[&dependent.kind].meta(&dependent.namespace, &dependent.name)
            else {
                continue;
            };
            if dependent_meta.deletion_timestamp.is_none() {
                self.delete(dependent, true).await?;
            }
        }
        Ok(())
    }

    /// Deletes a dependent whose owners are all gone, or whose remaining owners are all being
    /// deleted in foreground; drops references to owners that are gone.
    async fn check_dependent(&self, key: &GcKey, meta: &ObjectMeta) -> anyhow::Result<()> {
        let references = meta.owner_references.clone().unwrap_or_default();
        let mut dangling = Vec::new();
        let mut foreground_owners = 0;
        for reference in &references {
            match self.owner_state(reference, &key.namespace).await? {
                OwnerState::Gone => dangling.push(reference.uid.clone()),
                OwnerState::DeletingInForeground => foreground_owners += 1,
                OwnerState::Present => {}
            }
        }
        if dangling.len() == references.len() {
            if meta.deletion_timestamp.is_none() {
                tracing::info!(object = %key, "owner is gone; deleting");
                self.delete(key, false).await?;
            }
        } else if dangling.len() + foreground_owners == references.len() {
            if meta.deletion_timestamp.is_none() {
                self.delete(key, true).await?;
            }
        } else if !dangling.is_empty() {
            self.remove_owner_references(key, |r| dangling.contains(&r.uid))
                .await?;
        }
        Ok(())
    }

    async fn owner_state(
        &self,
        reference: &OwnerReference,
        namespace: &str,
    ) -> anyhow::Result<OwnerState> {
        let Some(kind) = Kind::of_reference(reference) else {
            // An owner of a kind this collector does not follow is never presumed gone.
            return Ok(OwnerState::Present);
        };
        let namespace = if kind.namespaced() { namespace } else { "" };
        let cached = self.caches[&kind].meta(namespace, &reference.name);
        let meta = match cached {
            Some(meta) if meta.uid.as_deref() == Some(reference.uid.as_str()) => meta,
            // Not in the cache (or another object of that name): ask the apiserver, since a
            // cache trailing a just-created owner must not cost its dependents.
            _ => match self.api(kind, namespace).get_opt(&reference.name).await {
                Ok(Some(live)) if live.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                    live.metadata
                }
                Ok(_) => return Ok(OwnerState::Gone),
                Err(error) => return Err(error).context("looking up an owner"),
            },
        };
        if meta.deletion_timestamp.is_some() && has_finalizer(&meta, FOREGROUND) {
            Ok(OwnerState::DeletingInForeground)
        } else {
            Ok(OwnerState::Present)
        }
    }

    async fn delete(&self, key: &GcKey, foreground: bool) -> anyhow::Result<()> {
        let params = if foreground && key.kind != Kind::Pod {
            DeleteParams::foreground()
        } else {
            DeleteParams::background()
        };
        match self
            .api(key.kind, &key.namespace)
            .delete(&key.name, &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error).with_context(|| format!("deleting {key}")),
        }
    }

    async fn remove_owner_references(
        &self,
        key: &GcKey,
        drop: impl Fn(&OwnerReference) -> bool,
    ) -> anyhow::Result<()> {
        let Some(meta) = self.caches[&key.kind].meta(&key.namespace, &key.name) else {
            return Ok(());
        };
        let references = meta.owner_references.unwrap_or_default();
        let remaining: Vec<&OwnerReference> = references.iter().filter(|r| !drop(r)).collect();
        if remaining.len() == references.len() {
            return Ok(());
        }
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": remaining,
            "resourceVersion": meta.resource_version,
        }});
        match self
            .api(key.kind, &key.namespace)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error).with_context(|| format!("updating the owners of {key}")),
        }
    }

    async fn remove_finalizer(
        &self,
        key: &GcKey,
        meta: &ObjectMeta,
        finalizer: &str,
    ) -> anyhow::Result<()> {
        let remaining: Vec<&String> = meta
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        let patch = serde_json::json!({"metadata": {
            "finalizers": remaining,
            "resourceVersion": meta.resource_version,
        }});
        match self
            .api(key.kind, &key.namespace)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => {
                Err(error).with_context(|| format!("removing the {finalizer} finalizer of {key}"))
            }
        }
    }
}

enum OwnerState {
    Present,
    DeletingInForeground,
    Gone,
}
