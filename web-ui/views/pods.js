// Pods: every pod live, filtered by namespace, phase, label selector and text.

import { watchAll } from "../api.js";
import { h, syncRows, age, selectorMatcher } from "../dom.js";
import { PHASES, podPhase, podReason, restarts, readyContainers } from "../status.js";

/**
 * Rows on the page at once. A table's layout costs in proportion to its rows, and the browser
 * lays it out again on every change, so a thousand live rows would stutter; the filters narrow
 * what matches and "Show more" adds rows for whoever wants to scroll.
 */
const PAGE = 200;

export default {
  title: "Pods",
  mount(main, query) {
    const namespace = h("select", { id: "pod-namespace", "aria-label": "Namespace" }, h("option", { value: "" }, "all namespaces"));
    const phase = h("select", { id: "pod-phase", "aria-label": "Phase" }, h("option", { value: "" }, "any phase"), PHASES.map((p) => h("option", { value: p }, p)));
    const labels = h("input", { id: "pod-labels", type: "search", placeholder: "app=web,tier!=db", "aria-label": "Label selector", value: query.get("labels") || "" });
    const text = h("input", { id: "pod-text", type: "search", placeholder: "name, node or reason", "aria-label": "Search pods", value: query.get("q") || "" });
    phase.value = query.get("phase") || "";
    const summary = h("p", { id: "pod-count", class: "muted" });
    let limit = PAGE;
    const more = h("button", { type: "button", id: "pod-more", hidden: true, onclick: () => ((limit += PAGE), render()) }, "Show more");
    const tbody = h("tbody", { id: "pod-rows" });
    main.append(
      h("h1", {}, "Pods"),
      h("div", { class: "filters", role: "search" }, namespace, phase, labels, text),
      summary,
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "list", id: "pods" }, h("thead", {}, h("tr", {}, ["Name", "Namespace", "Ready", "Phase", "Reason", "Restarts", "Node", "Age"].map((c) => h("th", { scope: "col" }, c)))), tbody),
      ),
      more,
    );
    let pods = null;
    const wanted = query.get("namespace") || "";
    const render = () => {
      if (!pods || !pods.synced) return;
      const all = [...pods.items.values()];
      const namespaces = [...new Set(all.map((p) => p.metadata.namespace))].sort();
      if (wanted && !namespaces.includes(wanted)) namespaces.push(wanted);
      syncOptions(namespace, namespaces);
      if (wanted && !namespace.dataset.touched) namespace.value = wanted;
      const matches = selectorMatcher(labels.value);
      labels.setCustomValidity(matches ? "" : "not a label selector: use key=value, key!=value, key in (a,b), key or !key");
      labels.toggleAttribute("aria-invalid", !matches);
      const needle = text.value.trim().toLowerCase();
      const now = Date.now();
      const shown = all
        .filter(
          (p) =>
            (!namespace.value || p.metadata.namespace === namespace.value) &&
            (!phase.value || podPhase(p) === phase.value) &&
            (!matches || matches(p.metadata.labels)) &&
            (!needle || `${p.metadata.name} ${p.spec?.nodeName || ""} ${podReason(p)}`.toLowerCase().includes(needle)),
        )
        // Plain comparison: localeCompare over a thousand names each frame costs milliseconds.
        .sort((a, b) => compare(a.metadata.namespace, b.metadata.namespace) || compare(a.metadata.name, b.metadata.name));
      summary.textContent = `${shown.length} of ${all.length} pods${shown.length > limit ? ` (the first ${limit} are listed)` : ""}`;
      more.hidden = shown.length <= limit;
      syncRows(tbody, shown.slice(0, limit), (p) => podRow(p, now));
    };
    for (const input of [namespace, phase, labels, text]) {
      input.addEventListener("input", () => {
        namespace.dataset.touched = "1";
        limit = PAGE;
        render();
      });
    }
    // Ages move even when nothing else does.
    const ticker = setInterval(render, 5000);
    const stop = watchAll(["/api/v1/pods"], (live) => {
      pods = live;
      render();
    });
    return () => {
      clearInterval(ticker);
      stop();
    };
  },
};

const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

function syncOptions(select, namespaces) {
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.join("\n") === namespaces.join("\n")) return;
  const value = select.value;
  select.replaceChildren(select.options[0], ...namespaces.map((n) => h("option", { value: n }, n)));
  select.value = value;
}

function podRow(p, now) {
  const phase = podPhase(p);
  const reason = podReason(p);
  const ns = p.metadata.namespace;
  const name = p.metadata.name;
  const cells = () => [
    h("a", { href: `#/pod/${encodeURIComponent(ns)}/${encodeURIComponent(name)}` }, name),
    ns,
    readyContainers(p),
    h("span", { class: `phase phase-${phase}` }, phase),
    reason ? h("span", { class: /BackOff|Error|OOM|Failed|Err|Deadline|Evicted|Unschedulable|ExitCode|Signal/.test(reason) ? "reason bad" : "reason" }, reason) : "",
    restarts(p),
    p.spec?.nodeName || "",
    age(p.metadata.creationTimestamp, now),
  ];
  return {
    key: `${ns}/${name}`,
    cells,
    signature: `${p.metadata.resourceVersion}|${age(p.metadata.creationTimestamp, now)}`,
    className: `pod-row phase-row-${phase}`,
  };
}
