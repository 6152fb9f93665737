// What a Kubernetes user reads off an object at a glance: a pod's reason, a workload's
// readiness, an event's time. Shared by the views that show the same objects.

/** kubectl's STATUS column: the most telling reason a pod is in its state. */
export function podReason(pod) {
  if (pod.metadata.deletionTimestamp) return "Terminating";
  const statuses = [...(pod.status?.initContainerStatuses || []), ...(pod.status?.containerStatuses || [])];
  for (const s of statuses) {
    if (s.state?.waiting?.reason && s.state.waiting.reason !== "ContainerCreating") return s.state.waiting.reason;
    const terminated = s.state?.terminated;
    if (terminated && terminated.reason && terminated.reason !== "Completed") return terminated.reason;
  }
  if (pod.status?.reason) return pod.status.reason;
  for (const s of statuses) {
    if (s.lastState?.terminated?.reason && pod.status?.phase === "Running") return `last: ${s.lastState.terminated.reason}`;
  }
  const unschedulable = (pod.status?.conditions || []).find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unschedulable) return unschedulable.reason || "Unschedulable";
  return "";
}

export function podPhase(pod) {
  return pod.status?.phase || "Pending";
}

export function restarts(pod) {
  return (pod.status?.containerStatuses || []).reduce((sum, s) => sum + (s.restartCount || 0), 0);
}

export function readyContainers(pod) {
  const statuses = pod.status?.containerStatuses || [];
  const total = pod.spec?.containers?.length || statuses.length;
  return `${statuses.filter((s) => s.ready).length}/${total}`;
}

/** What a pod asks of its node: requests, or limits where only limits are set (as Kubernetes defaults them). */
export function podRequests(pod, quantity) {
  let cpu = 0;
  let memory = 0;
  for (const c of pod.spec?.containers || []) {
    const r = c.resources || {};
    cpu += quantity(r.requests?.cpu ?? r.limits?.cpu);
    memory += quantity(r.requests?.memory ?? r.limits?.memory);
  }
  return { cpu, memory };
}

export function isTerminal(pod) {
  const phase = podPhase(pod);
  return phase === "Succeeded" || phase === "Failed";
}

export function nodeReady(node) {
  const ready = (node.status?.conditions || []).find((c) => c.type === "Ready");
  return ready ? ready.status === "True" : false;
}

/** When an event last happened, whichever of its times is set. */
export function eventTime(event) {
  return event.lastTimestamp || event.eventTime || event.series?.lastObservedTime || event.firstTimestamp || event.metadata.creationTimestamp;
}

export function newestEvents(events) {
  return [...events].sort((a, b) => Date.parse(eventTime(b)) - Date.parse(eventTime(a)) || (b.metadata.resourceVersion - a.metadata.resourceVersion));
}

export const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
