//! HTTP serving against its anchors, on one machine, with one component (`hello-http`):
//!
//! 1. `wasmtime serve` (the floor: wasmtime's own server, no routing) and a warm flotilla
//!    Function through the gateway, each loaded by `wrk` at 1, 64 and 256 connections:
//!    requests/s and latency p50/p99.
//! 2. Cold starts: a Function scaled to zero, asked once; the client's time to the full
//!    answer (loopback, so server time), p50/p99 over repeated scale-to-zero cycles — with
//!    the gateway's stand-ins, and with `--no-stand-ins` (the request waits for the pod).
//!
//! `GATEWAY_BENCH=cold` runs only the cold starts.
//!
//! Needs `wrk` (Debian package) and `wasmtime` 48 (`cargo install wasmtime-cli@48.0.8
//! --locked`) on PATH, or in `$WRK` / `$WASMTIME`. Prints markdown tables.
//!
//! cargo bench -p flotilla-e2e --bench gateway

mod common;

use common::percentile;
use flotilla_e2e::{Cluster, modules_dir, request, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTIONS: [usize; 3] = [1, 64, 256];
const LOAD_SECONDS: u64 = 8;
const COLD_STARTS: usize = 20;
/// About how long a scale-to-zero cycle leaves the machine idle before the next cold start.
const IDLE_PAUSE: Duration = Duration::from_millis(500);

fn tool(variable: &str, name: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| name.to_string())
}

/// What `wrk --latency` measured.
struct Load {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
}

fn wrk(url: &str, connections: usize) -> Load {
    let threads = connections.min(2).to_string();
    let output = Command::new(tool("WRK", "wrk"))
        .args(["--latency", "-t", &threads, "-c", &connections.to_string()])
        .args(["-d", &format!("{LOAD_SECONDS}s"), url])
        .output()
        .expect("running wrk (apt install wrk, or set $WRK)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
    };
    let millis = |value: Option<&str>| -> f64 {
        let value = value.unwrap_or("0us");
        let (number, scale) = if let Some(n) = value.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = value.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (value, 1.0)
        };
        number.parse::<f64>().unwrap_or(f64::NAN) * scale
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    Load {
        requests_per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        p50_ms: millis(field("50%")),
        p99_ms: millis(field("99%")),
        errors,
    }
}

/// `wasmtime serve` on a free port, with `wasi:cli` linked as flotilla links it.
fn wasmtime_serve(component: &std::path::Path) -> (Child, String) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(tool("WASMTIME", "wasmtime"))
        .args(["serve", "-S", "cli", "--addr", &address])
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "running wasmtime serve (cargo install wasmtime-cli@48.0.8 --locked, or set $WASMTIME)",
        );
    wait_until(Duration::from_secs(30), "wasmtime serve to answer", || {
        Ok(request(&address, "GET", "/", &[], "").is_ok_and(|r| r.status == 200))
    })
    .expect("wasmtime serve started");
    (child, address)
}

fn function(name: &str, min_scale: usize) -> String {
    format!(
        "apiVersion: flotilla.dev/v1\nkind: Function\nmetadata: {{name: {name}}}\nspec: {{image: hello-http, minScale: {min_scale}, maxScale: 1, concurrency: 1000}}\n"
    )
}

