//! Hostile workloads are contained: a memory bomb, an endless loop, a trap, an output flood, a
//! guest snooping for host files and environment, and huge or malformed modules each end (or
//! are refused) with a Kubernetes-style status, while a ticker pod on the same node keeps
//! ticking and stays Ready throughout.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, wait_until};

/// A ticker pod on the same node as the hostile one, to prove the node keeps serving it.
struct Neighbour<'a> {
    cluster: &'a Cluster,
    ready_since: String,
}

impl<'a> Neighbour<'a> {
    /// Starts the ticker (a tick every 100 ms) and waits until it is Ready and ticking.
    fn start(cluster: &'a Cluster) -> anyhow::Result<Neighbour<'a>> {
        let module = flotilla_e2e::modules_dir().join("ticker.wasm");
        checked_apply(
            cluster,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: neighbour}}\nspec: {{containers: [{{name: ticker, image: \"file://{}\", args: [\"100\"]}}]}}\n",
                module.display()
            ),
        )?;
        cluster.wait_for_field(
            "pod/neighbour",
            ".status.containerStatuses[0].ready",
            "true",
            SETTLE,
        )?;
        let neighbour = Neighbour {
            cluster,
            ready_since: cluster.field(
                "pod/neighbour",
                ".status.conditions[?(@.type==\"Ready\")].lastTransitionTime",
            ),
        };
        neighbour.ticks_past(neighbour.last_tick())?;
        Ok(neighbour)
    }

    /// The number of the last tick in the neighbour's log.
    fn last_tick(&self) -> u64 {
        let out = self.cluster.kubectl(&["logs", "neighbour", "--tail=1"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .strip_prefix("tick ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn ticks_past(&self, tick: u64) -> anyhow::Result<()> {
        wait_until(
            SETTLE,
            &format!("the neighbour to tick past {tick}"),
            || Ok(self.last_tick() > tick),
        )
    }

    /// The neighbour still ticks, never restarted and never stopped being Ready.
    fn assert_undisturbed(&self) -> anyhow::Result<()> {
        let tick = self.last_tick();
        self.ticks_past(tick + 3)?;
        let field = |path| self.cluster.field("pod/neighbour", path);
        assert_eq!(field(".status.containerStatuses[0].ready"), "true");
        assert_eq!(field(".status.containerStatuses[0].restartCount"), "0");
        assert_eq!(
            field(".status.conditions[?(@.type==\"Ready\")].lastTransitionTime"),
            self.ready_since,
            "the neighbour's Ready condition changed meanwhile"
        );
        Ok(())
    }
}

fn apply_pod(cluster: &Cluster, name: &str, spec: &str) -> anyhow::Result<()> {
    checked_apply(
        cluster,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {spec}\n"),
    )?;
    Ok(())
}

fn terminated(cluster: &Cluster, pod: &str, field: &str) -> String {
    cluster.field(
        &format!("pod/{pod}"),
        &format!(".status.containerStatuses[0].state.terminated.{field}"),
    )
}

#[test]
fn memory_bombs_are_oom_killed_with_or_without_a_limit() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--max-pod-memory", "128Mi"])?;
    let neighbour = Neighbour::start(&cluster)?;
    apply_pod(
        &cluster,
        "limited",
        "{restartPolicy: Never, containers: [{name: hog, image: memory-hog, resources: {limits: {memory: 64Mi}}}]}",
    )?;
    apply_pod(
        &cluster,
        "unlimited",
        "{restartPolicy: Never, containers: [{name: hog, image: memory-hog, args: [\"4096\"]}]}",
    )?;
    for pod in ["limited", "unlimited"] {
        cluster.wait_for_field(&format!("pod/{pod}"), ".status.phase", "Failed", SETTLE)?;
        assert_eq!(terminated(&cluster, pod, "reason"), "OOMKilled", "{pod}");
        assert_eq!(terminated(&cluster, pod, "exitCode"), "137", "{pod}");
    }
    let limited = terminated(&cluster, "limited", "message");
    assert!(
        limited.contains("memory limit of 67108864 bytes exceeded"),
        "{limited}"
    );
    let unlimited = terminated(&cluster, "unlimited", "message");
    assert!(
        unlimited.contains("--max-pod-memory") && unlimited.contains("134217728"),
        "{unlimited}"
    );
    neighbour.assert_undisturbed()
}

#[test]
fn an_endless_loop_shares_the_node_and_its_deadline_fails_the_pod() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let neighbour = Neighbour::start(&cluster)?;
    apply_pod(
        &cluster,
        "spin",
        "{activeDeadlineSeconds: 4, containers: [{name: spin, image: spin}]}",
    )?;
    cluster.wait_for_field("pod/spin", ".status.phase", "Running", SETTLE)?;
    // The neighbour ticks on while the loop spins.
    neighbour.assert_undisturbed()?;
    cluster.wait_for_field("pod/spin", ".status.phase", "Failed", SETTLE)?;
    assert_eq!(
        cluster.field("pod/spin", ".status.reason"),
        "DeadlineExceeded"
    );
    assert!(
        cluster
            .field("pod/spin", ".status.message")
            .contains("longer than the specified deadline")
    );
    assert_eq!(terminated(&cluster, "spin", "reason"), "DeadlineExceeded");
    assert_eq!(terminated(&cluster, "spin", "exitCode"), "137");
    assert_eq!(
        cluster.field("pod/spin", ".status.containerStatuses[0].restartCount"),
        "0",
        "a pod past its deadline is not restarted"
    );
    neighbour.assert_undisturbed()
}

#[test]
fn a_trap_on_start_is_an_error_with_its_message_and_crash_loops() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let neighbour = Neighbour::start(&cluster)?;
    apply_pod(
        &cluster,
        "trap",
        "{restartPolicy: Always, containers: [{name: trap, image: trap}]}",
    )?;
    cluster.wait_for_field(
        "pod/trap",
        ".status.containerStatuses[0].state.waiting.reason",
        "CrashLoopBackOff",
        SETTLE,
    )?;
    let last = |field: &str| {
        cluster.field(
            "pod/trap",
            &format!(".status.containerStatuses[0].lastState.terminated.{field}"),
        )
    };
    assert_eq!(last("reason"), "Error");
    assert_eq!(last("exitCode"), "1");
    assert!(
        last("message").contains("unreachable"),
        "{}",
        last("message")
    );
    assert_eq!(
        cluster.field("pod/trap", ".status.containerStatuses[0].restartCount"),
        "1"
    );
    assert!(
        cluster
            .field(
                "pod/trap",
                ".status.containerStatuses[0].state.waiting.message"
            )
            .contains("back-off 10s")
    );
    neighbour.assert_undisturbed()
}

#[test]
fn an_output_flood_is_capped_and_the_pod_keeps_running() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--max-log-size", "1Mi"])?;
    let neighbour = Neighbour::start(&cluster)?;
    for (name, mode) in [("flood-lines", "lines"), ("flood-bytes", "bytes")] {
        apply_pod(
            &cluster,
            name,
            &format!("{{containers: [{{name: flood, image: flood, args: [{mode}]}}]}}"),
        )?;
    }
    for name in ["flood-lines", "flood-bytes"] {
        wait_until(SETTLE, &format!("{name}'s log to be truncated"), || {
            let tail = cluster.kubectl(&["logs", name, "--tail=1"]);
            Ok(String::from_utf8_lossy(&tail.stdout).contains("log truncated after"))
        })?;
    }
    neighbour.assert_undisturbed()?;
    for name in ["flood-lines", "flood-bytes"] {
        assert_eq!(
            cluster.field(&format!("pod/{name}"), ".status.phase"),
            "Running"
        );
        assert_eq!(
            cluster.field(
                &format!("pod/{name}"),
                ".status.containerStatuses[0].restartCount"
            ),
            "0"
        );
    }
    // The files on the node stay at the cap (plus the one truncation record).
    let pods = cluster.data_dir().join("nodes/node-1/pods");
    let mut floods = 0;
    for entry in std::fs::read_dir(&pods)? {
        let dir = entry?.path();
        if !dir.to_string_lossy().contains("_flood-") {
            continue;
        }
        let size = std::fs::metadata(dir.join("flood/0.log"))?.len();
        assert!(size <= (1 << 20) + 512, "{}: {size} bytes", dir.display());
        floods += 1;
    }
    assert_eq!(floods, 2);
    Ok(())
}

#[test]
fn a_snooping_guest_sees_no_host_files_and_only_its_declared_env() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let neighbour = Neighbour::start(&cluster)?;
    apply_pod(
        &cluster,
        "snoop",
        "{restartPolicy: Never, containers: [{name: snoop, image: snoop, env: [{name: DECLARED, value: \"yes\"}]}]}",
    )?;
    cluster.wait_for_field("pod/snoop", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "snoop"])?;
    assert!(!logs.contains("LEAK"), "the guest saw the host:\n{logs}");
    for attempt in [
        "open /etc/passwd: denied",
        "open ../etc/passwd: denied",
        "open /proc/self/environ: denied",
        "list /: denied",
        "list ..: denied",
        "env: 1 variables",
        "env DECLARED=yes",
        "snoop done",
    ] {
        assert!(logs.contains(attempt), "no {attempt:?} in:\n{logs}");
    }
    neighbour.assert_undisturbed()
}

