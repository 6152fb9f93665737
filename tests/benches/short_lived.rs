//! The runwasi stress-test shape through the whole cluster: 1,000 short-lived pods (the hello
//! module, `restartPolicy: Never`) submitted at once to a real `flotilla up` with one node,
//! run to `Succeeded`. Reports tasks per second (runwasi publishes about 330/s for its
//! wasmtime shim, measured at the containerd level without an API server or scheduler) and
//! each pod's create → Succeeded latency, seen through one watch opened beforehand.
//!
//! cargo bench -p flotilla-e2e --bench short_lived

mod common;

use common::{Connection, ms, next_event, open_watch, percentile};
use flotilla_e2e::Cluster;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PODS: usize = 1_000;
/// Connections that submit the pods.
const SUBMITTERS: usize = 16;
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";

fn pod(n: usize) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("task-{n}")},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "hello", "image": "hello"}]},
    })
    .to_string()
}

/// Watches every pod and records when each task is first seen Succeeded; returns once all
/// are. The warm-up pod is not a task and is not counted.
fn watch_until_all_succeed(server: &str, done: Arc<Mutex<HashMap<String, Instant>>>) {
    let mut reader = open_watch(server, PODS_PATH, Duration::from_secs(120));
    loop {
        let event = next_event(&mut reader);
        let phase = event["object"]["status"]["phase"].as_str();
        assert_ne!(phase, Some("Failed"), "a task failed: {event}");
        let name = event["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default();
        if phase == Some("Succeeded") && name.starts_with("task-") {
            let mut done = done.lock().unwrap();
            done.entry(name.to_string()).or_insert_with(Instant::now);
            if done.len() == PODS {
                return;
            }
        }
    }
}

/// Submits every pod over `SUBMITTERS` connections; returns when each was created.
async fn submit(server: &str) -> HashMap<String, Instant> {
    let mut tasks = tokio::task::JoinSet::new();
    for submitter in 0..SUBMITTERS {
        let server = server.to_string();
        tasks.spawn(async move {
            let mut connection = Connection::open(&server).await;
            let mut created = Vec::new();
            for n in (submitter..PODS).step_by(SUBMITTERS) {
                let sent = Instant::now();
                let (status, body) = connection
                    .send(
                        "POST",
                        PODS_PATH,
                        &[("content-type", "application/json")],
                        Some(pod(n)),
                    )
                    .await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                created.push((format!("task-{n}"), sent));
            }
            created
        });
    }
    let mut created = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        created.extend(done.expect("a submitter panicked"));
    }
    created
}

fn main() {
    let cluster = Cluster::start(1).expect("cluster starts");
    let server = cluster.server.clone();
    // Warm the node's module cache first, as on any node that has run the module before.
    let warm = cluster.kubectl_with_input(
        &["apply", "-f", "-"],
        Some(&pod(PODS).replace("task-1000", "warm-up")),
    );
    assert!(warm.status.success(), "{warm:?}");
    cluster
        .wait_for_field(
            "pod/warm-up",
            ".status.phase",
            "Succeeded",
            Duration::from_secs(60),
        )
        .expect("the warm-up pod runs");
    let succeeded = Arc::new(Mutex::new(HashMap::new()));
    let watcher = {
        let server = server.clone();
        let succeeded = succeeded.clone();
        std::thread::spawn(move || watch_until_all_succeed(&server, succeeded))
    };
    std::thread::sleep(Duration::from_millis(200)); // Let the watch open before the burst.

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let created = runtime.block_on(submit(&server));
    let submitted = started.elapsed();
    watcher.join().expect("the watcher finishes");
    let succeeded = succeeded.lock().unwrap();
    let finished = succeeded.values().max().copied().unwrap_or(started);
    let total = finished - started;
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, at)| succeeded.get(name).map(|done| *done - *at))
        .collect();
    latencies.sort();
    println!("| {PODS} short-lived hello pods, one node, warm module cache | figure |");
    println!("|---|---:|");
    println!(
        "| all submitted (POSTs over {SUBMITTERS} connections) | {} |",
        ms(submitted)
    );
    println!("| all Succeeded | {} |", ms(total));
    println!(
        "| tasks per second | {:.0} |",
        PODS as f64 / total.as_secs_f64()
    );
    println!(
        "| create → Succeeded, p50 | {} |",
        ms(percentile(&latencies, 0.5))
    );
    println!(
        "| create → Succeeded, p99 | {} |",
        ms(percentile(&latencies, 0.99))
    );
}
