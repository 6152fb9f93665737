//! What the gateway knows of the cluster: one list+watch per kind it routes by, shared by
//! every request. Nothing on the request path calls the API.

use std::sync::Arc;

use flotilla_api::function::{FUNCTION_LABEL, Function};
use flotilla_controllers::informer::{Change, Informer};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::watch;

use crate::pod_index::PodIndex;

pub(crate) struct Cache {
    pub(crate) services: Arc<Informer<Service>>,
    pub(crate) endpoints: Arc<Informer<Endpoints>>,
    pub(crate) ingresses: Arc<Informer<Ingress>>,
    pub(crate) nodes: Arc<Informer<Node>>,
    pub(crate) functions: Arc<Informer<Function>>,
    /// Only the pods of Functions (those with the function label).
    pub(crate) function_pods: Arc<Informer<Pod>>,
    /// The same pods by Function.
    pub(crate) pods_by_function: Arc<PodIndex>,
    /// Bumped on every change of a Function's pod, so the activator can wait for one.
    pods_changed: watch::Sender<u64>,
}

impl Cache {
    pub(crate) fn new(client: &kube::Client) -> Cache {
        let all = watcher::Config::default;
        let function_pods = Informer::new(
            Api::all(client.clone()),
            watcher::Config::default().labels(FUNCTION_LABEL),
        );
        // Before the change notifier: whoever it wakes reads the index.
        let pods_by_function = PodIndex::follow(&function_pods);
        let pods_changed = watch::Sender::new(0u64);
        function_pods.on_change({
            let pods_changed = pods_changed.clone();
            move |_: &Change<'_, Pod>| {
                pods_changed.send_modify(|generation| *generation += 1);
            }
        });
        Cache {
            services: Informer::new(Api::all(client.clone()), all()),
            endpoints: Informer::new(Api::all(client.clone()), all()),
            ingresses: Informer::new(Api::all(client.clone()), all()),
            nodes: Informer::new(Api::all(client.clone()), all()),
            functions: Informer::new(Api::all(client.clone()), all()),
            function_pods,
            pods_by_function,
            pods_changed,
        }
    }

    /// A receiver that sees every later change of a Function's pod.
    pub(crate) fn watch_pods(&self) -> watch::Receiver<u64> {
        self.pods_changed.subscribe()
    }

    /// Runs every informer until `shutdown` completes.
    pub(crate) async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let informers: Vec<BoxFuture<'static, ()>> = vec![
            Box::pin(self.services.clone().run(until_stopped())),
            Box::pin(self.endpoints.clone().run(until_stopped())),
            Box::pin(self.ingresses.clone().run(until_stopped())),
            Box::pin(self.nodes.clone().run(until_stopped())),
            Box::pin(self.functions.clone().run(until_stopped())),
            Box::pin(self.function_pods.clone().run(until_stopped())),
        ];
        tokio::select! {
            _ = futures::future::join_all(informers) => {}
            _ = shutdown => { let _ = stop.send(true); }
        }
    }
}
