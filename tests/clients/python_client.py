"""Drives a flotilla cluster with the official Kubernetes Python client, unchanged.

Run by tests/e2e/clients.rs with the venv scripts/setup makes (target/python-venv) and
KUBECONFIG pointing at the test cluster, which runs with `--watch-history 20` so the 410 Gone
path can be reached in a few writes. Prints `ok: STEP` after each check and exits non-zero with
a traceback at the first failure. Every response goes through the client's typed models, so a
field our API leaves out that the OpenAPI schema requires fails here.
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NS = "py"
# Pod transitions take milliseconds; the deadline is for stalled CI machines.
DEADLINE = 30.0


def ok(step):
    print(f"ok: {step}", flush=True)


def wait_for(what, condition, timeout=DEADLINE):
    """Polls `condition` until it returns something truthy, or fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def expect_status(code, call, *args, **kwargs):
    """Calls the API and asserts it fails with HTTP `code`; returns the ApiException."""
    try:
        call(*args, **kwargs)
    except ApiException as error:
        assert error.status == code, f"expected {code}, got {error.status}: {error.body}"
        return error
    raise AssertionError(f"expected HTTP {code} from {call.__name__}, got success")


def gone(call, *args, **kwargs):
    """True once a read answers 404."""
    try:
        call(*args, **kwargs)
        return False
    except ApiException as error:
        if error.status == 404:
            return True
        raise


def lists(core):
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system"} <= names, names
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    assert core.read_namespace(NS).status.phase == "Active"
    pods = core.list_pod_for_all_namespaces()
    assert pods.metadata.resource_version, "a list carries its resourceVersion"
    ok("list namespaces and pods")


def watch_configmap(core):
    """A watch from a list's resourceVersion replays what came after it, then streams live."""
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"n": "0"}),
    )
    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        NS,
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        cm = event["object"]
        if event["type"] == "BOOKMARK":
            continue
        assert isinstance(cm, client.V1ConfigMap), type(cm)
        seen.append((event["type"], cm.metadata.name, cm.data.get("n")))
        if event["type"] == "ADDED":
            # A change made once the watch is streaming arrives live.
            core.patch_namespaced_config_map("watched", NS, {"data": {"n": "1"}})
        if event["type"] == "MODIFIED":
            w.stop()
    assert seen == [("ADDED", "watched", "0"), ("MODIFIED", "watched", "1")], seen
    ok("watch sees ADDED then MODIFIED")

    # With sendInitialEvents the stream opens with the current objects and a BOOKMARK that
    # carries the list's resourceVersion; the client keeps it to resume from.
    types = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        NS,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=10,
    ):
        types.append(event["type"])
        if event["type"] == "BOOKMARK":
            bookmark_version = event["raw_object"]["metadata"]["resourceVersion"]
            w.stop()
    assert types == ["ADDED", "BOOKMARK"], types
    assert w.resource_version == bookmark_version, (w.resource_version, bookmark_version)
    ok("watch with bookmarks")


def patches(core, apps):
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}),
            data={"colour": "blue", "size": "large"},
        ),
    )
    # A dict body is sent as a strategic merge patch: keys merge, null removes.
    patched = core.patch_namespaced_config_map(
        "settings",
        NS,
        {"metadata": {"labels": {"tier": "web"}}, "data": {"colour": "green", "size": None}},
    )
    assert patched.data == {"colour": "green"}, patched.data
    assert patched.metadata.labels == {"app": "py", "tier": "web"}, patched.metadata.labels
    read = core.read_namespaced_config_map("settings", NS)
    assert read.data == {"colour": "green"}, read.data
    assert read.metadata.resource_version == patched.metadata.resource_version
    ok("strategic merge patch of a ConfigMap")

    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="tickers"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "tickers"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "tickers"}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="ticker", image="ticker", args=["2000"])]
                ),
            ),
        ),
    )
    apps.create_namespaced_deployment(NS, deployment)
    patched = apps.patch_namespaced_deployment(
        "tickers", NS, {"spec": {"replicas": 2}}, _content_type="application/merge-patch+json"
    )
    assert patched.spec.replicas == 2, patched.spec.replicas
    # The whole typed Deployment, status and conditions included, comes back from the read.
    ready = wait_for(
        "the Deployment to have 2 ready replicas",
        lambda: (d := apps.read_namespaced_deployment("tickers", NS)).status.ready_replicas == 2
        and d,
    )
    assert ready.spec.template.spec.containers[0].image == "ticker"
    assert any(c.type == "Available" and c.status == "True" for c in ready.status.conditions)
    pods = core.list_namespaced_pod(NS, label_selector="app=tickers").items
    assert len(pods) == 2, [p.metadata.name for p in pods]
    for pod in pods:
        running = core.read_namespaced_pod(pod.metadata.name, NS)
        assert running.status.phase == "Running", running.status.phase
        assert running.status.container_statuses[0].name == "ticker"
    ok("JSON merge patch of a Deployment's replicas")

    # Objects the cluster itself wrote go through the typed models too.
    (replica_set,) = apps.list_namespaced_replica_set(NS).items
    assert replica_set.status.ready_replicas == 2, replica_set.status
    assert replica_set.metadata.owner_references[0].name == "tickers"
    nodes = core.list_node().items
    assert nodes and nodes[0].status.node_info is not None, nodes
    ready = [c.status for c in nodes[0].status.conditions if c.type == "Ready"]
    assert ready == ["True"], nodes[0].status.conditions
    reasons = {e.reason for e in core.list_namespaced_event(NS).items}
    assert "ScalingReplicaSet" in reasons, reasons
    leases = client.CoordinationV1Api().list_namespaced_lease("kube-node-lease").items
    assert [lease.spec.holder_identity for lease in leases] == [nodes[0].metadata.name], leases
    ok("typed reads of ReplicaSets, Nodes, Events and Leases")


