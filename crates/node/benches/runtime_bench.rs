//! Benchmarks for `flotilla_node::runtime`, printed as a markdown table.
//!
//! Run with `cargo bench -p flotilla-node --bench runtime_bench` after
//! `wasm-samples/build.sh`. `FLOTILLA_BENCH_IDLE=N` sets how many idle tickers to start
//! (default 1000; each holds an open log file, so mind `ulimit -n`).
//!
//! - cold compile: `prepare` of hello.wasm (a core module) and hello-p2.wasm (a component) on
//!   a fresh `Runtime` (empty caches);
//! - compile cache load: `prepare` on a fresh `Runtime` over an on-disk compile cache that
//!   already holds the module, as after a node agent restart;
//! - start + run: instantiate hello (and hello-p2) from its prepared module and run it to exit;
//! - idle pods: tickers sleeping for an hour, all live at once, with the resident memory and
//!   memory mappings each one adds to the process.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use flotilla_node::runtime::{ExitOutcome, RunSpec, Runtime};

const RUNS: usize = 200;
const COLD_COMPILES: usize = 5;

fn main() {
    let idle: usize = std::env::var("FLOTILLA_BENCH_IDLE")
        .ok()
        .map(|n| n.parse().expect("FLOTILLA_BENCH_IDLE must be a number"))
        .unwrap_or(1000);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(bench(idle));
}

