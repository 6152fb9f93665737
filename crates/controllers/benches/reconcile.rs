//! Controller throughput.
//! - The work queue alone: keys through `run_workers` with a reconcile that does nothing.
//! - The ReplicaSet controller for real: N ReplicaSets stored first, then the controller
//!   manager started over an in-process apiserver and a redb store; every ReplicaSet needs one
//!   reconcile that writes its status (a durable write), and the clock stops when the last
//!   status is visible.
//!
//! cargo bench -p flotilla-controllers --bench reconcile

use flotilla_controllers::informer::ObjectKey;
use flotilla_controllers::queue::WorkQueue;
use flotilla_controllers::worker::{Action, run_workers};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, PostParams};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

async fn queue_throughput(keys: usize, workers: usize) -> f64 {
    let queue = WorkQueue::new();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    for i in 0..keys {
        queue.add(ObjectKey::new("default", format!("object-{i}")));
    }
    let runner = tokio::spawn(run_workers("bench", queue.clone(), workers, {
        let done = done.clone();
        move |_key| {
            let done = done.clone();
            async move {
                done.fetch_add(1, Ordering::Relaxed);
                Ok(Action::AwaitChange)
            }
        }
    }));
    while done.load(Ordering::Relaxed) < keys {
        tokio::task::yield_now().await;
    }
    let elapsed = started.elapsed();
    queue.shut_down();
    runner.await.unwrap();
    keys as f64 / elapsed.as_secs_f64()
}

async fn replica_set_throughput(count: usize) -> (Duration, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = flotilla_store::Store::open(&dir.path().join("store.redb"), Default::default())
        .await
        .unwrap();
    let state = flotilla_apiserver::ApiState::new(store.clone(), None);
    flotilla_apiserver::bootstrap(&state).await.unwrap();
    let client = flotilla_client::in_process(flotilla_apiserver::router(state), None);
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let creates = (0..count).map(|i| {
        let api = api.clone();
        async move {
            let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("rs-{i}")},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"rs": i.to_string()}},
                    "template": {
                        "metadata": {"labels": {"rs": i.to_string()}},
                        "spec": {"containers": [{"name": "app", "image": "ticker"}]}
                    }
                }
            }))
            .unwrap();
            api.create(&PostParams::default(), &rs).await.unwrap();
        }
    });
    futures::future::join_all(creates).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let manager = tokio::spawn(flotilla_controllers::run(
        client.clone(),
        Default::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        if list
            .items
            .iter()
            .all(|rs| rs.status.as_ref().and_then(|s| s.observed_generation) == Some(1))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    manager.await.unwrap().unwrap();
    store.close().await.unwrap();
    (elapsed, count as f64 / elapsed.as_secs_f64())
}

#[tokio::main]
async fn main() {
    println!("| work queue, no-op reconcile | reconciles/s |");
    println!("|---|---:|");
    for workers in [1, 5, 64] {
        let rate = queue_throughput(200_000, workers).await;
        println!("| 200,000 keys, {workers} workers | {rate:.0} |");
    }
    println!();
    println!(
        "| ReplicaSet controller (5 workers), every reconcile writes status | time | reconciles/s |"
    );
    println!("|---|---:|---:|");
    for count in [1000, 5000] {
        let (elapsed, rate) = replica_set_throughput(count).await;
        println!(
            "| {count} ReplicaSets | {:.2} s | {rate:.0} |",
            elapsed.as_secs_f64()
        );
    }
}
