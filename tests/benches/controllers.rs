//! How fast the controllers converge, on real `flotilla up` clusters: a Deployment scaled
//! from nothing to N replicas fully available, and the pods of a SIGKILLed node agent
//! replaced on the surviving nodes. Prints markdown tables. (Work-queue and reconcile
//! throughput: `cargo bench -p flotilla-controllers --bench reconcile`.)
//!
//! cargo bench -p flotilla-e2e --bench controllers

mod common;

use common::{next_event, open_watch};
use flotilla_e2e::Cluster;
use serde_json::{Value, json};
use std::io::BufReader;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn deployment(name: &str, replicas: u32) -> String {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "ticker", "args": ["10000"]}]}
            }
        }
    })
    .to_string()
}

/// Opens a watch on one object of a collection.
fn watch(server: &str, collection: &str, name: &str) -> BufReader<TcpStream> {
    let path = format!("{collection}?fieldSelector=metadata.name%3D{name}");
    open_watch(server, &path, Duration::from_secs(300))
}

/// Blocks until the watched object satisfies `done`.
fn until(reader: &mut BufReader<TcpStream>, done: impl Fn(&Value) -> bool) {
    while !done(&next_event(reader)["object"]) {}
}

fn pods(cluster: &Cluster, selector: &str) -> Vec<Value> {
    let response = cluster
        .http(
            "GET",
            &format!("/api/v1/namespaces/default/pods?labelSelector={selector}"),
            None,
        )
        .expect("list pods");
    response.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn deployment_rollout(cluster: &Cluster, replicas: u32) -> Duration {
    let name = format!("scale-{replicas}");
    let collection = "/apis/apps/v1/namespaces/default/deployments";
    let mut reader = watch(&cluster.server, collection, &name);
    let started = Instant::now();
    let created = cluster
        .http(
            "POST",
            collection,
            Some(("application/json", &deployment(&name, replicas))),
        )
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    until(&mut reader, |d| {
        d["status"]["availableReplicas"] == replicas
    });
    let elapsed = started.elapsed();
    let deleted = cluster
        .http("DELETE", &format!("{collection}/{name}"), None)
        .unwrap();
    assert_eq!(deleted.status, 200);
    flotilla_e2e::wait_until(Duration::from_secs(300), "the pods to be collected", || {
        Ok(pods(cluster, &format!("app%3D{name}")).is_empty())
    })
    .unwrap();
    elapsed
}

fn node_failure(replicas: u32) -> (Duration, Duration) {
    const GRACE: &str = "2s";
    const EVICTION: &str = "2s";
    let cluster = Cluster::start_with(
        0,
        &[
            "--node-grace-period",
            GRACE,
            "--pod-eviction-timeout",
            EVICTION,
        ],
    )
    .expect("cluster starts");
    let renew = ["--lease-renew-interval", "500ms"];
    let _a = cluster.join_node("node-a", &renew).unwrap();
    let _b = cluster.join_node("node-b", &renew).unwrap();
    let c = cluster.join_node("node-c", &renew).unwrap();
    let collection = "/apis/apps/v1/namespaces/default/deployments";
    let mut reader = watch(&cluster.server, collection, "failover");
    let created = cluster
        .http(
            "POST",
            collection,
            Some(("application/json", &deployment("failover", replicas))),
        )
        .unwrap();
    assert_eq!(created.status, 201);
    until(&mut reader, |d| {
        d["status"]["availableReplicas"] == replicas
    });
    let on_c = pods(&cluster, "app%3Dfailover")
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "node-c")
        .count();
    assert!(on_c > 0, "no pod landed on node-c");
    let killed = Instant::now();
    c.kill().unwrap();
    let mut not_ready = None;
    loop {
        if not_ready.is_none()
            && cluster.field(
                "node/node-c",
                r#".status.conditions[?(@.type=="Ready")].status"#,
            ) == "Unknown"
        {
            not_ready = Some(killed.elapsed());
        }
        let healthy = pods(&cluster, "app%3Dfailover")
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running"
                    && p["metadata"]["deletionTimestamp"].is_null()
                    && p["spec"]["nodeName"] != "node-c"
            })
            .count();
        if healthy == replicas as usize {
            return (not_ready.unwrap_or_default(), killed.elapsed());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "pods were not replaced"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let cluster = Cluster::start(1).expect("cluster starts");
    println!("| Deployment on the all-in-one cluster (1 node) | create → all replicas available |");
    println!("|---|---:|");
    for replicas in [10, 100, 1000] {
        let elapsed = deployment_rollout(&cluster, replicas);
        println!("| {replicas} replicas | {:.2} s |", elapsed.as_secs_f64());
    }
    println!();

    drop(cluster);
    println!();

    let replicas = 30;
    let (not_ready, replaced) = node_failure(replicas);
    println!(
        "| node failure: 3 node agents, {replicas} replicas, SIGKILL one | time after the kill |"
    );
    println!("|---|---:|");
    println!(
        "| node marked NotReady (grace period 2 s) | {:.2} s |",
        not_ready.as_secs_f64()
    );
    println!(
        "| every replica Running on the other nodes (+ eviction timeout 2 s) | {:.2} s |",
        replaced.as_secs_f64()
    );
}
