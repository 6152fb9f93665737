// What a Kubernetes user reads off an object at a glance: a pod's reason, a workload's
// readiness, an event's time. Shared by the views that show the same objects.

/**
 * kubectl's STATUS column (its printPod): the phase, or what is holding the pod up — an init
 * container (`Init:1/2`, `Init:CrashLoopBackOff`), a waiting or terminated container
 * (`CrashLoopBackOff`, `OOMKilled`, `ExitCode:3`) — or `Terminating`.
 */
export function podStatus(pod) {
  const status = pod.status || {};
  let reason = status.reason || podPhase(pod);
  let initializing = false;
  const inits = status.initContainerStatuses || [];
  for (const [i, c] of inits.entries()) {
    const terminated = c.state?.terminated;
    const waiting = c.state?.waiting;
    if (terminated && terminated.exitCode === 0) continue;
    initializing = true;
    if (terminated) reason = terminated.reason ? `Init:${terminated.reason}` : terminated.signal ? `Init:Signal:${terminated.signal}` : `Init:ExitCode:${terminated.exitCode}`;
    else if (waiting?.reason && waiting.reason !== "PodInitializing") reason = `Init:${waiting.reason}`;
    else reason = `Init:${i}/${(pod.spec?.initContainers || inits).length}`;
    break;
  }
  if (!initializing) {
    let running = false;
    for (const c of [...(status.containerStatuses || [])].reverse()) {
      const terminated = c.state?.terminated;
      if (c.state?.waiting?.reason) reason = c.state.waiting.reason;
      else if (terminated?.reason) reason = terminated.reason;
      else if (terminated) reason = terminated.signal ? `Signal:${terminated.signal}` : `ExitCode:${terminated.exitCode}`;
      else if (c.ready && c.state?.running) running = true;
    }
    if (reason === "Completed" && running) reason = "Running";
  }
  if (pod.metadata.deletionTimestamp) reason = status.reason === "NodeLost" ? "Unknown" : "Terminating";
  return reason;
}

/** The STATUS when it says more than the phase does (shown beside the phase), else "". */
export function podReason(pod) {
  const reason = podStatus(pod);
  if (reason !== podPhase(pod)) return reason;
  const unschedulable = (pod.status?.conditions || []).find((c) => c.type === "PodScheduled" && c.status === "False");
  return unschedulable ? unschedulable.reason || "Unschedulable" : "";
}

export function podPhase(pod) {
  return pod.status?.phase || "Pending";
}

/** Restarts of every container, init containers included, as kubectl counts them. */
export function restarts(pod) {
  const all = [...(pod.status?.initContainerStatuses || []), ...(pod.status?.containerStatuses || [])];
  return all.reduce((sum, s) => sum + (s.restartCount || 0), 0);
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
