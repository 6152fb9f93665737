//! `flotilla_node::runtime`: the sample guests run end to end, and bad images are rejected
//! with the right error.

use std::time::Duration;

use flotilla_node::runtime::{
    CompileCacheStats, ExitOutcome, Limits, PrepareError, PreparedModule, RunSpec, Runtime, Usage,
    WasmKind,
};
use sha2::Digest as _;

use crate::{Log, sample};

fn spec(name: &str, args: &[&str], log: &Log) -> RunSpec {
    RunSpec {
        program_name: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        stdout: log.file(),
        memory_limit_bytes: None,
        preopens: vec![],
        working_dir: None,
        cpu_limit_millicores: None,
        usage: Default::default(),
        outbound: Default::default(),
    }
}

async fn prepare(runtime: &Runtime, name: &str) -> PreparedModule {
    runtime
        .prepare(sample(name))
        .await
        .unwrap_or_else(|e| panic!("preparing {name}: {e}"))
}

#[tokio::test]
async fn hello_writes_stdout_and_stderr_to_the_log_and_exits_0() {
    let runtime = Runtime::new().unwrap();
    let hello = prepare(&runtime, "hello").await;
    let log = Log::new();

    let outcome = runtime.run(&hello, spec("hello", &[], &log)).await;

    assert_eq!(outcome, ExitOutcome::Exited(0));
    let output = log.contents();
    assert!(output.contains("Hello from flotilla!\n"), "log: {output:?}");
    assert!(
        output.contains("This line also goes to stdout.\n"),
        "log: {output:?}"
    );
    assert!(
        output.contains("And this one goes to stderr.\n"),
        "log: {output:?}"
    );
}

#[tokio::test]
async fn every_line_is_stored_as_a_record_with_its_time_and_stream() {
    use flotilla_node::log_file::{Record, Stream, parse};
    let runtime = Runtime::new().unwrap();
    let hello = prepare(&runtime, "hello").await;
    let log = Log::new();
    let before = jiff::Timestamp::now();

    runtime.run(&hello, spec("hello", &[], &log)).await;

    let after = jiff::Timestamp::now();
    let raw = log.records();
    let records: Vec<Record> = raw
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(parse)
        .collect();
    let summary: Vec<(Stream, bool, &[u8])> = records
        .iter()
        .map(|record| match *record {
            Record::Stamped {
                time,
                stream,
                partial,
                text,
            } => {
                let time: jiff::Timestamp = std::str::from_utf8(time).unwrap().parse().unwrap();
                assert!(
                    before <= time && time <= after,
                    "{time} is not the time of the run"
                );
                (stream, partial, text)
            }
            Record::Bare(line) => panic!("a line without a timestamp: {line:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Stream::Stdout, false, &b"Hello from flotilla!"[..]),
            (Stream::Stdout, false, b"This line also goes to stdout."),
            (Stream::Stderr, false, b"And this one goes to stderr."),
        ]
    );
}

#[tokio::test]
async fn each_run_is_a_fresh_instance_and_appends_to_the_log() {
    let runtime = Runtime::new().unwrap();
    let hello = prepare(&runtime, "hello").await;
    let log = Log::new();

    for _ in 0..3 {
        assert_eq!(
            runtime.run(&hello, spec("hello", &[], &log)).await,
            ExitOutcome::Exited(0)
        );
    }

    assert_eq!(log.contents().matches("Hello from flotilla!").count(), 3);
}

#[tokio::test]
async fn proc_exit_code_is_the_exit_code() {
    let runtime = Runtime::new().unwrap();
    let exit_code = prepare(&runtime, "exit-code").await;

    let log = Log::new();
    let outcome = runtime
        .run(&exit_code, spec("exit-code", &["7"], &log))
        .await;
    assert_eq!(outcome, ExitOutcome::Exited(7));
    assert!(
        log.contents().contains("exiting with 7"),
        "log: {:?}",
        log.contents()
    );

    let outcome = runtime.run(&exit_code, spec("exit-code", &[], &log)).await;
    assert_eq!(outcome, ExitOutcome::Exited(3), "the sample's default code");
}

#[tokio::test]
async fn guest_sees_exactly_its_declared_args_and_env() {
    let runtime = Runtime::new().unwrap();
    let env_args = prepare(&runtime, "env-args").await;
    let log = Log::new();
    // Proof that the host has an environment for the guest to (not) inherit: cargo sets this
    // for every test process.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());

    let spec = RunSpec {
        env: vec![
            ("GREETING".into(), "hello world".into()),
            ("EMPTY".into(), String::new()),
        ],
        ..spec("env-args", &["one", "two words", "--flag=3"], &log)
    };
    let outcome = runtime.run(&env_args, spec).await;

    assert_eq!(outcome, ExitOutcome::Exited(0));
    let lines: Vec<String> = log.contents().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "arg[0]=env-args",
            "arg[1]=one",
            "arg[2]=two words",
            "arg[3]=--flag=3",
            "env GREETING=hello world",
            "env EMPTY=",
        ],
        "the guest saw more or less than it was given"
    );
    for (name, _) in std::env::vars() {
        assert!(
            !lines.iter().any(|l| l.starts_with(&format!("env {name}="))),
            "host variable {name} leaked into the guest"
        );
    }
}