def pods_and_deletes(core, apps):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="hello"),
        spec=client.V1PodSpec(
            restart_policy="Never", containers=[client.V1Container(name="hello", image="hello")]
        ),
    )
    created = core.create_namespaced_pod(NS, pod)
    assert created.metadata.uid
    done = wait_for(
        "the hello pod to succeed",
        lambda: (p := core.read_namespaced_pod("hello", NS)).status.phase == "Succeeded" and p,
    )
    terminated = done.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0, terminated
    log = core.read_namespaced_pod_log("hello", NS)
    assert "Hello from flotilla!" in log, log
    ok("create and read a Pod")

    # Foreground: the Deployment waits for its ReplicaSets and pods to go first.
    apps.delete_namespaced_deployment(
        "tickers", NS, body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    wait_for(
        "the Deployment to be deleted",
        lambda: gone(apps.read_namespaced_deployment, "tickers", NS),
    )
    assert not apps.list_namespaced_replica_set(NS).items
    assert not core.list_namespaced_pod(NS, label_selector="app=tickers").items
    core.delete_namespaced_pod("hello", NS, propagation_policy="Background")
    wait_for("the hello pod to be deleted", lambda: gone(core.read_namespaced_pod, "hello", NS))
    core.delete_namespaced_config_map("settings", NS)
    error = expect_status(404, core.read_namespaced_config_map, "settings", NS)
    assert "NotFound" in error.body, error.body
    ok("delete with propagation policy")


def recovers_from_410(core):
    """A watch from a compacted resourceVersion raises 410; list again and watch from there."""
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="busy"), data={"n": "0"})
    )
    old = core.list_namespaced_config_map(NS).metadata.resource_version
    # The cluster keeps 20 revisions of history: 25 writes push `old` out of it.
    for n in range(1, 26):
        core.patch_namespaced_config_map("busy", NS, {"data": {"n": str(n)}})
    error = None
    try:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, NS, resource_version=old, timeout_seconds=10
        ):
            raise AssertionError("a watch from a compacted resourceVersion delivered an event")
    except ApiException as e:
        error = e
    assert error is not None, "the watch ended without the 410"
    assert error.status == 410, (error.status, error.reason)
    assert "Expired" in error.reason, error.reason
    ok("watch from a compacted resourceVersion raises 410")

    listed = core.list_namespaced_config_map(NS)
    by_name = {cm.metadata.name: cm for cm in listed.items}
    assert by_name["busy"].data["n"] == "25", by_name["busy"].data
    core.patch_namespaced_config_map("busy", NS, {"data": {"n": "after"}})
    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        NS,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=10,
    ):
        seen.append((event["type"], event["object"].data["n"]))
        w.stop()
    assert seen == [("MODIFIED", "after")], seen
    ok("relist and watch again after 410")


def main():
    config.load_kube_config()
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    lists(core)
    # Watches first, while the cluster is quiet: it keeps only 20 revisions of history.
    watch_configmap(core)
    patches(core, apps)
    pods_and_deletes(core, apps)
    recovers_from_410(core)
    print("python client: all checks passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(1)
