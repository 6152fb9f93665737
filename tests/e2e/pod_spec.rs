//! What a pod spec asks of the node beyond one container: init containers that run in order
//! before the others, several containers side by side (the classic sidecar) sharing the pod's
//! volumes, each with its own status and logs; volumes (`emptyDir`, `hostPath`, `configMap`,
//! `secret`) as preopened directories, read-only where declared; Secrets in env; and
//! `workingDir`.

use crate::pods::checked_apply;
use crate::{SETTLE, manifest};
use flotilla_e2e::{Cluster, wait_until};

#[test]
fn a_sidecar_ships_what_its_neighbour_writes_to_a_shared_volume_after_init() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.kubectl_ok(&["apply", "-f", &manifest("sidecar.yaml")])?;
    for index in 0..2 {
        cluster.wait_for_field(
            "pod/web",
            &format!(".status.containerStatuses[{index}].ready"),
            "true",
            SETTLE,
        )?;
    }
    assert_eq!(cluster.field("pod/web", ".status.phase"), "Running");
    assert_eq!(
        cluster.field(
            "pod/web",
            ".status.conditions[?(@.type==\"Initialized\")].status"
        ),
        "True"
    );
    assert_eq!(
        cluster.field(
            "pod/web",
            ".status.initContainerStatuses[0].state.terminated.reason"
        ),
        "Completed"
    );
    // The app read what the init container wrote: it ran first, into the same volume.
    wait_until(SETTLE, "the app to log the init container's file", || {
        let logs = cluster.kubectl(&["logs", "web", "-c", "app"]);
        Ok(String::from_utf8_lossy(&logs.stdout).contains("cat /var/log/setup.txt: prepared"))
    })?;
    // The shipper, in another container, reads the app's file as it grows.
    wait_until(SETTLE, "the shipper to ship line 3", || {
        let logs = cluster.kubectl(&["logs", "web", "-c", "shipper"]);
        Ok(String::from_utf8_lossy(&logs.stdout).contains("shipped: line 3"))
    })?;
    let init_log = cluster.kubectl_ok(&["logs", "web", "-c", "setup"])?;
    assert!(init_log.contains("wrote /var/log/setup.txt"), "{init_log}");
    // kubectl picks the first container itself; the API asks which one.
    let ambiguous = cluster.http("GET", "/api/v1/namespaces/default/pods/web/log", None)?;
    assert_eq!(ambiguous.status, 400);
    let message = ambiguous.json()["message"].to_string();
    assert!(
        message.contains("choose one of: [app shipper] or one of the init containers: [setup]"),
        "{message}"
    );
    for name in ["app", "shipper"] {
        assert_eq!(
            cluster.field(
                "pod/web",
                &format!(".status.containerStatuses[?(@.name==\"{name}\")].restartCount")
            ),
            "0"
        );
    }

    // The volume lives in the node's data directory until the pod is deleted.
    let uid = cluster.field("pod/web", ".metadata.uid");
    let volume = cluster
        .data_dir()
        .join("nodes/node-1/volumes")
        .join(&uid)
        .join("logs");
    assert!(volume.join("app.log").is_file(), "{}", volume.display());
    cluster.kubectl_ok(&["delete", "pod", "web", "--wait=true"])?;
    wait_until(SETTLE, "the pod's volume to be removed", || {
        Ok(!volume.exists())
    })?;
    Ok(())
}

#[test]
fn init_containers_run_in_order_and_a_failed_one_fails_the_pod() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    // The second init container reads what the first wrote; any failure fails the pod
    // (restartPolicy Never), so Succeeded proves the order.
    checked_apply(
        &cluster,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ordered}
spec:
  restartPolicy: Never
  initContainers:
  - {name: first, image: files, args: [write, /work/step, one], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: files, args: [cat, /work/step], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: files, args: [cat, /work/step], volumeMounts: [{name: work, mountPath: /work}]}
  volumes: [{name: work, emptyDir: {}}]
"#,
    )?;
    cluster.wait_for_field("pod/ordered", ".status.phase", "Succeeded", SETTLE)?;
    let second = cluster.kubectl_ok(&["logs", "ordered", "-c", "second"])?;
    assert!(second.contains("cat /work/step: one"), "{second}");

    checked_apply(
        &cluster,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: broken-init}
spec:
  restartPolicy: Never
  initContainers:
  - {name: fails, image: exit-code, args: ["4"]}
  containers:
  - {name: main, image: hello}
"#,
    )?;
    cluster.wait_for_field("pod/broken-init", ".status.phase", "Failed", SETTLE)?;
    assert_eq!(
        cluster.field(
            "pod/broken-init",
            ".status.initContainerStatuses[0].state.terminated.exitCode"
        ),
        "4"
    );
    assert_eq!(
        cluster.field(
            "pod/broken-init",
            ".status.conditions[?(@.type==\"Initialized\")].status"
        ),
        "False"
    );
    // The main container never ran.
    assert_eq!(
        cluster.field(
            "pod/broken-init",
            ".status.containerStatuses[0].state.waiting.reason"
        ),
        "PodInitializing"
    );
    let table = cluster.kubectl_ok(&["get", "pod", "broken-init"])?;
    assert!(table.contains("Init:Error"), "{table}");
    Ok(())
}