/// Checks that `outcome` is the trap of an `unreachable` instruction, with its backtrace.
fn assert_unreachable_trap(outcome: &ExitOutcome) {
    let ExitOutcome::Trapped { message } = outcome else {
        panic!("expected a trap, got {outcome:?}");
    };
    assert!(
        message.starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "message: {message}"
    );
    assert!(
        message.contains("wasm backtrace:\n   0: "),
        "message: {message}"
    );
}

#[tokio::test]
async fn trap_is_reported_with_its_message_and_backtrace() {
    let runtime = Runtime::new().unwrap();
    let trap = prepare(&runtime, "trap").await;
    let log = Log::new();

    let outcome = runtime.run(&trap, spec("trap", &[], &log)).await;

    assert_unreachable_trap(&outcome);
    assert!(
        log.contents().contains("about to trap"),
        "output before the trap is kept"
    );
}

#[tokio::test]
async fn the_node_caps_memory_when_the_pod_sets_no_lower_limit() {
    let runtime = Runtime::with_limits(Limits {
        max_pod_memory: 16 << 20,
        ..Limits::default()
    })
    .unwrap();
    let hog = prepare(&runtime, "memory-hog").await;
    for pod_limit in [None, Some(1 << 30)] {
        let log = Log::new();
        let spec = RunSpec {
            memory_limit_bytes: pod_limit,
            preopens: vec![],
            working_dir: None,
            cpu_limit_millicores: None,
            usage: Default::default(),
            outbound: Default::default(),
            ..spec("memory-hog", &["64"], &log)
        };
        let outcome = runtime.run(&hog, spec).await;
        let ExitOutcome::OutOfMemory { message } = outcome else {
            panic!("expected OutOfMemory with {pod_limit:?}, got {outcome:?}");
        };
        assert!(
            message.contains("--max-pod-memory) of 16777216 bytes exceeded"),
            "message: {message}"
        );
    }
}

#[tokio::test]
async fn modules_over_the_size_cap_are_refused_before_compiling() {
    let runtime = Runtime::with_limits(Limits {
        max_module_size: 1024,
        ..Limits::default()
    })
    .unwrap();
    let hello = sample("hello");
    assert_eq!(
        runtime.prepare(hello.clone()).await.unwrap_err(),
        PrepareError::TooLarge {
            size: hello.len() as u64,
            max: 1024
        }
    );
    assert_eq!(runtime.cached_modules(), 0);
}