fn apply(cluster: &Cluster, manifest: &str) {
    let output = cluster.kubectl_with_input(&["apply", "-f", "-"], Some(manifest));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pods(cluster: &Cluster, name: &str) -> usize {
    let output = cluster.kubectl(&[
        "get",
        "pods",
        "-l",
        &format!("flotilla.dev/function={name}"),
        "-o",
        "name",
    ]);
    String::from_utf8_lossy(&output.stdout).lines().count()
}

fn main() {
    let component = modules_dir().join("hello-http.wasm");
    assert!(
        component.exists(),
        "build the samples first: wasm-samples/build.sh"
    );

    if std::env::var("GATEWAY_BENCH").as_deref() == Ok("cold") {
        return print_cold_starts();
    }
    println!(
        "## Throughput and latency: hello-http, wrk {LOAD_SECONDS} s per row, {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| server | connections | requests/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|---|");
    let (mut wasmtime, address) = wasmtime_serve(&component);
    let mut floor = Vec::new();
    for connections in CONNECTIONS {
        let load = wrk(&format!("http://{address}/"), connections);
        println!(
            "| wasmtime serve | {connections} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            load.requests_per_second, load.p50_ms, load.p99_ms, load.errors
        );
        floor.push(load);
    }
    let _ = wasmtime.kill();
    let _ = wasmtime.wait();

    let cluster = Cluster::start_with(1, &["--scale-down-delay", "300ms"]).expect("cluster");
    apply(&cluster, &function("warm", 1));
    cluster
        .wait_for_field(
            "function/warm",
            ".status.readyInstances",
            "1",
            Duration::from_secs(30),
        )
        .expect("warm function ready");
    let url = format!("{}/function/warm/", cluster.gateway);
    for (connections, floor) in CONNECTIONS.into_iter().zip(&floor) {
        let load = wrk(&url, connections);
        println!(
            "| flotilla gateway → Function | {connections} | {:.0} ({:.0}% of wasmtime serve) | {:.3} ms ({:+.0} µs) | {:.3} ms | {} |",
            load.requests_per_second,
            100.0 * load.requests_per_second / floor.requests_per_second,
            load.p50_ms,
            (load.p50_ms - floor.p50_ms) * 1000.0,
            load.p99_ms,
            load.errors
        );
    }

    drop(cluster);
    print_cold_starts();
}

/// Cold starts: scale to zero (300 ms after the last request), then one request; with
/// stand-ins (the default), and with the request waiting for the pod to start.
fn print_cold_starts() {
    println!("\n## Cold start (scale from zero), {COLD_STARTS} requests each\n");
    println!(
        "Client: time to the whole answer on a new loopback connection. Server: the gateway's \
         own time (its `Server-Timing` header).\n"
    );
    println!(
        "| first request answered by | client p50 | client p99 | server p50 | server p99 | server min |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |label: &str, samples: &mut Vec<Sample>| {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        samples.sort_by_key(|s| s.client);
        let client: Vec<Duration> = samples.iter().map(|s| s.client).collect();
        let mut server: Vec<Duration> = samples.iter().map(|s| s.server).collect();
        server.sort();
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(percentile(&client, 0.5)),
            ms(percentile(&client, 0.99)),
            ms(percentile(&server, 0.5)),
            ms(percentile(&server, 0.99)),
            ms(server[0]),
        );
    };
    let (mut cold, mut warm) = cold_starts(&[]);
    row("a stand-in (default)", &mut cold);
    let (mut cold, _) = cold_starts(&["--no-stand-ins"]);
    row("the new pod (`--no-stand-ins`)", &mut cold);
    row(
        "a running instance, after the same idle pause (the floor)",
        &mut warm,
    );
}

/// One request's times: the client's, and the gateway's own.
struct Sample {
    client: Duration,
    server: Duration,
}

/// Asks `path` on a new connection and times it.
fn timed_request(gateway: &str, path: &str) -> Sample {
    let started = Instant::now();
    let response = request(gateway, "GET", path, &[], "").expect("request");
    let client = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.body);
    let server = response
        .header("server-timing")
        .iter()
        .find_map(|value| value.strip_prefix("gateway;dur="))
        .and_then(|ms| ms.parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .expect("the gateway's Server-Timing header");
    Sample { client, server }
}

/// Answers from a Function scaled to zero, and then from one that runs, asked after a
/// similar pause.
fn cold_starts(up_args: &[&str]) -> (Vec<Sample>, Vec<Sample>) {
    let mut args = vec!["--scale-down-delay", "300ms"];
    args.extend_from_slice(up_args);
    let cluster = Cluster::start_with(1, &args).expect("cluster");
    apply(&cluster, &function("cold", 0));
    let gateway = cluster.gateway.trim_start_matches("http://").to_string();
    // The first request after deploying also compiles the component: not a cold start.
    timed_request(&gateway, "/function/cold/");
    let mut cold = Vec::new();
    for _ in 0..COLD_STARTS {
        wait_until(
            Duration::from_secs(30),
            "the function to scale to zero",
            || Ok(pods(&cluster, "cold") == 0),
        )
        .expect("scaled to zero");
        cold.push(timed_request(&gateway, "/function/cold/"));
    }
    apply(&cluster, &function("cold", 1));
    cluster
        .wait_for_field(
            "function/cold",
            ".status.readyInstances",
            "1",
            Duration::from_secs(30),
        )
        .expect("a running instance");
    let warm = (0..COLD_STARTS)
        .map(|_| {
            std::thread::sleep(IDLE_PAUSE);
            timed_request(&gateway, "/function/cold/")
        })
        .collect();
    (cold, warm)
}
