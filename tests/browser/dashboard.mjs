// The dashboard, end to end, in Debian's headless Chromium driven by playwright-core: sign in,
// watch a pod appear live, read its logs, scale a Deployment from the page, invoke a Function,
// apply YAML with an error and then a good one, and check the page at a phone's width.
//
// Run by tests/e2e/dashboard.rs against a real `flotilla up`, with:
//   FLOTILLA_SERVER   http://host:port of the API (and the dashboard)
//   FLOTILLA_TOKEN    the cluster's token
//   KUBECONFIG        for the kubectl calls that change the cluster behind the page's back
//   ARTIFACTS         where screenshots go
//   MANIFESTS         wasm-samples/manifests
//   CHROMIUM          the browser (default /usr/bin/chromium)

import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

const server = process.env.FLOTILLA_SERVER;
const token = process.env.FLOTILLA_TOKEN;
const artifacts = process.env.ARTIFACTS || "target/browser-artifacts";
const WAIT = 30_000;
/** The revisions of history the cluster keeps (`flotilla up --watch-history`, set by dashboard.rs). */
const HISTORY = Number(process.env.WATCH_HISTORY || 300);
assert(server && token && process.env.KUBECONFIG && process.env.MANIFESTS, "FLOTILLA_SERVER, FLOTILLA_TOKEN, KUBECONFIG and MANIFESTS must be set");
mkdirSync(artifacts, { recursive: true });

// The test that runs this script restarts the cluster when asked on stdout, and says so on stdin.
const fromTest = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function restartCluster() {
  console.log("RESTART-CLUSTER");
  const { value } = await fromTest.next();
  assert.equal(value, "restarted", "the test did not restart the cluster");
}

function kubectl(args, input) {
  return execFileSync("kubectl", args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const origin = new URL(server).origin;
const foreign = [];
page.on("request", (request) => {
  const url = request.url();
  if (!url.startsWith(origin) && !url.startsWith("data:")) foreign.push(url);
});
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(error.message));
// What the Content-Security-Policy refused (an inline style, a script from elsewhere): such
// refusals raise no page error, so the page reports them itself.
const policyViolations = [];
await page.exposeFunction("reportPolicyViolation", (text) => policyViolations.push(text));
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) => window.reportPolicyViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
});
/** Every request for the pod list, to tell a resumed watch from a relist. */
const podRequests = [];
page.on("request", (request) => {
  const url = new URL(request.url());
  if (url.pathname === "/api/v1/pods") {
    podRequests.push({ watch: url.searchParams.get("watch") === "1", resourceVersion: url.searchParams.get("resourceVersion") || "" });
  }
});
/** The pod list was watched again from a resourceVersion, and not listed afresh. */
function assertResumed(requests) {
  assert(requests.some((r) => r.watch && r.resourceVersion), `no resumed watch: ${JSON.stringify(requests)}`);
  assert(!requests.some((r) => !r.watch), `listed again instead of resuming: ${JSON.stringify(requests)}`);
}
let navigations = 0;
page.on("framenavigated", (frame) => {
  if (frame === page.mainFrame()) navigations += 1;
});

const badYaml = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad-deploy
spec:
  replicaz: 2
  selector:
    matchLabels: {app: bad-deploy}
  template:
    metadata:
      labels: {app: bad-deploy}
    spec:
      containers:
      - name: main
        image: ticker
`;

const goodYaml = `# two documents
apiVersion: v1
kind: ConfigMap
metadata:
  name: dashboard-settings
data:
  greeting: hello from the dashboard
---
apiVersion: v1
kind: Pod
metadata:
  name: applied-from-dashboard
spec:
  restartPolicy: Never
  containers:
  - name: hello
    image: hello
`;

const functionYaml = `apiVersion: flotilla.dev/v1
kind: Function
metadata: {name: dash-fn}
spec:
  image: hello-http
  minScale: 0
  maxScale: 3