#[tokio::test]
async fn a_flood_of_output_stops_at_the_log_cap() {
    let runtime = Runtime::with_limits(Limits {
        max_log_size: 64 << 10,
        ..Limits::default()
    })
    .unwrap();
    let flood = prepare(&runtime, "flood").await;
    for mode in ["lines", "bytes"] {
        let log = Log::new();
        let run = runtime.run(&flood, spec("flood", &[mode], &log));
        // The flood never ends on its own: it is stopped after a while, still running.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), run)
                .await
                .is_err()
        );
        let records = log.records();
        assert!(
            records.len() <= (64 << 10) + 512,
            "{mode}: {}",
            records.len()
        );
        assert!(
            log.contents()
                .trim_end()
                .ends_with("further output of this run is discarded]"),
            "{mode}: the log does not end with the truncation notice"
        );
    }
}

#[tokio::test]
async fn growing_memory_past_the_limit_is_out_of_memory() {
    let runtime = Runtime::new().unwrap();
    let hog = prepare(&runtime, "memory-hog").await;
    let log = Log::new();

    let spec = RunSpec {
        memory_limit_bytes: Some(16 << 20),
        preopens: vec![],
        working_dir: None,
        cpu_limit_millicores: None,
        usage: Default::default(),
        outbound: Default::default(),
        ..spec("memory-hog", &["64"], &log)
    };
    let outcome = runtime.run(&hog, spec).await;

    let ExitOutcome::OutOfMemory { message } = outcome else {
        panic!("expected OutOfMemory, got {outcome:?}");
    };
    assert!(
        message.contains("memory limit of 16777216 bytes exceeded"),
        "message: {message}"
    );
    let output = log.contents();
    assert!(output.contains("allocated 8 MiB"), "log: {output:?}");
    assert!(
        !output.contains("allocated 16 MiB"),
        "the limit was not enforced: {output:?}"
    );
}

#[tokio::test]
async fn a_limit_below_the_initial_memory_is_out_of_memory_at_start() {
    let runtime = Runtime::new().unwrap();
    let hello = prepare(&runtime, "hello").await;
    let log = Log::new();

    // A Rust guest starts with over 1 MiB of linear memory (its stack lives there).
    let spec = RunSpec {
        memory_limit_bytes: Some(64 << 10),
        preopens: vec![],
        working_dir: None,
        cpu_limit_millicores: None,
        usage: Default::default(),
        outbound: Default::default(),
        ..spec("hello", &[], &log)
    };
    let outcome = runtime.run(&hello, spec).await;

    assert!(
        matches!(&outcome, ExitOutcome::OutOfMemory { message } if message.contains("65536")),
        "{outcome:?}"
    );
    assert_eq!(log.contents(), "", "the guest never started");
}

#[tokio::test]
async fn memory_within_the_limit_is_fine() {
    let runtime = Runtime::new().unwrap();
    let hog = prepare(&runtime, "memory-hog").await;
    let log = Log::new();

    let spec = RunSpec {
        memory_limit_bytes: Some(64 << 20),
        preopens: vec![],
        working_dir: None,
        cpu_limit_millicores: None,
        usage: Default::default(),
        outbound: Default::default(),
        ..spec("memory-hog", &["16"], &log)
    };
    let outcome = runtime.run(&hog, spec).await;

    assert_eq!(outcome, ExitOutcome::Exited(0), "log: {:?}", log.contents());
    assert!(log.contents().contains("done: holding 16 MiB"));
}

#[tokio::test]
async fn ticker_stops_when_its_future_is_dropped() {
    let runtime = Runtime::new().unwrap();
    let ticker = prepare(&runtime, "ticker").await;
    let log = Log::new();

    let run = runtime.run(&ticker, spec("ticker", &["20"], &log));
    let result = tokio::time::timeout(Duration::from_millis(500), run).await;

    assert!(result.is_err(), "the ticker ended on its own: {result:?}");
    let output = log.contents();
    assert!(output.starts_with("tick 1\ntick 2\n"), "log: {output:?}");
    // The future is gone, so the guest must be too: its log stops growing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        log.contents(),
        output,
        "the guest kept running after it was dropped"
    );
}

