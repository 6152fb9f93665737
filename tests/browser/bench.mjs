// How the dashboard keeps up with many pods: opens the Pods view in headless Chromium, creates
// N pods through the API (asking for a node label no node has, so they stay Pending and the
// cluster's own work stays small), then changes every one of them, and prints a table of how
// long the page took to show them and how long its main thread was blocked.
//
//   FLOTILLA_SERVER=http://127.0.0.1:6443 FLOTILLA_TOKEN=… node tests/browser/bench.mjs [N]
//
// `cargo bench -p flotilla-e2e --bench dashboard` starts a cluster and runs this.

import { chromium } from "playwright-core";

const server = process.env.FLOTILLA_SERVER;
const token = process.env.FLOTILLA_TOKEN || "";
const count = Number(process.argv[2] || 1000);
const namespace = "dashboard-bench";
const auth = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };

async function api(method, path, body, contentType) {
  const response = await fetch(`${server}${path}`, { method, headers: { ...auth, ...(contentType ? { "Content-Type": contentType } : {}) }, body: body && JSON.stringify(body) });
  if (!response.ok && response.status !== 409) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
}

/** Runs `work(i)` for i in 0..n with `width` requests in flight. */
async function inParallel(n, width, work) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await work(next++);
  }));
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${server}/?token=${encodeURIComponent(token)}#/pods`);
await page.locator("#pod-count").waitFor();
await api("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
await page.fill("#pod-text", "bench-");

// Long tasks (main thread busy > 50 ms) are what makes a page stutter.
await page.evaluate(() => {
  window.benchLongTasks = [];
  new PerformanceObserver((list) => window.benchLongTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: "longtask", buffered: false });
});

const started = performance.now();
await inParallel(count, 16, (i) =>
  api("POST", `/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `bench-${i}`, labels: { app: "bench" } },
    spec: { nodeSelector: { "bench.flotilla.dev/nowhere": "true" }, containers: [{ name: "main", image: "hello" }] },
  }),
);
const created = performance.now() - started;
const listed = (n) => document.querySelector("#pod-count").textContent.startsWith(`${n} of`);
await page.waitForFunction(listed, count, { timeout: 120_000, polling: 50 });
const shown = performance.now() - started;
const createTasks = await page.evaluate(() => window.benchLongTasks.splice(0));

const labelled = performance.now();
await inParallel(count, 16, (i) => api("PATCH", `/api/v1/namespaces/${namespace}/pods/bench-${i}`, { metadata: { labels: { round: "2" } } }, "application/merge-patch+json"));
await page.fill("#pod-labels", "round=2");
await page.waitForFunction(listed, count, { timeout: 120_000, polling: 50 });
const relabelled = performance.now() - labelled;
const updateTasks = await page.evaluate(() => window.benchLongTasks.splice(0));

// One full redraw of the filtered table, as typing in the filter box causes.
const filterTime = await page.evaluate(async () => {
  const input = document.querySelector("#pod-text");
  const t0 = performance.now();
  input.value = "bench-9";
  input.dispatchEvent(new Event("input"));
  const t1 = performance.now();
  input.value = "bench-";
  input.dispatchEvent(new Event("input"));
  return [t1 - t0, performance.now() - t1];
});
const memory = await page.evaluate(() => performance.memory?.usedJSHeapSize || 0);

const stats = (tasks) => (tasks.length ? `${tasks.length} (longest ${Math.round(Math.max(...tasks))} ms)` : "0");
console.log(`| dashboard, ${count} pods (Pods view, headless Chromium) | value |`);
console.log("|---|---|");
console.log(`| create ${count} pods through the API (16 in flight) | ${Math.round(created)} ms |`);
console.log(`| … until the page counts them all | ${Math.round(shown)} ms |`);
console.log(`| long tasks (>50 ms) while they arrived | ${stats(createTasks)} |`);
console.log(`| relabel every pod, until the label filter counts them all | ${Math.round(relabelled)} ms |`);
console.log(`| long tasks while they changed | ${stats(updateTasks)} |`);
console.log(`| filter to 111 pods / back to ${count} (one redraw each) | ${filterTime[0].toFixed(1)} ms / ${filterTime[1].toFixed(1)} ms |`);
console.log(`| JS heap in use | ${(memory / 2 ** 20).toFixed(1)} MiB |`);

await api("DELETE", `/api/v1/namespaces/${namespace}`);
await browser.close();
