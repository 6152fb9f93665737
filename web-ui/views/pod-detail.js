// One pod: its state, its containers, its events, its YAML and its logs, followed live.

import { watchAll, streamLines, remove } from "../api.js";
import { h, fill, age, toYaml, toast, confirmDialog, labelText } from "../dom.js";
import { podPhase, podReason, restarts, readyContainers, newestEvents, eventTime } from "../status.js";

const MAX_LOG_LINES = 5000;

export default {
  title: "Pod",
  mount(main, _query, namespace, name) {
    const key = `${namespace}/${name}`;
    const basePath = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
    const summary = h("dl", { class: "facts", id: "pod-summary" });
    const containers = h("div", { id: "pod-containers" });
    const eventsList = h("ul", { class: "events", id: "pod-events" });
    const yaml = h("pre", { class: "yaml", id: "pod-yaml", tabindex: 0 });
    const logView = h("pre", { class: "logs", id: "pod-logs", tabindex: 0, "aria-label": "Logs", "aria-live": "off" });
    const logState = h("span", { class: "muted", id: "log-state", role: "status" });
    const containerSelect = h("select", { id: "log-container", "aria-label": "Container" });
    const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
    const deleteButton = h("button", { type: "button", class: "danger", id: "delete-pod" }, "Delete pod");
    main.append(
      h("p", {}, h("a", { href: `#/pods?namespace=${encodeURIComponent(namespace)}` }, "← Pods")),
      h("h1", {}, name, " ", h("span", { class: "muted" }, namespace)),
      h("div", { class: "toolbar" }, deleteButton),
      h("section", { "aria-label": "Summary" }, summary, containers),
      h(
        "section",
        { "aria-labelledby": "logs-title" },
        h("h2", { id: "logs-title" }, "Logs"),
        h("div", { class: "toolbar" }, h("label", {}, "Container ", containerSelect), h("label", {}, follow, " Follow"), logState),
        logView,
      ),
      h("section", { "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Events"), eventsList),
      h("details", { id: "yaml-details" }, h("summary", {}, "YAML"), yaml),
    );

    let logs = null;
    const startLogs = () => {
      logs?.abort();
      logs = followLogs(basePath, containerSelect.value, follow.checked, logView, logState);
    };
    containerSelect.addEventListener("change", startLogs);
    follow.addEventListener("change", startLogs);
    deleteButton.addEventListener("click", async () => {
      if (!(await confirmDialog(`Delete pod ${key}?`))) return;
      try {
        await remove(basePath);
        toast(`Deleted pod ${key}`);
      } catch (error) {
        toast(error.message, "error");
      }
    });

    let lastShown = "";
    const stop = watchAll(["/api/v1/pods", "/api/v1/events"], (pods, events) => {
      if (pods.synced) {
        const pod = pods.items.get(key);
        if (!pod) {
          fill(summary, h("p", { class: "empty" }, "This pod does not exist (any more)."));
        } else if (pod.metadata.resourceVersion !== lastShown) {
          lastShown = pod.metadata.resourceVersion;
          renderPod(pod, summary, containers, yaml);
          const names = (pod.spec?.containers || []).map((c) => c.name);
          if ([...containerSelect.options].map((o) => o.value).join() !== names.join()) {
            fill(containerSelect, names.map((n) => h("option", { value: n }, n)));
          }
          if (!logs || (logs.failed && podPhase(pod) !== "Pending")) startLogs();
        }
      }
      if (events.synced) {
        // By uid too: a pod deleted and created again under its name has events of its own.
        const uid = pods.items.get(key)?.metadata.uid;
        const mine = newestEvents(
          [...events.items.values()].filter(
            (e) => e.involvedObject?.kind === "Pod" && e.involvedObject.name === name && (e.involvedObject.namespace || e.metadata.namespace) === namespace && (!uid || !e.involvedObject.uid || e.involvedObject.uid === uid),
          ),
        );
        fill(
          eventsList,
          mine.length === 0
            ? h("li", { class: "empty" }, "No events.")
            : mine.map((e) => h("li", { class: e.type === "Warning" ? "warning" : "" }, h("span", { class: "when" }, age(eventTime(e))), h("b", {}, e.reason), e.count > 1 ? ` (×${e.count})` : "", " ", e.message)),
        );
      }
    });
    return () => {
      stop();
      logs?.abort();
    };
  },
};

function renderPod(pod, summary, containers, yaml) {
  const facts = [
    ["Phase", h("span", { class: `phase phase-${podPhase(pod)}`, id: "pod-phase" }, podPhase(pod))],
    ["Reason", podReason(pod) || "—"],
    ["Ready", readyContainers(pod)],
    ["Restarts", restarts(pod)],
    ["Node", pod.spec?.nodeName || "(not scheduled)"],
    ["Age", age(pod.metadata.creationTimestamp)],
    ["Labels", labelText(pod.metadata.labels) || "—"],
    ["Message", pod.status?.message || "—"],
  ];
  fill(summary, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  fill(
    containers,
    (pod.status?.containerStatuses || []).map((s) => {
      const [state, detail] = Object.entries(s.state || {})[0] || ["unknown", {}];
      const last = s.lastState?.terminated;
      return h(
        "p",
        { class: "container" },
        h("b", {}, s.name), ` ${state}`,
        detail.reason ? ` (${detail.reason})` : "",
        detail.exitCode !== undefined ? ` exit code ${detail.exitCode}` : "",
        detail.message ? `: ${detail.message}` : "",
        last ? h("span", { class: "muted" }, ` · last: ${last.reason || "terminated"} exit code ${last.exitCode}${last.message ? `: ${last.message}` : ""}`) : "",
      );
    }),
  );
  const open = yaml.closest("details")?.open;
  // As kubectl get -o yaml shows it: managedFields only on request.
  const { managedFields: _, ...metadata } = pod.metadata;
  yaml.textContent = toYaml({ ...pod, metadata });
  if (open) yaml.closest("details").open = true;
}

/** Streams a container's log into `view`; with `follow`, keeps the stream open as kubectl logs -f. */
function followLogs(basePath, container, follow, view, state) {
  const controller = new AbortController();
  const handle = { abort: () => controller.abort(), failed: false };
  view.textContent = "";
  const params = new URLSearchParams({ tailLines: "1000" });
  if (container) params.set("container", container);
  if (follow) params.set("follow", "true");
  let lines = 0;
  let batch = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
    view.append(batch);
    batch = "";
    // Trimmed in chunks, so a chatty container does not cost a full re-split every frame.
    if (lines > MAX_LOG_LINES * 1.2) {
      view.textContent = view.textContent.split("\n").slice(-MAX_LOG_LINES).join("\n");
      lines = MAX_LOG_LINES;
    }
    if (atBottom) view.scrollTop = view.scrollHeight;
  };
  state.textContent = follow ? "following…" : "loading…";
  streamLines(
    `${basePath}/log?${params}`,
    (line) => {
      lines += 1;
      batch += `${line}\n`;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(flush);
      }
    },
    controller.signal,
  ).then(
    () => {
      state.textContent = follow ? "the log ended (the container stopped)" : `${lines} lines`;
    },
    (error) => {
      if (controller.signal.aborted) return;
      handle.failed = true;
      state.textContent = error.message;
    },
  );
  return handle;
}
