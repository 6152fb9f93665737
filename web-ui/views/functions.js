// Functions: where each answers, how many instances it has and wants, its request rate and
// latency drawn from the gateway's metrics, and a box to invoke it.

import { watchAll, call, send } from "../api.js";
import { h, fill, syncRows, sparkline } from "../dom.js";
import { byNamespaceAndName } from "./workloads.js";

const SAMPLE_EVERY_MS = 2000;
const SAMPLES = 30;

export default {
  title: "Functions",
  mount(main) {
    const tbody = h("tbody", { id: "function-rows" });
    const empty = h("p", { class: "empty", hidden: true }, "No Functions. Apply one (kind: Function, apiVersion: flotilla.dev/v1) to serve HTTP that scales from zero.");
    const invoke = h("section", { id: "invoke", "aria-labelledby": "invoke-title", hidden: true });
    main.append(
      h("h1", {}, "Functions"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "list", id: "functions", onclick: (e) => openInvoke(e, invoke) },
          h("thead", {}, h("tr", {}, ["Name", "Namespace", "URL", "Instances", "Requests/s", "Mean latency", ""].map((c) => h("th", { scope: "col" }, c)))),
          tbody,
        ),
      ),
      empty,
      invoke,
    );
    const history = new Map();
    let functions = [];
    const render = () => {
      syncRows(tbody, functions, (f) => functionRow(f, history.get(keyOf(f))));
      empty.hidden = functions.length > 0;
    };
    let sampling = false;
    const sampler = setInterval(async () => {
      if (sampling) return; // a slow round is not overlapped by the next
      sampling = true;
      await Promise.all(functions.map((f) => sample(f, history)));
      sampling = false;
      render();
    }, SAMPLE_EVERY_MS);
    const stop = watchAll(["/apis/flotilla.dev/v1/functions"], (live) => {
      if (!live.synced) return;
      functions = [...live.items.values()].sort(byNamespaceAndName);
      // A Function seen for the first time gets its first sample now, so the rate of what
      // happens from here on shows at the next tick rather than the one after.
      const unseen = functions.filter((f) => !history.has(keyOf(f)));
      for (const f of unseen) history.set(keyOf(f), { last: null, rate: [], latency: [], error: "", samples: 0 });
      Promise.all(unseen.map((f) => sample(f, history))).then(render);
      render();
    });
    return () => {
      clearInterval(sampler);
      stop();
    };
  },
};

const keyOf = (f) => `${f.metadata.namespace}/${f.metadata.name}`;

function functionPath(namespace, name) {
  return `/apis/flotilla.dev/v1/namespaces/${encodeURIComponent(namespace)}/functions/${encodeURIComponent(name)}`;
}

/** Sums the samples of one metric family in Prometheus text (this Function's series only). */
function total(text, metric) {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isNaN(value)) {
      sum += value;
      found = true;
    }
  }
  return found ? sum : null;
}

async function sample(f, history) {
  const key = keyOf(f);
  const entry = history.get(key) || { last: null, rate: [], latency: [], error: "", samples: 0 };
  history.set(key, entry);
  try {
    const { value: text } = await call("GET", `${functionPath(f.metadata.namespace, f.metadata.name)}/metrics`);
    const now = { at: performance.now(), count: total(text, "flotilla_gateway_requests_total") ?? 0, seconds: total(text, "flotilla_gateway_request_duration_seconds_sum") ?? 0, timed: total(text, "flotilla_gateway_request_duration_seconds_count") ?? 0 };
    if (entry.last) {
      const elapsed = (now.at - entry.last.at) / 1000;
      const requests = Math.max(0, now.count - entry.last.count);
      const timed = Math.max(0, now.timed - entry.last.timed);
      if (elapsed < 0.2) return; // too close to the last sample to say anything
      entry.samples += 1;
      entry.rate.push(requests / elapsed);
      entry.latency.push(timed > 0 ? ((now.seconds - entry.last.seconds) / timed) * 1000 : 0);
      if (entry.rate.length > SAMPLES) entry.rate.shift();
      if (entry.latency.length > SAMPLES) entry.latency.shift();
    }
    entry.last = now;
    entry.error = "";
  } catch (error) {
    entry.error = error.message;
  }
}