#[tokio::test]
async fn ticker_with_a_tick_limit_exits_0() {
    let runtime = Runtime::new().unwrap();
    let ticker = prepare(&runtime, "ticker").await;
    let log = Log::new();

    let outcome = runtime
        .run(&ticker, spec("ticker", &["1", "3"], &log))
        .await;

    assert_eq!(outcome, ExitOutcome::Exited(0));
    assert_eq!(log.contents(), "tick 1\ntick 2\ntick 3\n");
}

/// More spinning guests than worker threads: without epoch yields they would occupy every
/// worker forever, so timers would never fire and the tasks could never be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_guests_yield_and_can_be_cancelled() {
    let runtime = Runtime::new().unwrap();
    let spin = prepare(&runtime, "spin").await;
    let log = Log::new();

    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (runtime, spin, spec) = (runtime.clone(), spin.clone(), spec("spin", &[], &log));
            tokio::spawn(async move { runtime.run(&spin, spec).await })
        })
        .collect();

    // Timers keep firing while the guests spin, until every guest has started. Generous
    // bounds: they fail only if the runtime is starved, when this never finishes.
    let liveness = tokio::time::timeout(Duration::from_secs(30), async {
        while log.contents().matches("spinning\n").count() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    liveness
        .await
        .expect("a timer could not fire while guests were spinning, or a guest never started");

    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let joined = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a spinning guest could not be cancelled");
        assert!(joined.unwrap_err().is_cancelled());
    }
}

