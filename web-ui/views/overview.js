// Overview: every node with what its pods take of it, pods by phase, and recent warnings.

import { watchAll, get } from "../api.js";
import { h, fill, meter, quantity, bytes, cores, age } from "../dom.js";
import { PHASES, podPhase, podRequests, isTerminal, nodeReady, newestEvents, eventTime } from "../status.js";

export default {
  title: "Overview",
  mount(main) {
    const nodesBox = h("div", { class: "cards", id: "nodes" });
    const phasesBox = h("div", { class: "phases", id: "phases" });
    const warningsBox = h("ul", { class: "events", id: "warnings" });
    main.append(
      h("h1", {}, "Overview"),
      h("section", { "aria-labelledby": "nodes-title" }, h("h2", { id: "nodes-title" }, "Nodes"), nodesBox),
      h("section", { "aria-labelledby": "phases-title" }, h("h2", { id: "phases-title" }, "Pods by phase"), phasesBox),
      h("section", { "aria-labelledby": "warnings-title" }, h("h2", { id: "warnings-title" }, "Recent warnings"), warningsBox),
    );
    const usage = new Map();
    let lists = null;
    const drawNodes = () => {
      const [nodes, pods] = lists || [];
      if (nodes?.synced && pods?.synced) renderNodes(nodesBox, [...nodes.items.values()], [...pods.items.values()], usage);
    };
    // What pods really use comes from each node's summary (as `kubectl top` reads it), sampled
    // like a metrics scrape; everything else on the page comes from watches.
    const sampler = setInterval(async () => {
      const nodes = lists?.[0]?.items ? [...lists[0].items.values()].filter(nodeReady).slice(0, MAX_SAMPLED_NODES) : [];
      await Promise.all(nodes.map((node) => sampleUsage(node.metadata.name, usage)));
      drawNodes();
    }, USAGE_EVERY_MS);
    const stop = watchAll(["/api/v1/nodes", "/api/v1/pods", "/api/v1/events"], (nodes, pods, events) => {
      lists = [nodes, pods];
      drawNodes();
      if (pods.synced) renderPhases(phasesBox, [...pods.items.values()]);
      if (events.synced) renderWarnings(warningsBox, [...events.items.values()]);
    });
    return () => {
      clearInterval(sampler);
      stop();
    };
  },
};

const USAGE_EVERY_MS = 3000;
const MAX_SAMPLED_NODES = 50;

async function sampleUsage(name, usage) {
  try {
    const summary = await get(`/api/v1/nodes/${encodeURIComponent(name)}/proxy/stats/summary`);
    const cpuNanos = summary.node?.cpu?.usageCoreNanoSeconds;
    const at = Date.parse(summary.node?.cpu?.time) || Date.now();
    const previous = usage.get(name);
    const cores = previous && cpuNanos >= previous.cpuNanos && at > previous.at ? (cpuNanos - previous.cpuNanos) / ((at - previous.at) * 1e6) : previous?.cores;
    usage.set(name, { cpuNanos, at, cores, memory: summary.node?.memory?.workingSetBytes });
  } catch {
    usage.delete(name);
  }
}

function renderNodes(box, nodes, pods, usage) {
  const byNode = new Map();
  for (const pod of pods) {
    if (!pod.spec?.nodeName || isTerminal(pod)) continue;
    if (!byNode.has(pod.spec.nodeName)) byNode.set(pod.spec.nodeName, []);
    byNode.get(pod.spec.nodeName).push(pod);
  }
  if (nodes.length === 0) {
    fill(box, h("p", { class: "empty" }, "No nodes have joined. Start one with ", h("code", {}, "flotilla node --kubeconfig … --name NAME"), "."));
    return;
  }
  nodes.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  fill(
    box,
    nodes.map((node) => {
      const allocatable = node.status?.allocatable || {};
      const onNode = byNode.get(node.metadata.name) || [];
      let cpu = 0;
      let memory = 0;
      for (const pod of onNode) {
        const r = podRequests(pod, quantity);
        cpu += r.cpu;
        memory += r.memory;
      }
      const cpuTotal = quantity(allocatable.cpu);
      const memoryTotal = quantity(allocatable.memory);
      const podsTotal = quantity(allocatable.pods);
      const ready = nodeReady(node);
      const used = usage.get(node.metadata.name);
      const cpuUsed = used?.cores;
      const memoryUsed = used?.memory;
      return h(
        "article",
        { class: "card node", dataset: { node: node.metadata.name } },
        h("h3", {}, node.metadata.name, " ", h("span", { class: `badge ${ready ? "ok" : "bad"}` }, ready ? "Ready" : "NotReady"), node.spec?.unschedulable ? h("span", { class: "badge warn" }, "SchedulingDisabled") : null),
        meter("CPU", cpuUsed ?? cpu, cpuTotal, `${cpuUsed === undefined ? "" : `${cores(cpuUsed)} used · `}${cores(cpu)} requested / ${cores(cpuTotal)} cores`),
        meter("Memory", memoryUsed ?? memory, memoryTotal, `${memoryUsed === undefined ? "" : `${bytes(memoryUsed)} used · `}${bytes(memory)} requested / ${bytes(memoryTotal)}`),
        meter("Pods", onNode.length, podsTotal, `${onNode.length} / ${podsTotal}`),
        h("p", { class: "muted" }, `up ${age(node.metadata.creationTimestamp)} · ${node.status?.nodeInfo?.kubeletVersion || ""}`),
      );
    }),
  );
}

function renderPhases(box, pods) {
  const counts = Object.fromEntries(PHASES.map((p) => [p, 0]));
  for (const pod of pods) counts[podPhase(pod)] = (counts[podPhase(pod)] || 0) + 1;
  const total = pods.length;
  const bar = h(
    "div",
    { class: "phase-bar", role: "img", "aria-label": PHASES.map((p) => `${counts[p]} ${p}`).join(", ") },
    PHASES.filter((p) => counts[p] > 0).map((p) => h("span", { class: `phase-${p}`, style: `flex-grow:${counts[p]}`, title: `${p}: ${counts[p]}` })),
  );
  fill(
    box,
    h("p", { class: "total" }, `${total} pod${total === 1 ? "" : "s"}`),
    bar,
    h(
      "ul",
      { class: "phase-counts" },
      PHASES.map((p) => h("li", {}, h("a", { href: `#/pods?phase=${p}` }, h("span", { class: `dot phase-${p}` }), h("b", { dataset: { phase: p } }, counts[p]), ` ${p}`))),
    ),
  );
}

function renderWarnings(box, events) {
  const warnings = newestEvents(events.filter((e) => e.type === "Warning")).slice(0, 10);
  if (warnings.length === 0) {
    fill(box, h("li", { class: "empty" }, "No warnings."));
    return;
  }
  fill(
    box,
    warnings.map((e) =>
      h(
        "li",
        { class: "warning" },
        h("span", { class: "when" }, age(eventTime(e))),
        h("b", {}, e.reason),
        " ",
        h("span", { class: "object" }, `${e.involvedObject?.kind?.toLowerCase()}/${e.involvedObject?.name}`),
        " ",
        e.message,
      ),
    ),
  );
}
