//! API latency with 10,000 pods stored, on a real `flotilla up --nodes 0` (so the pods stay
//! Pending and nothing runs): the time `kubectl get pods` takes to show them all, the server's
//! time to answer that list (as a Table, the way kubectl asks, and as plain JSON), and p50/p99
//! latency of single-object GETs and PATCHes from 50 concurrent keep-alive clients. Prints a
//! markdown table to compare with Kubernetes' API SLOs (p99 ≤ 1 s for single-object calls,
//! ≤ 30 s for cluster-scoped lists).
//!
//! cargo bench -p flotilla-e2e --bench api_latency

mod common;

use common::{Connection, ms, percentile};
use flotilla_e2e::Cluster;
use std::time::{Duration, Instant};

const PODS: usize = 10_000;
/// Connections that create the pods.
const CREATORS: usize = 32;
/// Concurrent clients for the single-object measurements.
const CLIENTS: usize = 50;
/// Each single-object phase stops at whichever comes first.
const PHASE_REQUESTS: usize = 20_000;
const PHASE_TIME: Duration = Duration::from_secs(20);
const LIST_RUNS: usize = 5;
/// What kubectl sends when it asks for a list to print (server-side Table, JSON as fallback).
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";

fn pod(n: usize) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("bench-{n}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "hello", "image": "hello"}]},
    })
    .to_string()
}

/// Creates the pods over `CREATORS` connections at once; returns how long it took.
async fn create_pods(server: &str) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for creator in 0..CREATORS {
        let server = server.to_string();
        tasks.spawn(async move {
            let mut connection = Connection::open(&server).await;
            for n in (creator..PODS).step_by(CREATORS) {
                let (status, body) = connection
                    .send(
                        "POST",
                        PODS_PATH,
                        &[("content-type", "application/json")],
                        Some(pod(n)),
                    )
                    .await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a creator panicked");
    }
    started.elapsed()
}

/// The median time to GET the pod list at `path` with `accept`, and the size of the answer.
async fn time_list(server: &str, path: &str, accept: &str) -> (Duration, usize) {
    let mut connection = Connection::open(server).await;
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..LIST_RUNS {
        let started = Instant::now();
        let (status, body) = connection
            .send("GET", path, &[("accept", accept)], None)
            .await;
        times.push(started.elapsed());
        assert_eq!(status, 200);
        size = body.len();
    }
    times.sort();
    (percentile(&times, 0.5), size)
}

/// Latencies of `CLIENTS` concurrent clients each sending requests made by `request` (given a
/// client number and a sequence number) until the phase's budget is spent.
async fn load(
    server: &str,
    request: fn(usize, usize) -> (&'static str, String, Option<String>),
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let server = server.to_string();
        let sent = sent.clone();
        tasks.spawn(async move {
            let mut connection = Connection::open(&server).await;
            let mut latencies = Vec::new();
            loop {
                let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= PHASE_REQUESTS || started.elapsed() > PHASE_TIME {
                    return latencies;
                }
                let (method, path, body) = request(client, n);
                let content_type = [("content-type", "application/merge-patch+json")];
                let headers: &[(&str, &str)] = if body.is_some() { &content_type } else { &[] };
                let sent_at = Instant::now();
                let (status, reply) = connection.send(method, &path, headers, body).await;
                latencies.push(sent_at.elapsed());
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("a client panicked"));
    }
    let elapsed = started.elapsed();
    all.sort();
    (all, elapsed)
}

fn get_one(_client: usize, n: usize) -> (&'static str, String, Option<String>) {
    // A stride through the pods so consecutive requests read different objects.
    let pod = (n * 7919) % PODS;
    ("GET", format!("{PODS_PATH}/bench-{pod}"), None)
}

fn patch_label(_client: usize, n: usize) -> (&'static str, String, Option<String>) {
    let pod = (n * 7919) % PODS;
    let patch = format!(r#"{{"metadata":{{"labels":{{"round":"{n}"}}}}}}"#);
    ("PATCH", format!("{PODS_PATH}/bench-{pod}"), Some(patch))
}

fn main() {
    let cluster = Cluster::start(0).expect("cluster starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = cluster.server.clone();

    let creation = runtime.block_on(create_pods(&server));

    let mut kubectl_times = Vec::new();
    for _ in 0..LIST_RUNS {
        let started = Instant::now();
        let out =
            flotilla_e2e::checked(cluster.kubectl(&["get", "pods"]), "kubectl get pods").unwrap();
        kubectl_times.push(started.elapsed());
        assert_eq!(out.lines().count(), PODS + 1, "a header and every pod");
    }
    kubectl_times.sort();
    // kubectl asks for pages of 500; flotilla answers everything in one, as a server may.
    let kubectl_path = format!("{PODS_PATH}?limit=500");
    let (table_time, table_size) =
        runtime.block_on(time_list(&server, &kubectl_path, TABLE_ACCEPT));
    let (json_time, json_size) =
        runtime.block_on(time_list(&server, PODS_PATH, "application/json"));
    let (gets, get_elapsed) = runtime.block_on(load(&server, get_one));
    let (patches, patch_elapsed) = runtime.block_on(load(&server, patch_label));

    println!(
        "| {PODS} pending pods, `flotilla up --nodes 0` | median / p50 | p99 | max | throughput |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| create {PODS} pods ({CREATORS} concurrent POSTs) | | | {} total | {:.0} pods/s |",
        ms(creation),
        PODS as f64 / creation.as_secs_f64()
    );
    println!(
        "| `kubectl get pods` (client wall time, {LIST_RUNS} runs) | {} | | {} | |",
        ms(percentile(&kubectl_times, 0.5)),
        ms(*kubectl_times.last().unwrap())
    );
    println!(
        "| list as kubectl asks (Table, {:.1} MiB), server | {} | | | |",
        table_size as f64 / (1 << 20) as f64,
        ms(table_time)
    );
    println!(
        "| list as plain JSON ({:.1} MiB), server | {} | | | |",
        json_size as f64 / (1 << 20) as f64,
        ms(json_time)
    );
    for (label, latencies, elapsed) in [
        ("GET one pod", &gets, get_elapsed),
        (
            "PATCH one pod's label (merge patch)",
            &patches,
            patch_elapsed,
        ),
    ] {
        println!(
            "| {label}, {CLIENTS} clients, {} requests | {} | {} | {} | {:.0} req/s |",
            latencies.len(),
            ms(percentile(latencies, 0.5)),
            ms(percentile(latencies, 0.99)),
            ms(*latencies.last().unwrap()),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
    }
}