#[tokio::test]
async fn bytes_that_are_not_wasm_are_rejected_as_such() {
    let runtime = Runtime::new().unwrap();

    let error = runtime
        .prepare(b"<html>404 Not Found</html>".to_vec())
        .await
        .unwrap_err();

    assert!(matches!(error, PrepareError::NotWasm(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("not a WebAssembly module: missing \\0asm magic"),
        "{error}"
    );
}

#[tokio::test]
async fn garbage_after_the_magic_is_invalid() {
    let runtime = Runtime::new().unwrap();
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend_from_slice(b"this is not a section");

    let error = runtime.prepare(bytes).await.unwrap_err();

    let PrepareError::Invalid(message) = &error else {
        panic!("expected Invalid, got {error:?}");
    };
    assert!(!message.is_empty());
    assert_eq!(runtime.cached_modules(), 0, "failures are not cached");
}

#[tokio::test]
async fn a_module_without_start_is_invalid() {
    let runtime = Runtime::new().unwrap();
    let empty_module = b"\0asm\x01\0\0\0".to_vec();

    let error = runtime.prepare(empty_module).await.unwrap_err();

    assert!(
        matches!(&error, PrepareError::Invalid(m) if m.contains("no `_start` function")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_component_that_neither_runs_nor_serves_is_invalid() {
    let runtime = Runtime::new().unwrap();
    // The preamble of a component (magic, version 0x0d, layer 1) and nothing else: a valid,
    // empty component, which exports no `wasi:cli/run` to start and no HTTP handler.
    let component = b"\0asm\x0d\0\x01\0".to_vec();

    let error = runtime.prepare(component).await.unwrap_err();

    assert!(
        matches!(&error, PrepareError::Invalid(m)
            if m.contains("exports neither `wasi:cli/run` nor `wasi:http/incoming-handler`")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_component_sees_its_args_and_env_writes_its_log_and_exits_with_its_code() {
    let runtime = Runtime::new().unwrap();
    let hello = prepare(&runtime, "hello-p2").await;
    assert_eq!(hello.kind(), WasmKind::Component);
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());

    let log = Log::new();
    let outcome = runtime
        .run(
            &hello,
            RunSpec {
                env: vec![("GREETING".into(), "hello world".into())],
                ..spec("hello-p2", &["one", "two words"], &log)
            },
        )
        .await;

    assert_eq!(outcome, ExitOutcome::Exited(0));
    assert_eq!(
        log.contents(),
        "Hello from a WASI 0.2 component!\n\
         arg[0]=hello-p2\n\
         arg[1]=one\n\
         arg[2]=two words\n\
         env GREETING=hello world\n\
         And this one goes to stderr.\n",
        "the component saw more or less than it was given"
    );

    // Rust's std on wasip2 exits through `wasi:cli/exit`, which carries only success or
    // failure (a code needs the unstable `exit-with-code`): any failing code is 1.
    let log = Log::new();
    let outcome = runtime
        .run(
            &hello,
            RunSpec {
                env: vec![("EXIT_CODE".into(), "7".into())],
                ..spec("hello-p2", &[], &log)
            },
        )
        .await;
    assert_eq!(outcome, ExitOutcome::Exited(1));
    assert!(log.contents().contains("And this one goes to stderr."));
}

/// A command component with nothing but a `wasi:cli/run` whose core function has `body`,
/// written inline: enough to test how runs end without another Rust sample per behaviour.
fn command_component(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (core module $m
                (func $run (export "run") (result i32) {body}))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $cli (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $cli)))"#
    ))
    .expect("valid component text")
}

fn trapping_component() -> Vec<u8> {
    command_component("unreachable")
}

/// On a current-thread runtime, the timer can only fire if the spinning guest yields.
#[tokio::test]
async fn a_spinning_component_yields_and_stops_when_dropped() {
    let runtime = Runtime::new().unwrap();
    let spin = runtime
        .prepare(command_component("(loop br 0) i32.const 0"))
        .await
        .unwrap();
    let log = Log::new();

    let run = runtime.run(&spin, spec("spin", &[], &log));
    let result = tokio::time::timeout(Duration::from_millis(100), run).await;

    assert!(result.is_err(), "the spinning component ended: {result:?}");
}

#[tokio::test]
async fn a_trapping_component_is_reported_like_a_trapping_module() {
    let runtime = Runtime::new().unwrap();
    let component = runtime.prepare(trapping_component()).await.unwrap();
    assert_eq!(component.kind(), WasmKind::Component);
    let log = Log::new();

    let outcome = runtime.run(&component, spec("trap", &[], &log)).await;

    assert_unreachable_trap(&outcome);
}

#[tokio::test]
async fn a_component_past_its_memory_limit_is_out_of_memory() {
    let runtime = Runtime::new().unwrap();
    let hello = prepare(&runtime, "hello-p2").await;
    let log = Log::new();

    let outcome = runtime
        .run(
            &hello,
            RunSpec {
                memory_limit_bytes: Some(64 << 10),
                preopens: vec![],
                working_dir: None,
                cpu_limit_millicores: None,
                usage: Default::default(),
                outbound: Default::default(),
                ..spec("hello-p2", &[], &log)
            },
        )
        .await;

    assert!(
        matches!(&outcome, ExitOutcome::OutOfMemory { message } if message.contains("65536")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_second_runtime_over_the_same_cache_dir_loads_instead_of_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::with_compile_cache(dir.path()).unwrap();
    for name in ["hello", "hello-p2"] {
        prepare(&first, name).await;
    }
    assert_eq!(
        first.compile_cache_stats(),
        Some(CompileCacheStats { hits: 0, misses: 2 }),
        "a fresh cache compiles both"
    );
    drop(first);

    // A new engine with the same configuration: what a restarted node agent has.
    let second = Runtime::with_compile_cache(dir.path()).unwrap();
    let hello = prepare(&second, "hello").await;
    let hello_p2 = prepare(&second, "hello-p2").await;
    assert_eq!(
        second.compile_cache_stats(),
        Some(CompileCacheStats { hits: 2, misses: 0 }),
        "the second runtime compiled again"
    );

    // And the loaded code runs.
    let log = Log::new();
    assert_eq!(
        second.run(&hello, spec("hello", &[], &log)).await,
        ExitOutcome::Exited(0)
    );
    assert_eq!(
        second.run(&hello_p2, spec("hello-p2", &[], &log)).await,
        ExitOutcome::Exited(0)
    );
    assert_eq!(log.contents().matches("goes to stderr").count(), 2);
    assert_eq!(Runtime::new().unwrap().compile_cache_stats(), None);
}

#[tokio::test]
async fn a_module_importing_something_we_lack_is_unsupported_and_names_the_import() {
    let runtime = Runtime::new().unwrap();
    // (module (import "env" "foo" (func)) (func (export "_start")))
    let bytes = [
        b"\0asm\x01\0\0\0".as_slice(),
        &[0x01, 0x04, 0x01, 0x60, 0x00, 0x00], // types: [() -> ()]
        &[
            0x02, 0x0b, 0x01, 0x03, b'e', b'n', b'v', 0x03, b'f', b'o', b'o', 0x00, 0x00,
        ], // import env::foo
        &[0x03, 0x02, 0x01, 0x00],             // functions: one of type 0
        &[
            0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x01,
        ], // export _start = func 1
        &[0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b], // code: empty body
    ]
    .concat();

    let error = runtime.prepare(bytes).await.unwrap_err();

    assert!(
        matches!(&error, PrepareError::Unsupported(m) if m.contains("`env::foo`")),
        "{error:?}"
    );
}

#[tokio::test]
async fn prepare_caches_by_digest() {
    let runtime = Runtime::new().unwrap();
    let bytes = sample("hello");
    let expected = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));

    let first = runtime.prepare(bytes.clone()).await.unwrap();
    let second = runtime.prepare(bytes).await.unwrap();

    assert_eq!(first.digest(), expected);
    assert_eq!(second.digest(), expected);
    assert_eq!(
        runtime.cached_modules(),
        1,
        "the second prepare compiled again"
    );

    let _ = prepare(&runtime, "exit-code").await;
    assert_eq!(runtime.cached_modules(), 2);
    let clone = runtime.clone();
    let _ = prepare(&clone, "exit-code").await;
    assert_eq!(runtime.cached_modules(), 2, "clones share the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_prepares_of_the_same_bytes_share_one_module() {
    let runtime = Runtime::new().unwrap();
    let bytes = sample("ticker");

    let prepares = (0..8).map(|_| runtime.prepare(bytes.clone()));
    let modules = futures::future::try_join_all(prepares).await.unwrap();

    assert!(modules.iter().all(|m| m.digest() == modules[0].digest()));
    assert_eq!(runtime.cached_modules(), 1);
}

#[test]
fn run_future_is_send_so_pods_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::new().unwrap();
    let hello = tokio.block_on(prepare(&runtime, "hello"));
    let log = Log::new();

    let run = runtime.run(&hello, spec("hello", &[], &log));
    assert_send(&run);
    assert_eq!(tokio.block_on(run), ExitOutcome::Exited(0));
}

#[tokio::test]
async fn preopened_volumes_are_visible_at_their_mount_paths_and_read_only_ones_refuse_writes() {
    let runtime = Runtime::new().unwrap();
    let files = prepare(&runtime, "files").await;
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("color"), "blue").unwrap();
    let log = Log::new();
    let mut run = spec(
        "files",
        &[
            "write",
            "/data/out.txt",
            "hi", //
            "cat",
            "/data/out.txt", //
            "cat",
            "/etc/config/color", //
            "write",
            "/etc/config/color",
            "red", //
            "cat",
            "/etc/config/../../../etc/passwd", //
            "cwd",
            "cat",
            "out.txt",
        ],
        &log,
    );
    run.preopens = vec![
        flotilla_node::runtime::Preopen {
            host: data.path().to_path_buf(),
            guest: "/data".into(),
            read_only: false,
        },
        flotilla_node::runtime::Preopen {
            host: config.path().to_path_buf(),
            guest: "/etc/config".into(),
            read_only: true,
        },
    ];
    run.working_dir = Some("/data".into());
    let outcome = runtime.run(&files, run).await;
    let output = log.contents();
    assert!(output.contains("wrote /data/out.txt"), "{output}");
    assert_eq!(
        std::fs::read_to_string(data.path().join("out.txt")).unwrap(),
        "hi"
    );
    assert!(output.contains("cat /data/out.txt: hi"), "{output}");
    assert!(output.contains("cat /etc/config/color: blue"), "{output}");
    assert!(
        output.contains("error: write /etc/config/color"),
        "{output}"
    );
    assert_eq!(
        std::fs::read_to_string(config.path().join("color")).unwrap(),
        "blue"
    );
    assert!(
        output.contains("error: cat /etc/config/../../../etc/passwd"),
        "{output}"
    );
    // WASI preview 1 has no initial working directory (wasi-libc starts in `/`), but
    // relative paths resolve inside workingDir.
    assert!(output.contains("cwd /"), "{output}");
    assert!(output.contains("cat out.txt: hi"), "{output}");
    assert_eq!(outcome, ExitOutcome::Exited(2), "{output}");
}

/// Runs `spin` for `wall` of wall time and returns the CPU time it was charged.
async fn spin_for(
    runtime: &Runtime,
    cpu_limit_millicores: Option<u64>,
    wall: Duration,
) -> Duration {
    let spin = prepare(runtime, "spin").await;
    let log = Log::new();
    let mut run = spec("spin", &[], &log);
    run.cpu_limit_millicores = cpu_limit_millicores;
    let usage = run.usage.clone();
    let stopped = tokio::time::timeout(wall, runtime.run(&spin, run)).await;
    assert!(stopped.is_err(), "spin ended by itself");
    assert!(usage.memory_bytes() > 0, "memory size not counted");
    usage.cpu()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_limit_holds_a_busy_guest_to_its_share_of_a_core() {
    let runtime = Runtime::new().unwrap();
    let wall = Duration::from_millis(1500);
    let unlimited = spin_for(&runtime, None, wall).await;
    let limited = spin_for(&runtime, Some(100), wall).await;
    // Unlimited, the guest is in wasm the whole time; at 100m it may use a tenth of the wall
    // time (plus one epoch tick of overshoot per window, and scheduling slack).
    assert!(
        unlimited >= Duration::from_millis(1200),
        "unlimited: {unlimited:?}"
    );
    assert!(
        limited <= Duration::from_millis(350),
        "limited: {limited:?}"
    );
    assert!(limited >= Duration::from_millis(50), "limited: {limited:?}");
}

#[tokio::test]
async fn calling_an_export_runs_it_in_a_new_instance_that_sees_the_volumes() {
    let runtime = Runtime::new().unwrap();
    let files = prepare(&runtime, "files").await;
    let probe = tempfile::tempdir().unwrap();
    let call = |export: &'static str| {
        let log = Log::new();
        let mut run = spec("files", &[], &log);
        run.preopens = vec![flotilla_node::runtime::Preopen {
            host: probe.path().to_path_buf(),
            guest: "/probe".into(),
            read_only: true,
        }];
        let runtime = runtime.clone();
        let files = files.clone();
        async move { (runtime.call(&files, run, export).await, log.contents()) }
    };
    let (outcome, output) = call("healthz").await;
    assert_eq!(outcome, ExitOutcome::Exited(1));
    assert!(output.contains("/probe/healthy is missing"), "{output}");
    std::fs::write(probe.path().join("healthy"), "").unwrap();
    assert_eq!(call("healthz").await.0, ExitOutcome::Exited(0));
    match call("nothing").await.0 {
        ExitOutcome::Trapped { message } => {
            assert!(
                message.contains("no function named \"nothing\""),
                "{message}"
            )
        }
        other => panic!("calling a missing export: {other:?}"),
    }
}

/// A GET request with an empty body, as the node's HTTP endpoint hands one to a component.
fn get(path: &str) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::builder()
        .uri(path)
        .header("host", "test")
        .body(http_body_util::Empty::new())
        .unwrap()
}

#[tokio::test]
async fn an_http_component_answers_each_request_in_a_fresh_instance() {
    use http_body_util::BodyExt as _;
    let runtime = Runtime::new().unwrap();
    let behaviours = prepare(&runtime, "http-behaviours").await;
    assert!(behaviours.serves_http());
    assert!(!prepare(&runtime, "hello-p2").await.serves_http());
    let timeout = Duration::from_secs(1);
    let log = Log::new();

    let response = runtime
        .handle_request(
            &behaviours,
            spec("web", &[], &log),
            timeout,
            get("/echo?x=1"),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "GET /echo?x=1\n");

    // What a handler prints goes to the container's log.
    let logged = runtime
        .handle_request(
            &behaviours,
            spec("web", &[], &log),
            timeout,
            get("/log/hello-log"),
        )
        .await
        .unwrap();
    assert_eq!(logged.status(), 200);
    assert!(log.contents().contains("hello-log"), "{}", log.contents());

    // Each failure ends its own request with the status a client gets.
    let failure = |path: &'static str| {
        let runtime = runtime.clone();
        let behaviours = behaviours.clone();
        let log = &log;
        let spec = spec("web", &[], log);
        async move {
            runtime
                .handle_request(&behaviours, spec, timeout, get(path))
                .await
                .expect_err(path)
        }
    };
    let trapped = failure("/trap").await;
    assert_eq!(trapped.status(), 500, "{trapped}");
    assert!(trapped.to_string().contains("wasm trap"), "{trapped}");
    let silent = failure("/no-response").await;
    assert_eq!(silent.status(), 502, "{silent}");
    let started = std::time::Instant::now();
    let hung = failure("/hang").await;
    assert_eq!(hung.status(), 504, "{hung}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the runaway handler was stopped"
    );
    let limited = RunSpec {
        memory_limit_bytes: Some(8 << 20),
        ..spec("web", &[], &log)
    };
    let greedy = runtime
        .handle_request(&behaviours, limited, timeout, get("/memory/32"))
        .await
        .expect_err("over the memory limit");
    assert_eq!(greedy.status(), 500, "{greedy}");
    assert!(greedy.to_string().contains("memory limit"), "{greedy}");

    // A command cannot serve.
    let hello = prepare(&runtime, "hello-p2").await;
    let refused = runtime
        .handle_request(&hello, spec("web", &[], &log), timeout, get("/"))
        .await
        .expect_err("a command does not serve");
    assert!(
        refused.to_string().contains("incoming-handler"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_request_given_up_on_stops_its_instance() {
    let runtime = Runtime::new().unwrap();
    let behaviours = prepare(&runtime, "http-behaviours").await;
    let log = Log::new();
    let usage = std::sync::Arc::new(Usage::default());
    let spec = RunSpec {
        usage: usage.clone(),
        ..spec("web", &[], &log)
    };
    // The caller stops waiting long before the request's own 60 s timeout.
    let asked = runtime.handle_request(&behaviours, spec, Duration::from_secs(60), get("/hang"));
    let gave_up = tokio::time::timeout(Duration::from_millis(300), asked).await;
    assert!(gave_up.is_err(), "a hanging handler does not answer");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let spent = usage.cpu();
    assert!(spent > Duration::from_millis(50), "it spun: {spent:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(usage.cpu(), spent, "the abandoned instance kept running");
}
