//! Static pods: `flotilla node --pod-manifest-path DIR` runs the Pods in DIR by itself, shows
//! them in the API as mirror pods, follows edits and removals of the files, and runs them even
//! when no apiserver answers.

use crate::SETTLE;
use flotilla_e2e::{Background, Cluster, flotilla_bin, modules_dir, wait_until};
use std::process::{Command, Stdio};

const TICKER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: ticker}\nspec:\n  containers:\n  - {name: ticker, image: ticker, args: ['100']}\n";

/// The last `tick N` a log shows.
fn last_tick(logs: &str) -> u64 {
    logs.lines()
        .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn static_pods_run_from_files_and_are_mirrored_in_the_api() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let manifests = cluster.dir.path().join("manifests");
    std::fs::create_dir(&manifests)?;
    std::fs::write(manifests.join("ticker.yaml"), TICKER)?;
    // A broken file is skipped with a warning naming it; the good one still runs.
    std::fs::write(manifests.join("broken.yaml"), "kind: Pod\nspec: [")?;
    let manifests_arg = manifests.display().to_string();
    let _node = cluster.join_node("static-1", &["--pod-manifest-path", &manifests_arg])?;

    let pod = "pod/ticker-static-1";
    cluster.wait_for_field(pod, ".status.phase", "Running", SETTLE)?;
    let annotation = |key: &str| {
        cluster.field(
            pod,
            &format!(".metadata.annotations.{}", key.replace('.', "\\.")),
        )
    };
    assert_eq!(annotation("kubernetes.io/config.source"), "file");
    let hash = annotation("kubernetes.io/config.hash");
    assert!(!hash.is_empty());
    assert_eq!(annotation("kubernetes.io/config.mirror"), hash);
    assert!(!annotation("kubernetes.io/config.seen").is_empty());
    assert_eq!(cluster.field(pod, ".spec.nodeName"), "static-1");
    assert_eq!(
        cluster.field(pod, ".metadata.ownerReferences[0].kind"),
        "Node"
    );
    assert_eq!(
        cluster.field(pod, ".metadata.ownerReferences[0].uid"),
        cluster.field("node/static-1", ".metadata.uid")
    );
    wait_until(SETTLE, "ticks in the mirror pod's logs", || {
        Ok(last_tick(&cluster.kubectl_ok(&["logs", "ticker-static-1"])?) >= 3)
    })?;
    let node_log = std::fs::read_to_string(cluster.dir.path().join("node-static-1.log"))?;
    assert!(
        node_log
            .lines()
            .any(|l| l.contains("skipping pod manifest") && l.contains("broken.yaml")),
        "{node_log}"
    );

    // Deleting the mirror does not stop the static pod: the mirror comes back, and the guest
    // kept running all along (no restart, its log goes on).
    let mirror_uid = cluster.field(pod, ".metadata.uid");
    let before = last_tick(&cluster.kubectl_ok(&["logs", "ticker-static-1"])?);
    cluster.kubectl_ok(&["delete", "pod", "ticker-static-1", "--wait=false"])?;
    wait_until(SETTLE, "the mirror pod to be created again", || {
        let uid = cluster.field(pod, ".metadata.uid");
        Ok(!uid.is_empty() && uid != mirror_uid)
    })?;
    cluster.wait_for_field(pod, ".status.phase", "Running", SETTLE)?;
    assert_eq!(
        cluster.field(pod, ".status.containerStatuses[0].restartCount"),
        "0"
    );
    assert_eq!(annotation("kubernetes.io/config.mirror"), hash);
    let logs = cluster.kubectl_ok(&["logs", "ticker-static-1"])?;
    assert!(logs.contains("tick 1\n"), "{logs}");
    assert!(last_tick(&logs) > before, "{before} then {logs}");

    // An edited manifest is a new pod: new hash, the new spec, started afresh.
    std::fs::write(
        manifests.join("ticker.yaml"),
        TICKER.replace("'100'", "'50'"),
    )?;
    wait_until(SETTLE, "the mirror of the edited manifest", || {
        let now = annotation("kubernetes.io/config.mirror");
        Ok(!now.is_empty() && now != hash)
    })?;
    cluster.wait_for_field(pod, ".spec.containers[0].args[0]", "50", SETTLE)?;
    cluster.wait_for_field(pod, ".status.phase", "Running", SETTLE)?;
    assert_ne!(annotation("kubernetes.io/config.hash"), hash);

    // A removed file stops the pod, and its mirror goes.
    std::fs::remove_file(manifests.join("ticker.yaml"))?;
    wait_until(SETTLE, "the mirror pod to go", || {
        let out = cluster.kubectl(&["get", "pod", "ticker-static-1"]);
        Ok(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"))
    })?;
    Ok(())
}

#[test]
fn static_pods_run_while_the_apiserver_is_down_and_are_mirrored_once_it_is_up() -> anyhow::Result<()>
{
    let mut cluster = Cluster::start(0)?;
    cluster.stop()?;
    let out = cluster.dir.path().join("out");
    let manifests = cluster.dir.path().join("manifests");
    std::fs::create_dir(&manifests)?;
    let writer = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: writer}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: file://{}\n    args: [write, /out/hello.txt, hi]\n    volumeMounts: [{{name: out, mountPath: /out}}]\n  volumes: [{{name: out, hostPath: {{path: {}}}}}]\n",
        modules_dir().join("files.wasm").display(),
        out.display(),
    );
    std::fs::write(manifests.join("writer.yml"), writer)?;
    let log = std::fs::File::create(cluster.dir.path().join("node-offline.log"))?;
    let _node = Background(
        Command::new(flotilla_bin())
            .args(["node", "--name", "offline", "--listen", "127.0.0.1:0"])
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .arg("--data-dir")
            .arg(cluster.dir.path().join("offline"))
            .arg("--pod-manifest-path")
            .arg(&manifests)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let hello = out.join("hello.txt");
    wait_until(SETTLE, "the static pod to write its file", || {
        Ok(std::fs::read_to_string(&hello).is_ok_and(|text| text == "hi"))
    })?;

    // The apiserver comes up at the address the node was given: the node registers and
    // the finished pod shows as its mirror, with its final status.
    cluster.resume(0)?;
    cluster.wait_for_field(
        "node/offline",
        r#".status.conditions[?(@.type=="Ready")].status"#,
        "True",
        SETTLE,
    )?;
    cluster.wait_for_field("pod/writer-offline", ".status.phase", "Succeeded", SETTLE)?;
    Ok(())
}
