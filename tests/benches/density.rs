//! Density: how many long-lived pods one node agent runs at once, and what each costs.
//!
//! Starts a real `flotilla up` with one node, then submits `PODS` (default 10,000; set
//! `FLOTILLA_DENSITY_PODS`) idle ticker pods (a tick every ten minutes, so each sleeps in
//! WASI `poll_oneoff`) and waits, through one watch, until every one is Running and Ready.
//! Reports the time that took and the resident memory, memory mappings and open files of
//! the `flotilla up` process before and after: per pod, that is the whole cluster's cost
//! (the stored object, the apiserver's and controllers' caches, the node's pod worker, log
//! file and Wasm instance), not the instance's alone (see crates/node/benches/runtime_bench.rs
//! for that). Kubernetes' default is 110 pods per node.
//!
//! cargo bench -p flotilla-e2e --bench density

mod common;

use common::{Connection, ms, next_event, open_watch};
use flotilla_e2e::Cluster;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Connections that submit the pods.
const SUBMITTERS: usize = 16;
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";

fn pods_wanted() -> usize {
    std::env::var("FLOTILLA_DENSITY_PODS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn pod(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "density"}},
        "spec": {"containers": [{"name": "idle", "image": "ticker", "args": ["600000"]}]},
    })
    .to_string()
}

/// What the kernel says about a process.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    resident_bytes: u64,
    mappings: usize,
    open_files: usize,
}

fn footprint(pid: u32) -> Footprint {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let resident_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("process maps");
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    Footprint {
        resident_bytes: resident_kib * 1024,
        mappings: maps.lines().count(),
        open_files,
    }
}

/// Waits until `count` pods named `idle-*` are Running with every container ready.
fn watch_until_all_ready(server: &str, count: usize) {
    let mut reader = open_watch(server, PODS_PATH, Duration::from_secs(600));
    let mut ready = HashSet::new();
    let mut last_report = Instant::now();
    while ready.len() < count {
        let event = next_event(&mut reader);
        let object = &event["object"];
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let statuses = object["status"]["containerStatuses"].as_array();
        let all_ready =
            statuses.is_some_and(|s| !s.is_empty() && s.iter().all(|c| c["ready"] == true));
        if name.starts_with("idle-") && object["status"]["phase"] == "Running" && all_ready {
            ready.insert(name.to_string());
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("… {} of {count} pods ready", ready.len());
            last_report = Instant::now();
        }
    }
}

async fn submit(server: &str, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for submitter in 0..SUBMITTERS {
        let server = server.to_string();
        tasks.spawn(async move {
            let mut connection = Connection::open(&server).await;
            for n in (submitter..count).step_by(SUBMITTERS) {
                let (status, body) = connection
                    .send(
                        "POST",
                        PODS_PATH,
                        &[("content-type", "application/json")],
                        Some(pod(&format!("idle-{n}"))),
                    )
                    .await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a submitter panicked");
    }
}

fn main() {
    let count = pods_wanted();
    let max_pods = (count + 100).to_string();
    let cluster = Cluster::start_with(1, &["--max-pods", &max_pods]).expect("cluster starts");
    let pid = cluster.pid().expect("flotilla up is running");
    let server = cluster.server.clone();
    // One pod first, so the module is compiled and the footprint counts pods, not setup.
    let warm = cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&pod("warm-up")));
    assert!(warm.status.success(), "{warm:?}");
    cluster
        .wait_for_field(
            "pod/warm-up",
            ".status.containerStatuses[0].ready",
            "true",
            Duration::from_secs(60),
        )
        .expect("the warm-up pod runs");
    std::thread::sleep(Duration::from_secs(1));
    let before = footprint(pid);

    let watcher = {
        let server = server.clone();
        std::thread::spawn(move || watch_until_all_ready(&server, count))
    };
    std::thread::sleep(Duration::from_millis(200)); // Let the watch open before the burst.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(submit(&server, count));
    let submitted = started.elapsed();
    watcher.join().expect("the watcher finishes");
    let all_ready = started.elapsed();
    // Let the last status writes and the allocator settle before measuring.
    std::thread::sleep(Duration::from_secs(5));
    let after = footprint(pid);
    let node_allocatable = cluster.field("node/node-1", ".status.allocatable.pods");

    let per_pod = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / count as f64;
    println!(
        "| {count} idle ticker pods on one node (allocatable pods {node_allocatable}) | figure |"
    );
    println!("|---|---:|");
    println!(
        "| all submitted (POSTs over {SUBMITTERS} connections) | {} |",
        ms(submitted)
    );
    println!("| all Running and Ready | {} |", ms(all_ready));
    println!(
        "| pods made Ready per second | {:.0} |",
        count as f64 / all_ready.as_secs_f64()
    );
    println!(
        "| `flotilla up` resident memory, before → after | {:.0} MiB → {:.0} MiB |",
        before.resident_bytes as f64 / (1 << 20) as f64,
        after.resident_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "| resident memory per pod, whole cluster | {:.1} KiB |",
        per_pod(after.resident_bytes, before.resident_bytes) / 1024.0
    );
    println!(
        "| memory mappings, before → after (per pod) | {} → {} ({:.1}) |",
        before.mappings,
        after.mappings,
        per_pod(after.mappings as u64, before.mappings as u64)
    );
    println!(
        "| open files, before → after (per pod) | {} → {} ({:.1}) |",
        before.open_files,
        after.open_files,
        per_pod(after.open_files as u64, before.open_files as u64)
    );
}
