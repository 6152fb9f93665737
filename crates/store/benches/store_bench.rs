//! Store benchmark: durable write throughput under concurrency, and watch delivery latency.
//!
//! Prints markdown tables. Run with `cargo bench -p flotilla-store --bench store_bench`.
//! The store file goes in `FLOTILLA_BENCH_DIR` if set, else the system temp dir; use a real
//! disk, since every commit is fsynced and a tmpfs makes that free.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_store::{Store, StoreConfig};
use futures::StreamExt;
use serde_json::{Value, json};

const RUN_FOR: Duration = Duration::from_secs(3);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = std::env::var_os("FLOTILLA_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let object_size = serde_json::to_vec(&pod("writer-0-0", 0)).unwrap().len();
    println!(
        "flotilla-store: {object_size}-byte objects, {} s per row, {} cores, store in {}\n",
        RUN_FOR.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        base.display()
    );

    println!("| concurrent writers | durable writes/s | ack latency p50 | ack latency p99 |");
    println!("|---:|---:|---:|---:|");
    for writers in [1, 16, 256] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let (count, mut latencies) = runtime.block_on(throughput(dir.path(), writers));
        latencies.sort_unstable();
        println!(
            "| {writers} | {:.0} | {} | {} |",
            count as f64 / RUN_FOR.as_secs_f64(),
            show(percentile(&latencies, 50.0)),
            show(percentile(&latencies, 99.0)),
        );
    }

    println!();
    println!("| watch delivery (submit → event) | events | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (label, writers) in [
        ("idle (1 writer, one write at a time)", 1),
        ("16 writers", 16),
    ] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let mut latencies = runtime.block_on(watch_latency(dir.path(), writers));
        latencies.sort_unstable();
        println!(
            "| {label} | {} | {} | {} |",
            latencies.len(),
            show(percentile(&latencies, 50.0)),
            show(percentile(&latencies, 99.0)),
        );
    }
}

/// A pod-like object of about 1 KiB. `submitted` is the submit time, in nanoseconds since the
/// bench's clock started, so a watcher can measure delivery latency from the event alone.
fn pod(name: &str, submitted: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "6f1e1d3c-8b5e-4c3a-9f43-2a7d9c1e5b10",
            "labels": {"app": "bench", "tier": "backend", "pod-template-hash": "7d9c1e5b"},
            "annotations": {"flotilla.dev/submitted": submitted.to_string()},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "bench-7d9c1e5b",
                "uid": "0b3f6a52-1c1d-4e7e-8d0e-6b1f2c3d4e5f", "controller": true
            }]
        },
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": "Always",
            "containers": [{
                "name": "app",
                "image": "registry.example/bench/app@sha256:3b1a9c2f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b",
                "args": ["--listen", "0.0.0.0:8080", "--log-level", "info"],
                "env": [{"name": "MODE", "value": "bench"}, {"name": "REPLICA", "value": name}],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "100m", "memory": "64Mi"},
                              "requests": {"cpu": "50m", "memory": "32Mi"}}
            }]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
            ]
        }
    })
}

async fn open(dir: &Path) -> Store {
    Store::open(&dir.join("bench.redb"), StoreConfig::default())
        .await
        .unwrap()
}

/// `writers` tasks each create objects back to back for RUN_FOR. Returns the number of writes
/// acknowledged and each one's latency.
async fn throughput(dir: &Path, writers: usize) -> (usize, Vec<Duration>) {
    let store = open(dir).await;
    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in 0.. {
                    let started = Instant::now();
                    if started >= deadline {
                        break;
                    }
                    let name = format!("writer-{writer}-{i}");
                    store
                        .create(&format!("pods/default/{name}"), pod(&name, 0))
                        .await
                        .unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    store.close().await.unwrap();
    (latencies.len(), latencies)
}

/// A watcher on `pods/` measures, for every event, the time since its write was submitted,
/// while `writers` tasks write back to back (1 writer: an otherwise idle store).
async fn watch_latency(dir: &Path, writers: usize) -> Vec<Duration> {
    let store = open(dir).await;
    let clock = Arc::new(Instant::now());
    let mut events = store.watch("pods/", store.revision()).await.unwrap();
    let watcher = {
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while let Some(event) = events.next().await {
                let event = event.unwrap();
                let submitted: u64 =
                    event.object["metadata"]["annotations"]["flotilla.dev/submitted"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                let now = clock.elapsed().as_nanos() as u64;
                latencies.push(Duration::from_nanos(now - submitted));
                if event.key == "pods/default/stop" {
                    break;
                }
            }
            latencies
        })
    };
    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            let clock = clock.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let name = format!("writer-{writer}-{i}");
                    let submitted = clock.elapsed().as_nanos() as u64;
                    store
                        .create(&format!("pods/default/{name}"), pod(&name, submitted))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let submitted = clock.elapsed().as_nanos() as u64;
    store
        .create("pods/default/stop", pod("stop", submitted))
        .await
        .unwrap();
    let latencies = watcher.await.unwrap();
    store.close().await.unwrap();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn show(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.0} µs")
    }
}