#[test]
fn config_maps_and_secrets_reach_pods_as_read_only_files_and_env() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ])?;
    // kubectl sends this one as protobuf.
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ])?;
    assert_eq!(cluster.field("secret/creds", ".data.password"), "czNjcmV0");
    let secret = cluster.kubectl_ok(&["get", "secret", "creds", "-o", "yaml"])?;
    assert!(secret.contains("type: Opaque"), "{secret}");
    checked_apply(
        &cluster,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {token: abc123}\n",
    )?;
    assert_eq!(cluster.field("secret/token", ".data.token"), "YWJjMTIz");
    assert_eq!(cluster.field("secret/token", ".stringData"), "");
    let table = cluster.kubectl_ok(&["get", "secrets"])?;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("creds") && l.contains("Opaque")),
        "{table}"
    );

    let host = tempfile::tempdir()?;
    std::fs::write(host.path().join("shared.txt"), "from the host")?;
    checked_apply(
        &cluster,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: configured}}
spec:
  restartPolicy: Never
  containers:
  - name: files
    image: files
    workingDir: /scratch
    args: [cat, /etc/settings/conf/color.txt, cat, /etc/creds/password,
           write, /etc/creds/password, stolen, cat, /host/shared.txt,
           write, out.txt, relative, cat, /scratch/out.txt]
    volumeMounts:
    - {{name: settings, mountPath: /etc/settings}}
    - {{name: creds, mountPath: /etc/creds}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: host, mountPath: /host, readOnly: true}}
  - name: env
    image: env-args
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: APP
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    envFrom:
    - {{secretRef: {{name: token}}, prefix: SECRET_}}
  volumes:
  - {{name: settings, configMap: {{name: settings, items: [{{key: color, path: conf/color.txt}}]}}}}
  - {{name: creds, secret: {{secretName: creds}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: "{}", type: Directory}}}}
"#,
            host.path().display()
        ),
    )?;
    cluster.wait_for_field("pod/configured", ".status.phase", "Failed", SETTLE)?;
    let files = cluster.kubectl_ok(&["logs", "configured", "-c", "files"])?;
    for expected in [
        "cat /etc/settings/conf/color.txt: blue",
        "cat /etc/creds/password: s3cret",
        "error: write /etc/creds/password",
        "cat /host/shared.txt: from the host",
        "wrote out.txt",
        "cat /scratch/out.txt: relative",
    ] {
        assert!(
            files.contains(expected),
            "{expected:?} missing from:\n{files}"
        );
    }
    // The one failure is the write to the read-only secret volume.
    assert_eq!(
        cluster.field(
            "pod/configured",
            ".status.containerStatuses[?(@.name==\"files\")].state.terminated.exitCode"
        ),
        "1"
    );
    let env = cluster.kubectl_ok(&["logs", "configured", "-c", "env"])?;
    assert!(env.contains("env PASSWORD=s3cret"), "{env}");
    assert!(env.contains("env SECRET_token=abc123"), "{env}");
    assert!(env.contains("env APP="), "{env}");
    Ok(())
}

#[test]
fn a_missing_config_map_holds_the_pod_until_it_exists() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--restart-backoff", "200ms"])?;
    checked_apply(
        &cluster,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: waits}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: files, args: [cat, /etc/late/key], volumeMounts: [{name: late, mountPath: /etc/late}]}
  volumes: [{name: late, configMap: {name: late}}]
"#,
    )?;
    wait_until(SETTLE, "a FailedMount event", || {
        let events = cluster.kubectl(&["get", "events", "--field-selector", "reason=FailedMount"]);
        Ok(String::from_utf8_lossy(&events.stdout).contains("configmap \"late\" not found"))
    })?;
    assert_eq!(cluster.field("pod/waits", ".status.phase"), "Pending");
    cluster.kubectl_ok(&["create", "configmap", "late", "--from-literal=key=arrived"])?;
    cluster.wait_for_field("pod/waits", ".status.phase", "Succeeded", SETTLE)?;
    let logs = cluster.kubectl_ok(&["logs", "waits"])?;
    assert!(logs.contains("cat /etc/late/key: arrived"), "{logs}");
    Ok(())
}

#[test]
fn bad_pod_specs_and_secrets_are_refused_with_the_field_at_fault() -> anyhow::Result<()> {
    let cluster = Cluster::start(0)?;
    let refused = |yaml: &str| {
        let out = cluster.kubectl_with_input(&["apply", "-f", "-"], Some(yaml));
        assert!(!out.status.success(), "accepted: {yaml}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let message = refused(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: hello, volumeMounts: [{name: nope, mountPath: /x}]}]}\n",
    );
    assert!(
        message.contains("spec.containers[0].volumeMounts[0].name: Not found: \"nope\""),
        "{message}"
    );
    let message = refused(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: hello}], volumes: [{name: v, persistentVolumeClaim: {claimName: x}}]}\n",
    );
    assert!(
        message.contains("spec.volumes[0].persistentVolumeClaim: Unsupported value"),
        "{message}"
    );
    let message = refused(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {initContainers: [{name: c, image: hello}], containers: [{name: c, image: hello}]}\n",
    );
    assert!(
        message.contains("spec.containers[0].name: Duplicate value: \"c\""),
        "{message}"
    );
    let message = refused(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: hello, volumeMounts: [{name: v, mountPath: relative}]}], volumes: [{name: v, emptyDir: {}}]}\n",
    );
    assert!(message.contains("must be an absolute path"), "{message}");
    let message = refused(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {key: \"not base64!\"}\n",
    );
    assert!(
        message.contains("data[key]") && message.contains("illegal base64 data"),
        "{message}"
    );
    let message =
        refused("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {\"a/b\": x}\n");
    assert!(message.contains("data[a/b]"), "{message}");
    Ok(())
}