#[test]
fn huge_and_malformed_modules_fail_to_pull_with_a_reason() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    let neighbour = Neighbour::start(&cluster)?;
    let dir = cluster.dir.path();
    // 300 MiB, over the default 256 MiB cap; sparse, so it costs no disk.
    let huge = dir.join("huge.wasm");
    std::fs::File::create(&huge)?.set_len(300 << 20)?;
    let random = dir.join("random.wasm");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&random, noise)?;
    let hello = std::fs::read(flotilla_e2e::modules_dir().join("hello.wasm"))?;
    let truncated = dir.join("truncated.wasm");
    std::fs::write(&truncated, &hello[..hello.len() / 2])?;
    let cases = [
        ("huge", &huge, "over this node's limit of 268435456 bytes"),
        ("random", &random, "not a WebAssembly module"),
        ("truncated", &truncated, "invalid WebAssembly module"),
    ];
    for (name, path, _) in &cases {
        apply_pod(
            &cluster,
            name,
            &format!(
                "{{containers: [{{name: c, image: \"file://{}\"}}]}}",
                path.display()
            ),
        )?;
    }
    for (name, _, expected) in &cases {
        let object = format!("pod/{name}");
        let mut last = String::new();
        wait_until(SETTLE, &format!("{name} to fail its pull"), || {
            last = cluster.field(
                &object,
                ".status.containerStatuses[0].state.waiting.message",
            );
            Ok(last.contains(expected))
        })
        .map_err(|e| e.context(format!("last message: {last:?}")))?;
        let reason = cluster.field(&object, ".status.containerStatuses[0].state.waiting.reason");
        assert!(
            reason == "ErrImagePull" || reason == "ImagePullBackOff",
            "{name}: {reason}"
        );
        assert_eq!(cluster.field(&object, ".status.phase"), "Pending");
    }
    neighbour.assert_undisturbed()
}