`;

let step = "starting";
async function shot(name) {
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
}

async function run(name, body) {
  step = name;
  const started = Date.now();
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

try {
  await run("sign in with ?token= and see the node on the overview", async () => {
    await page.goto(`${server}/?token=${encodeURIComponent(token)}`);
    assert(!page.url().includes("token="), `the token stays in the address bar: ${page.url()}`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("flotilla.token")), token);
    const card = page.locator('article.node[data-node="node-1"]');
    await card.waitFor({ timeout: WAIT });
    await card.locator(".badge.ok", { hasText: "Ready" }).waitFor({ timeout: WAIT });
    assert.equal(await card.locator('[role="meter"]').count(), 3, "CPU, memory and pods bars");
    await page.locator("#connection.up").waitFor({ timeout: WAIT });
    await shot("overview");
  });

  await run("a pod created with kubectl appears live, then runs", async () => {
    await page.click('nav a[href="#/pods"]');
    await page.locator("#pod-count").waitFor({ timeout: WAIT });
    const before = navigations;
    kubectl(["apply", "-f", "-"], podYaml("ticker-live", "ticker", ["200"]));
    const row = page.locator('#pod-rows tr[data-key="default/ticker-live"]');
    await row.waitFor({ timeout: WAIT });
    await row.locator(".phase-Running").waitFor({ timeout: WAIT });
    assert.equal(await row.locator("td").nth(6).textContent(), "node-1");
    assert.equal(navigations, before, "the page reloaded to show the pod");
    await shot("pods");
  });

  await run("filter pods by label and text", async () => {
    await page.fill("#pod-labels", "app=ticker-live");
    await page.waitForFunction(() => document.querySelectorAll("#pod-rows tr").length === 1);
    await page.fill("#pod-labels", "app=nothing-has-this");
    await page.waitForFunction(() => document.querySelectorAll("#pod-rows tr").length === 0);
    await page.fill("#pod-labels", "");
    await page.fill("#pod-text", "ticker-li");
    await page.waitForFunction(() => document.querySelectorAll("#pod-rows tr").length === 1);
    await page.fill("#pod-text", "");
  });

  await run("a list resumes from its resourceVersion when shown again", async () => {
    // Leaving the Pods view closes its watch; coming back watches again from where it was.
    await page.click('nav a[href="#/apply"]');
    kubectl(["apply", "-f", "-"], podYaml("while-away", "ticker", ["1000"]));
    const before = podRequests.length;
    await page.click('nav a[href="#/pods"]');
    await page.locator('#pod-rows tr[data-key="default/while-away"]').waitFor({ timeout: WAIT });
    assertResumed(podRequests.slice(before));
  });

  await run("a list whose resourceVersion is too old is listed again (410 Gone)", async () => {
    await page.click('nav a[href="#/apply"]');
    // More writes than the cluster keeps history for (--watch-history), while nobody watches.
    const configMaps = Array.from({ length: HISTORY + 50 }, (_, i) => `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"filler-${i}"}}`);
    kubectl(["create", "-f", "-"], `{"apiVersion":"v1","kind":"List","items":[${configMaps.join(",")}]}`);
    kubectl(["apply", "-f", "-"], podYaml("after-the-gap", "ticker", ["1000"]));
    const before = podRequests.length;
    await page.click('nav a[href="#/pods"]');
    await page.locator('#pod-rows tr[data-key="default/after-the-gap"]').waitFor({ timeout: WAIT });
    const since = podRequests.slice(before);
    assert(since.some((r) => !r.watch), `no relist after 410: ${JSON.stringify(since)}`);
    await page.locator("#connection.up").waitFor({ timeout: WAIT });
  });

  await run("after the API server is killed and restarted, the lists resume", async () => {
    await page.click('nav a[href="#/pods"]');
    await page.locator('#pod-rows tr[data-key="default/while-away"]').waitFor({ timeout: WAIT });
    const before = podRequests.length;
    const reconnecting = page.locator("#connection.down").waitFor({ timeout: WAIT });
    await restartCluster();
    await reconnecting;
    kubectl(["apply", "-f", "-"], podYaml("after-restart", "ticker", ["1000"]));
    await page.locator('#pod-rows tr[data-key="default/after-restart"] .phase-Running').waitFor({ timeout: WAIT });
    await page.locator("#connection.up").waitFor({ timeout: WAIT });
    assertResumed(podRequests.slice(before));
  });

  await run("read a pod's logs as they are written", async () => {
    await page.click('#pod-rows tr[data-key="default/ticker-live"] a');
    await page.locator("#pod-phase", { hasText: "Running" }).waitFor({ timeout: WAIT });
    await page.waitForFunction(() => (document.querySelector("#pod-logs").textContent.match(/^tick \d+$/gm) || []).length >= 3, null, { timeout: WAIT });
    const first = (await page.textContent("#pod-logs")).split("\n").filter(Boolean).length;
    // Following: later ticks arrive without asking again.
    await page.waitForFunction((n) => document.querySelector("#pod-logs").textContent.split("\n").filter(Boolean).length > n + 3, first, { timeout: WAIT });
    await page.click("#yaml-details summary");
    const yaml = await page.textContent("#pod-yaml");
    assert.match(yaml, /name: ticker-live/);
    assert.doesNotMatch(yaml, /managedFields/, "kubectl hides managedFields by default");
    await shot("pod-detail");
  });

  await run("scale a Deployment from the page and see its pods follow", async () => {
    kubectl(["apply", "-f", "-"], deploymentYaml("web-scale", 1));
    await page.click('nav a[href="#/workloads"]');
    const row = page.locator('#deployments-rows tr[data-key="default/web-scale"]');
    await row.locator('[data-ready="1/1"]').waitFor({ timeout: WAIT });
    await row.locator('button[data-action="up"]').click();
    await row.locator('[data-ready="2/2"]').waitFor({ timeout: WAIT });
    await row.locator('button[data-action="up"]').click();
    await row.locator('[data-ready="3/3"]').waitFor({ timeout: WAIT });
    assert.equal(kubectl(["get", "deployment", "web-scale", "-o", "jsonpath={.spec.replicas}"]), "3");
    await shot("workloads-scaled");
    await page.click('nav a[href="#/pods"]');
    await page.fill("#pod-labels", "app=web-scale");
    await page.waitForFunction(() => [...document.querySelectorAll("#pod-rows tr")].filter((tr) => tr.querySelector(".phase-Running")).length === 3, null, { timeout: WAIT });
    await page.fill("#pod-labels", "");
    await page.click('nav a[href="#/workloads"]');
    await row.locator('button[data-action="down"]').click();
    await row.locator('[data-ready="2/2"]').waitFor({ timeout: WAIT });
  });

  await run("restart a Deployment from the page: a new ReplicaSet rolls out", async () => {
    const replicaSets = page.locator("#replicasets-rows tr", { hasText: "deployment/web-scale" });
    assert.equal(await replicaSets.count(), 1);
    await page.locator('#deployments-rows tr[data-key="default/web-scale"] button[data-action="restart"]').click();
    await page.waitForFunction(() => [...document.querySelectorAll("#replicasets-rows tr")].filter((tr) => tr.textContent.includes("deployment/web-scale")).length === 2, null, { timeout: WAIT });
    const annotation = kubectl(["get", "deployment", "web-scale", "-o", "jsonpath={.spec.template.metadata.annotations}"]);
    assert.match(annotation, /kubectl.kubernetes.io\/restartedAt/);
    await page.locator('#deployments-rows tr[data-key="default/web-scale"] [data-ready="2/2"]').waitFor({ timeout: WAIT });
    await page.locator('#deployments-rows tr[data-key="default/web-scale"] .badge.ok', { hasText: "complete" }).waitFor({ timeout: WAIT });
  });

  await run("Jobs and DaemonSets show their progress", async () => {
    kubectl(["apply", "-f", `${process.env.MANIFESTS}/job.yaml`, "-f", `${process.env.MANIFESTS}/daemonset.yaml`]);
    const job = page.locator('#jobs-rows tr[data-key="default/hello-batch"]');
    await job.locator(".badge.ok", { hasText: "Complete" }).waitFor({ timeout: WAIT });
    assert.match(await job.textContent(), /3\/3/);
    await page.locator('#daemonsets-rows tr[data-key="default/node-ticker"]', { hasText: "1/1" }).waitFor({ timeout: WAIT });
    await shot("workloads");
  });

  await run("delete a Deployment after confirming", async () => {
    const row = page.locator('#deployments-rows tr[data-key="default/web-scale"]');
    await row.locator('button[data-action="delete"]').click();
    const dialog = page.locator("dialog.confirm[open]");
    await dialog.waitFor();
    await dialog.locator('button[value="cancel"]').click();
    assert.equal(await row.count(), 1, "cancel must keep the Deployment");
    await row.locator('button[data-action="delete"]').click();
    await dialog.locator('button[value="confirm"]').click();
    await row.waitFor({ state: "detached", timeout: WAIT });
  });

  await run("apply YAML with an error, see the server's message, then apply a good one", async () => {
    await page.click('nav a[href="#/apply"]');
    await page.fill("#apply-text", badYaml);
    await page.click("#apply-submit");
    const error = page.locator("#apply-results li.error");
    await error.first().waitFor({ timeout: WAIT });
    const message = await error.first().textContent();
    assert.match(message, /replicaz/, `the server's complaint names the bad field: ${message}`);
    assert(!kubectl(["get", "deployments", "-o", "name"]).includes("bad-deploy"), "the bad document was not written");
    await shot("apply-error");
    await page.fill("#apply-text", goodYaml);
    await page.click("#apply-validate");
    await page.locator("#apply-results li.ok").nth(1).waitFor({ timeout: WAIT });
    assert.match(await page.textContent("#apply-results"), /dry run/);
    assert.throws(() => kubectl(["get", "configmap", "dashboard-settings"]), "a dry run writes nothing");
    await page.click("#apply-submit");
    await page.waitForFunction(() => [...document.querySelectorAll("#apply-results li.ok")].filter((li) => !li.textContent.includes("dry run")).length === 2, null, { timeout: WAIT });
    assert.match(kubectl(["get", "configmap", "dashboard-settings", "-o", "jsonpath={.data.greeting}"]), /hello from the dashboard/);
    await shot("apply-ok");
  });

  await run("invoke a Function and see its metrics move", async () => {
    kubectl(["apply", "-f", "-"], functionYaml);
    await page.click('nav a[href="#/functions"]');
    const row = page.locator('#function-rows tr[data-key="default/dash-fn"]');
    await row.waitFor({ timeout: WAIT });
    await row.locator("a", { hasText: "/function/dash-fn" }).waitFor({ timeout: WAIT });
    // The sparkline has a first rate once two samples of the metrics are in.
    await page.waitForFunction(() => /^[\d.]+$/.test(document.querySelector('#function-rows tr[data-key="default/dash-fn"] .rate')?.textContent || ""), null, { timeout: WAIT });
    await row.locator("button[data-invoke]").click();
    await page.fill("#invoke-path", "/greet?from=browser");
    await page.click("#invoke form button[type=submit]");
    await page.locator("#invoke-status", { hasText: "200" }).waitFor({ timeout: WAIT });
    const output = await page.textContent("#invoke-output");
    assert(output.length > 0, "the Function's answer is shown");
    for (let i = 0; i < 5; i++) await page.click("#invoke form button[type=submit]");
    await page.waitForFunction(() => Number(document.querySelector('#function-rows tr[data-key="default/dash-fn"] .rate')?.textContent) > 0, null, { timeout: WAIT });
    await shot("functions");
  });

  await run("events stream newest first with warnings highlighted", async () => {
    kubectl(["apply", "-f", "-"], podYaml("broken-image", "no-such-module-here", []));
    await page.click('nav a[href="#/events"]');
    const warning = page.locator("#event-rows tr.warning", { hasText: "broken-image" });
    await warning.first().waitFor({ timeout: WAIT });
    await shot("events");
  });

  await run("keyboard: reach a section and its content without a mouse", async () => {
    await page.focus('nav a[href="#/pods"]');
    await page.keyboard.press("Enter");
    await page.locator("#pod-count").waitFor({ timeout: WAIT });
    // The section's content takes the focus, so the next Tab is inside it, not the menu.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "pod-namespace");
    // The skip link, the first stop on the page, jumps to the content and stays on the section.
    await page.click('nav a[href="#/workloads"]');
    await page.reload();
    await page.locator("#deployments-title").waitFor({ timeout: WAIT });
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.className), "skip");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    assert.equal(await page.textContent("main h1"), "Workloads");
  });

  await run("narrow width: nothing overflows the page", async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    for (const view of ["overview", "workloads", "pods", "functions", "events", "apply"]) {
      await page.goto(`${server}/#/${view}`);
      await page.waitForFunction((title) => document.title.startsWith(title), view[0].toUpperCase() + view.slice(1), { timeout: WAIT });
      // Let the lists arrive and fill their tables.
      await page.waitForTimeout(500);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(width <= 376, `#/${view} is ${width}px wide at 375px`);
    }
    await page.goto(`${server}/#/overview`);
    await page.locator('article.node[data-node="node-1"]').waitFor({ timeout: WAIT });
    await shot("overview-narrow");
  });

  await run("no request left this server, no script error, nothing the policy refused", async () => {
    assert.deepEqual(foreign, [], "requests to other origins");
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
    assert.deepEqual(policyViolations, [], "Content-Security-Policy violations");
  });
} catch (error) {
  console.error(`FAILED: ${step}\n${error.stack || error}`);
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
process.exit(0); // stdin stays open for restart requests

function podYaml(name, image, args) {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  labels: {app: ${name}}
spec:
  containers:
  - name: main
    image: ${image}
    args: ${JSON.stringify(args)}
`;
}

function deploymentYaml(name, replicas) {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      containers:
      - name: main
        image: ticker
        args: ["1000"]
`;
}

