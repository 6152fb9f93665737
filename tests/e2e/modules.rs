//! Modules pushed to the cluster (`flotilla push`, the `Module` kind): pods run them by tag and
//! by digest, `imagePullPolicy` decides when a moved tag is looked up again, and bad pushes
//! are refused with a Kubernetes Status that says why.

use crate::SETTLE;
use crate::pods::checked_apply;
use flotilla_e2e::{Cluster, checked, modules_dir, wait_until};
use sha2::Digest as _;

fn digest_of(file: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(modules_dir().join(file))?;
    Ok(format!("sha256:{:x}", sha2::Sha256::digest(&bytes)))
}

fn push(cluster: &Cluster, file: &str, reference: &str) -> anyhow::Result<String> {
    let path = modules_dir().join(file).display().to_string();
    checked(
        cluster.flotilla(&["push", &path, reference], None),
        &format!("flotilla push {file} {reference}"),
    )
}

fn pod(name: &str, image: &str, policy: Option<&str>) -> String {
    let policy = policy.map_or(String::new(), |p| format!(", imagePullPolicy: {p}"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{restartPolicy: Never, containers: [{{name: c, image: \"{image}\"{policy}}}]}}\n"
    )
}

const IMAGE_ID: &str = ".status.containerStatuses[0].imageID";
const WAITING: &str = ".status.containerStatuses[0].state.waiting";

/// Waits until a pod's container is waiting with a message containing `needle`; returns the
/// reason.
fn wait_for_waiting(cluster: &Cluster, pod: &str, needle: &str) -> anyhow::Result<String> {
    let object = format!("pod/{pod}");
    let mut last = String::new();
    wait_until(SETTLE, &format!("{pod} to wait saying {needle:?}"), || {
        last = cluster.field(&object, &format!("{WAITING}.message"));
        Ok(last.contains(needle))
    })
    .map_err(|e| e.context(format!("last message: {last:?}")))?;
    Ok(cluster.field(&object, &format!("{WAITING}.reason")))
}

#[test]
fn pushed_modules_run_by_tag_and_digest_and_moved_tags_follow_the_pull_policy() -> anyhow::Result<()>
{
    let mut cluster = Cluster::start(1)?;
    let first = digest_of("hello.wasm")?;
    let pushed = push(&cluster, "hello.wasm", "hello:v1")?;
    assert!(pushed.contains(&first), "{pushed}");
    assert!(pushed.contains("hello:v1"), "{pushed}");

    let table = cluster.kubectl_ok(&["get", "modules"])?;
    assert!(
        table.contains("TAGS")
            && table
                .lines()
                .any(|l| l.starts_with("hello") && l.contains("v1")),
        "{table}"
    );
    let listed = cluster.kubectl_ok(&[
        "get",
        "module",
        "hello",
        "-o",
        "jsonpath={.spec.tags[0].digest}",
    ])?;
    assert_eq!(listed, first);

    checked_apply(&cluster, &pod("by-tag", "hello:v1", None))?;
    checked_apply(&cluster, &pod("by-digest", &format!("hello@{first}"), None))?;
    for name in ["by-tag", "by-digest"] {
        let object = format!("pod/{name}");
        cluster.wait_for_field(&object, ".status.phase", "Succeeded", SETTLE)?;
        let logs = cluster.kubectl_ok(&["logs", name])?;
        assert!(logs.contains("Hello from flotilla!"), "{name}: {logs}");
        assert_eq!(cluster.field(&object, IMAGE_ID), first, "{name}");
    }
    // A tag that is not `latest` defaults to IfNotPresent, as in Kubernetes.
    assert_eq!(
        cluster.field("pod/by-tag", ".spec.containers[0].imagePullPolicy"),
        "IfNotPresent"
    );

    // Move the tag: IfNotPresent keeps what the node has for it, Always looks it up again.
    let second = digest_of("hello-p2.wasm")?;
    push(&cluster, "hello-p2.wasm", "hello:v1")?;
    checked_apply(
        &cluster,
        &pod("if-not-present", "hello:v1", Some("IfNotPresent")),
    )?;
    checked_apply(&cluster, &pod("always", "hello:v1", Some("Always")))?;
    cluster.wait_for_field("pod/if-not-present", ".status.phase", "Succeeded", SETTLE)?;
    cluster.wait_for_field("pod/always", ".status.phase", "Succeeded", SETTLE)?;
    assert_eq!(cluster.field("pod/if-not-present", IMAGE_ID), first);
    assert_eq!(cluster.field("pod/always", IMAGE_ID), second);
    // The first version stays listed, so pods pinned to it keep resolving.
    let versions = cluster.kubectl_ok(&[
        "get",
        "module",
        "hello",
        "-o",
        "jsonpath={.spec.blobs[*].digest}",
    ])?;
    assert_eq!(versions, format!("{first} {second}"));

    // Never: nothing cached for this tag, so the kubelet's ErrImageNeverPull, and it stays so.
    checked_apply(&cluster, &pod("never", "hello:v7", Some("Never")))?;
    let reason = wait_for_waiting(&cluster, "never", "imagePullPolicy is Never")?;
    assert_eq!(reason, "ErrImageNeverPull");

    // A tag nobody pushed: ErrImagePull, then ImagePullBackOff, naming the tags there are.
    checked_apply(&cluster, &pod("no-tag", "hello:v9", None))?;
    let reason = wait_for_waiting(&cluster, "no-tag", "has no tag \"v9\"")?;
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{reason}"
    );

    // A large file streams with progress (the bytes only need to look like Wasm to upload).
    let big = cluster.dir.path().join("big.wasm");
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.resize(5 * 1024 * 1024, 0);
    std::fs::write(&big, &bytes)?;
    let output = cluster.flotilla(&["push", &big.display().to_string(), "big:v1"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("100%"), "{stderr}");
    let size = cluster.kubectl_ok(&[
        "get",
        "module",
        "big",
        "-o",
        "jsonpath={.spec.tags[0].size}",
    ])?;
    assert_eq!(size, bytes.len().to_string());

    // A restarted node runs what it has on disk without fetching: with the apiserver's copies
    // gone, both versions still start (the tag as the Always pod last resolved it).
    cluster.kill_and_restart(1)?;
    std::fs::remove_dir_all(cluster.data_dir().join("blobs/sha256"))?;
    std::fs::create_dir_all(cluster.data_dir().join("blobs/sha256"))?;
    checked_apply(&cluster, &pod("cached-tag", "hello:v1", None))?;
    checked_apply(
        &cluster,
        &pod("cached-digest", &format!("hello@{first}"), None),
    )?;
    cluster.wait_for_field("pod/cached-tag", ".status.phase", "Succeeded", SETTLE)?;
    cluster.wait_for_field("pod/cached-digest", ".status.phase", "Succeeded", SETTLE)?;
    assert_eq!(cluster.field("pod/cached-tag", IMAGE_ID), second);
    assert_eq!(cluster.field("pod/cached-digest", IMAGE_ID), first);
    Ok(())
}

#[test]
fn bad_pushes_are_refused_with_a_status_and_a_good_one_survives_sigkill() -> anyhow::Result<()> {
    // hello.wasm (41 KiB) fits under the cap, hello-p2.wasm (68 KiB) does not.
    let mut cluster = Cluster::start_with(1, &["--max-module-size", "48Ki"])?;

    let not_wasm = flotilla_e2e::repo_root()
        .join("README.md")
        .display()
        .to_string();
    let refused = cluster.flotilla(&["push", &not_wasm, "readme:v1"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not a WebAssembly module"), "{stderr}");

    let path = modules_dir().join("hello-p2.wasm").display().to_string();
    let refused = cluster.flotilla(&["push", &path, "big:v1"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("413") && stderr.contains("--max-module-size"),
        "{stderr}"
    );
    assert_eq!(cluster.kubectl_ok(&["get", "modules", "-o", "name"])?, "");

    // Raw uploads: bytes that do not match the URL's digest, and a malformed digest. (The
    // size cap is checked through push above: a raw client that keeps writing after the
    // early 413 may see the connection reset before it reads the answer.)
    let blobs = "/apis/flotilla.dev/v1/namespaces/default/modules/raw/blobs";
    let zeros = "0".repeat(64);
    let corrupt = cluster.http(
        "PUT",
        &format!("{blobs}/sha256:{zeros}"),
        Some(("application/wasm", "\0asm\u{1}\0\0\0")),
    )?;
    assert_eq!(corrupt.status, 400, "{}", corrupt.body);
    let status = corrupt.json();
    assert_eq!(status["kind"], "Status");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("corrupted"),
        "{status}"
    );
    let malformed = cluster.http(
        "PUT",
        &format!("{blobs}/sha256:12"),
        Some(("application/wasm", "\0asm")),
    )?;
    assert_eq!(malformed.status, 400, "{}", malformed.body);

    // An acknowledged push is durable: SIGKILL the cluster at once, then run the module.
    push(&cluster, "hello.wasm", "hello:v1")?;
    cluster.kill_and_restart(1)?;
    checked_apply(&cluster, &pod("after-restart", "hello:v1", None))?;
    cluster.wait_for_field("pod/after-restart", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "after-restart"])?;
    assert!(logs.contains("Hello from flotilla!"), "{logs}");
    Ok(())
}