function functionRow(f, stats) {
  const s = f.status || {};
  const key = keyOf(f);
  const rate = stats?.rate.at(-1);
  const latency = stats?.latency.filter((v) => v > 0).at(-1);
  const rateText = rate === undefined ? "…" : rate < 10 ? rate.toFixed(1) : Math.round(rate);
  const latencyText = latency === undefined ? "—" : latency < 10 ? `${latency.toFixed(2)} ms` : `${Math.round(latency)} ms`;
  const cells = () => [
    h("b", {}, f.metadata.name),
    f.metadata.namespace,
    s.url ? (isWebUrl(s.url) ? h("a", { href: s.url, rel: "noreferrer", target: "_blank" }, s.url) : s.url) : h("span", { class: "muted" }, "not routable yet"),
    h("span", { class: "instances", dataset: { ready: s.readyInstances ?? 0, desired: s.desiredInstances ?? 0 } }, `${s.readyInstances ?? 0}/${s.desiredInstances ?? 0}`, (s.desiredInstances ?? 0) === 0 ? h("span", { class: "muted" }, " (scaled to zero)") : ""),
    stats?.error ? h("span", { class: "muted", title: stats.error }, "metrics unavailable") : h("span", { class: "spark" }, sparkline(stats?.rate || [], `requests per second of ${key}`), h("span", { class: "rate" }, rateText)),
    h("span", { class: "spark" }, sparkline(stats?.latency || [], `mean latency of ${key}`), latencyText),
    h("button", { type: "button", class: "small", dataset: { invoke: key }, "aria-label": `Invoke ${key}` }, "Invoke"),
  ];
  return { key, cells, signature: JSON.stringify([f.metadata.resourceVersion, stats?.samples, stats?.error]) };
}

/** Only http(s) addresses become links: a status written by anyone with API access must not run script here. */
function isWebUrl(text) {
  try {
    return ["http:", "https:"].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

function openInvoke(event, section) {
  const button = event.target.closest("button[data-invoke]");
  if (!button) return;
  const [namespace, name] = button.dataset.invoke.split("/");
  const method = h("select", { id: "invoke-method", "aria-label": "Method" }, ["GET", "POST", "PUT", "DELETE"].map((m) => h("option", {}, m)));
  const path = h("input", { id: "invoke-path", value: "/", "aria-label": "Path and query", spellcheck: "false" });
  const body = h("textarea", { id: "invoke-body", rows: 3, "aria-label": "Request body", placeholder: "request body (for POST and PUT)" });
  const result = h("div", { id: "invoke-result", role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "invoke",
      onsubmit: async (e) => {
        e.preventDefault();
        fill(result, h("span", { class: "muted" }, "calling…"));
        const started = performance.now();
        try {
          const suffix = path.value.startsWith("/") ? path.value : `/${path.value}`;
          const response = await send(method.value, `${functionPath(namespace, name)}/proxy${suffix}`, { body: body.value, contentType: "text/plain; charset=utf-8" });
          const text = await response.text();
          const took = performance.now() - started;
          const server = /dur=([\d.]+)/.exec(response.headers.get("Server-Timing") || "");
          fill(
            result,
            h("p", {}, h("b", { class: response.ok ? "ok-text" : "bad-text", id: "invoke-status" }, `${response.status} ${response.statusText}`), ` in ${took.toFixed(1)} ms`, server ? ` (gateway ${server[1]} ms)` : ""),
            h("pre", { class: "logs", id: "invoke-output" }, text),
          );
        } catch (error) {
          fill(result, h("p", { class: "bad-text" }, error.message));
        }
      },
    },
    h("div", { class: "toolbar" }, method, path, h("button", { type: "submit" }, "Send")),
    body,
  );
  section.hidden = false;
  fill(section, h("h2", { id: "invoke-title" }, `Invoke ${name}`, h("span", { class: "muted" }, ` ${namespace}`)), form, result);
  path.focus();
}