async fn bench(idle: usize) {
    let hello = sample("hello");
    let ticker = sample("ticker");
    let log_dir = tempfile::tempdir().expect("temp dir");
    let log_path = log_dir.path().join("bench.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("log file");

    // Cold compile: a new runtime each time, so nothing is cached.
    let mut compiles = cold_prepares(&hello, || Runtime::new().expect("runtime")).await;
    let hello_p2 = sample("hello-p2");
    let mut p2_compiles = cold_prepares(&hello_p2, || Runtime::new().expect("runtime")).await;

    // A new runtime each time over one compile cache directory, filled by the first.
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let with_cache = || Runtime::with_compile_cache(cache_dir.path()).expect("runtime");
    for wasm in [&hello, &hello_p2] {
        with_cache()
            .prepare(wasm.clone())
            .await
            .expect("fill the cache");
    }
    let mut loads = cold_prepares(&hello, with_cache).await;
    let mut p2_loads = cold_prepares(&hello_p2, with_cache).await;

    let runtime = Runtime::new().expect("runtime");
    let prepared = runtime.prepare(hello.clone()).await.expect("prepare hello");
    let started = Instant::now();
    runtime.prepare(hello.clone()).await.expect("prepare hello");
    let cached_prepare = started.elapsed();

    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let spec = spec("hello", &[], log.try_clone().expect("dup log"));
        let started = Instant::now();
        let outcome = runtime.run(&prepared, spec).await;
        runs.push(started.elapsed());
        assert_eq!(outcome, ExitOutcome::Exited(0));
    }

    let prepared_p2 = runtime
        .prepare(hello_p2.clone())
        .await
        .expect("prepare hello-p2");
    let mut p2_runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let spec = spec("hello-p2", &[], log.try_clone().expect("dup log"));
        let started = Instant::now();
        let outcome = runtime.run(&prepared_p2, spec).await;
        p2_runs.push(started.elapsed());
        assert_eq!(outcome, ExitOutcome::Exited(0));
    }

    // Idle pods: every ticker prints `tick 1` and then sleeps for an hour.
    let ticker = runtime.prepare(ticker).await.expect("prepare ticker");
    let idle_log = log_dir.path().join("idle.log");
    let idle_file = File::create(&idle_log).expect("idle log");
    let (rss_before, maps_before) = (rss_kib(), mappings());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(idle);
    for _ in 0..idle {
        let (runtime, ticker) = (runtime.clone(), ticker.clone());
        let spec = spec(
            "ticker",
            &["3600000"],
            idle_file.try_clone().expect("dup log"),
        );
        tasks.push(tokio::spawn(
            async move { runtime.run(&ticker, spec).await },
        ));
    }
    // Wait until every instance has started and gone to sleep.
    while std::fs::read_to_string(&idle_log)
        .unwrap_or_default()
        .lines()
        .count()
        < idle
    {
        if let Some(done) = tasks.iter().position(|t| t.is_finished()) {
            let outcome = tasks.swap_remove(done).await;
            panic!("an idle ticker ended early: {outcome:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_all = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, maps_after) = (rss_kib(), mappings());
    let started = Instant::now();
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    let stop_all = started.elapsed();

    let per_instance_kib = (rss_after.saturating_sub(rss_before)) as f64 / idle as f64;
    let maps_per_instance = (maps_after.saturating_sub(maps_before)) as f64 / idle as f64;
    println!("| measurement | value |");
    println!("| --- | --- |");
    println!(
        "| cold compile of hello.wasm ({} KiB), median of {COLD_COMPILES} | {:.1} ms (min {:.1} ms) |",
        hello.len() / 1024,
        ms(median(&mut compiles)),
        ms(*compiles.iter().min().unwrap()),
    );
    println!(
        "| cold compile of hello-p2.wasm (component, {} KiB), median of {COLD_COMPILES} | {:.1} ms (min {:.1} ms) |",
        hello_p2.len() / 1024,
        ms(median(&mut p2_compiles)),
        ms(*p2_compiles.iter().min().unwrap()),
    );
    println!(
        "| load hello.wasm from the on-disk compile cache (new Runtime), median of {COLD_COMPILES} | {:.1} ms |",
        ms(median(&mut loads)),
    );
    println!(
        "| load hello-p2.wasm from the on-disk compile cache (new Runtime), median of {COLD_COMPILES} | {:.1} ms |",
        ms(median(&mut p2_loads)),
    );
    println!(
        "| prepare of hello.wasm again (cache hit) | {:.1} µs |",
        cached_prepare.as_secs_f64() * 1e6
    );
    println!(
        "| instantiate + run hello to exit, median of {RUNS} | {:.0} µs (p90 {:.0} µs) |",
        median(&mut runs).as_secs_f64() * 1e6,
        percentile(&mut runs, 0.9).as_secs_f64() * 1e6,
    );
    println!(
        "| instantiate + run hello-p2 to exit, median of {RUNS} | {:.0} µs (p90 {:.0} µs) |",
        median(&mut p2_runs).as_secs_f64() * 1e6,
        percentile(&mut p2_runs, 0.9).as_secs_f64() * 1e6,
    );
    println!(
        "| idle tickers started and live at once | {idle} (all started in {:.0} ms) |",
        ms(start_all)
    );
    println!(
        "| resident memory per idle ticker | {per_instance_kib:.0} KiB (VmRSS {} → {} MiB) |",
        rss_before / 1024,
        rss_after / 1024
    );
    let max_map_count: Option<f64> = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    println!(
        "| memory mappings per idle ticker | {maps_per_instance:.1} (vm.max_map_count {}: room for ~{} idle pods) |",
        max_map_count.map_or("?".into(), |n| n.to_string()),
        max_map_count.map_or("?".into(), |n| format!(
            "{:.0}",
            n / maps_per_instance.max(1.0)
        )),
    );
    println!(
        "| stop all idle tickers (drop futures) | {:.0} ms |",
        ms(stop_all)
    );
}

/// How long `prepare(wasm)` takes on each of [`COLD_COMPILES`] new runtimes.
async fn cold_prepares(wasm: &[u8], new_runtime: impl Fn() -> Runtime) -> Vec<Duration> {
    let mut times = Vec::with_capacity(COLD_COMPILES);
    for _ in 0..COLD_COMPILES {
        let runtime = new_runtime();
        let started = Instant::now();
        runtime.prepare(wasm.to_vec()).await.expect("prepare");
        times.push(started.elapsed());
    }
    times
}

fn spec(name: &str, args: &[&str], stdout: File) -> RunSpec {
    RunSpec {
        program_name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        stdout,
        memory_limit_bytes: Some(64 << 20),
        preopens: vec![],
        working_dir: None,
        cpu_limit_millicores: None,
        usage: Default::default(),
        outbound: Default::default(),
    }
}

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../wasm-samples/modules")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run wasm-samples/build.sh first",
            path.display()
        )
    })
}

/// This process's resident set size in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// How many memory mappings this process has (limited by vm.max_map_count).
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.lines().count())
        .unwrap_or(0)
}

fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 0.5)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
