//! Time from submitting the hello pod to seeing it `Succeeded`, on a real `flotilla up`
//! cluster: once through `kubectl apply` (including kubectl's own start-up and discovery), once
//! through a direct API create. Completion is observed through a watch opened beforehand, so
//! no polling interval inflates the figure. Prints a markdown table.
//!
//! cargo bench -p flotilla-e2e --bench pod_startup

mod common;

use common::{next_event, open_watch, percentile};
use flotilla_e2e::Cluster;
use std::io::BufReader;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const RUNS: usize = 20;

/// Opens a watch on one pod.
fn watch_pod(server: &str, name: &str) -> BufReader<TcpStream> {
    let path = format!("/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D{name}");
    open_watch(server, &path, Duration::from_secs(30))
}

/// Blocks until the watch reports the pod Succeeded.
fn until_succeeded(reader: &mut BufReader<TcpStream>) {
    loop {
        let event = next_event(reader);
        match event["object"]["status"]["phase"].as_str() {
            Some("Succeeded") => return,
            Some("Failed") => panic!("the pod failed: {event}"),
            _ => {}
        }
    }
}

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{restartPolicy: Never, containers: [{{name: hello, image: hello}}]}}\n"
    )
}

fn main() {
    let cluster = Cluster::start(1).expect("cluster starts");
    // Warm the module cache, as a node that has run the module before would be.
    let mut warm = watch_pod(&cluster.server, "warm-up");
    flotilla_e2e::checked(
        cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&manifest("warm-up"))),
        "apply",
    )
    .unwrap();
    until_succeeded(&mut warm);

    let mut kubectl_times = Vec::new();
    let mut api_times = Vec::new();
    for i in 0..RUNS {
        let name = format!("kubectl-{i}");
        let mut watch = watch_pod(&cluster.server, &name);
        let started = Instant::now();
        flotilla_e2e::checked(
            cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&manifest(&name))),
            "apply",
        )
        .unwrap();
        until_succeeded(&mut watch);
        kubectl_times.push(started.elapsed());

        let name = format!("api-{i}");
        let mut watch = watch_pod(&cluster.server, &name);
        let body = serde_json::to_string(
            &serde_yaml::from_str::<serde_json::Value>(&manifest(&name)).unwrap(),
        )
        .unwrap();
        let started = Instant::now();
        let created = cluster
            .http(
                "POST",
                "/api/v1/namespaces/default/pods",
                Some(("application/json", &body)),
            )
            .unwrap();
        assert_eq!(created.status, 201);
        until_succeeded(&mut watch);
        api_times.push(started.elapsed());
    }
    println!("| path ({RUNS} runs, hello pod, warm module cache) | median | p90 | max |");
    println!("|---|---:|---:|---:|");
    for (label, times) in [
        (
            "`kubectl apply` → Succeeded (includes kubectl start-up)",
            &mut kubectl_times,
        ),
        ("API create (POST) → Succeeded", &mut api_times),
    ] {
        times.sort();
        println!(
            "| {label} | {:.1} ms | {:.1} ms | {:.1} ms |",
            percentile(times, 0.5).as_secs_f64() * 1e3,
            percentile(times, 0.9).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3
        );
    }
}
