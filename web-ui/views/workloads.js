// Workloads: Deployments, ReplicaSets, Jobs and DaemonSets with ready/desired and rollouts as
// they move; scale, restart and delete from the page.

import { watchAll, list, mergePatch, remove } from "../api.js";
import { h, syncRows, meter, age, toast, confirmDialog } from "../dom.js";

const KINDS = [
  { id: "deployments", title: "Deployments", path: "/apis/apps/v1/deployments", columns: ["Name", "Namespace", "Ready", "Up-to-date", "Available", "Rollout", "Age", "Actions"], row: deploymentRow },
  { id: "replicasets", title: "ReplicaSets", path: "/apis/apps/v1/replicasets", columns: ["Name", "Namespace", "Ready", "Owner", "Age", "Actions"], row: replicaSetRow },
  { id: "jobs", title: "Jobs", path: "/apis/batch/v1/jobs", columns: ["Name", "Namespace", "Completions", "Active", "Failed", "Status", "Age", "Actions"], row: jobRow },
  { id: "daemonsets", title: "DaemonSets", path: "/apis/apps/v1/daemonsets", columns: ["Name", "Namespace", "Ready", "Up-to-date", "Rollout", "Age", "Actions"], row: daemonSetRow },
];

export default {
  title: "Workloads",
  mount(main) {
    const bodies = KINDS.map((kind) => {
      const tbody = h("tbody", { id: `${kind.id}-rows` });
      const empty = h("p", { class: "empty", hidden: true }, `No ${kind.title}.`);
      const wrap = h("div", { class: "table-wrap" }, h("table", { class: "list", id: kind.id, onclick: (e) => act(e, kind) }, h("thead", {}, h("tr", {}, kind.columns.map((c) => h("th", { scope: "col" }, c)))), tbody));
      main.append(
        h(
          "section",
          { "aria-labelledby": `${kind.id}-title` },
          h("h2", { id: `${kind.id}-title` }, kind.title),
          wrap,
          empty,
        ),
      );
      return { tbody, empty, wrap };
    });
    main.prepend(h("h1", {}, "Workloads"));
    return watchAll(
      KINDS.map((k) => k.path),
      (...lists) => {
        const now = Date.now();
        lists.forEach((live, i) => {
          if (!live.synced) return;
          const items = [...live.items.values()].sort(byNamespaceAndName);
          syncRows(bodies[i].tbody, items, (item) => KINDS[i].row(item, now));
          bodies[i].empty.hidden = items.length > 0;
          bodies[i].wrap.hidden = items.length === 0;
        });
      },
    );
  },
};

export function byNamespaceAndName(a, b) {
  return a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name);
}

function objectPath(kind, item) {
  const group = kind.path.replace(/\/[a-z]+$/, "");
  return `${group}/namespaces/${encodeURIComponent(item.metadata.namespace)}/${kind.id}/${encodeURIComponent(item.metadata.name)}`;
}

function button(action, label, key, text = label) {
  return h("button", { type: "button", class: action === "delete" ? "danger small" : "small", dataset: { action, key }, "aria-label": `${label} ${key}` }, text);
}

function actions(key, ...names) {
  const labels = { down: ["Scale down", "−"], up: ["Scale up", "+"], restart: ["Restart", "Restart"], delete: ["Delete", "Delete"] };
  return h("td", { class: "actions" }, h("div", {}, names.map((n) => button(n, labels[n][0], key, labels[n][1]))));
}

function row(item, cells, signatureParts, className) {
  const key = `${item.metadata.namespace}/${item.metadata.name}`;
  return { key, cells: () => cells, signature: JSON.stringify(signatureParts), className };
}

function deploymentRow(d, now) {
  const s = d.status || {};
  const desired = d.spec?.replicas ?? 1;
  const ready = s.readyReplicas || 0;
  const updated = s.updatedReplicas || 0;
  const available = s.availableReplicas || 0;
  const moving = (s.observedGeneration || 0) < (d.metadata.generation || 0) || updated < desired || (s.replicas || 0) > updated || available < desired;
  const key = `${d.metadata.namespace}/${d.metadata.name}`;
  const rollout = moving
    ? meter("Rollout", Math.min(updated, ready), desired, `rolling out: ${updated} of ${desired} updated, ${ready} ready${(s.replicas || 0) > updated ? `, ${s.replicas - updated} old` : ""}`, true)
    : h("span", { class: "badge ok" }, "complete");
  return row(
    d,
    [h("b", {}, d.metadata.name), d.metadata.namespace, h("span", { class: ready === desired ? "" : "behind", dataset: { ready: `${ready}/${desired}` } }, `${ready}/${desired}`), updated, available, rollout, age(d.metadata.creationTimestamp, now), actions(key, "down", "up", "restart", "delete")],
    [desired, ready, updated, available, s.replicas, moving, age(d.metadata.creationTimestamp, now)],
    moving ? "moving" : "",
  );
}

function replicaSetRow(rs, now) {
  const desired = rs.spec?.replicas ?? 1;
  const ready = rs.status?.readyReplicas || 0;
  const owner = (rs.metadata.ownerReferences || []).map((o) => `${o.kind.toLowerCase()}/${o.name}`).join(", ");
  const key = `${rs.metadata.namespace}/${rs.metadata.name}`;
  return row(rs, [rs.metadata.name, rs.metadata.namespace, `${ready}/${desired}`, owner, age(rs.metadata.creationTimestamp, now), actions(key, "delete")], [desired, ready, owner, age(rs.metadata.creationTimestamp, now)]);
}

function jobRow(job, now) {
  const s = job.status || {};
  const completions = job.spec?.completions ?? 1;
  const conditions = s.conditions || [];
  const done = conditions.find((c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
  const state = done ? done.type : s.active ? "Running" : "Pending";
  const key = `${job.metadata.namespace}/${job.metadata.name}`;
  return row(
    job,
    [job.metadata.name, job.metadata.namespace, meter("Completions", s.succeeded || 0, completions, `${s.succeeded || 0}/${completions}`, true), s.active || 0, s.failed || 0, h("span", { class: `badge ${state === "Complete" ? "ok" : state === "Failed" ? "bad" : "warn"}`, title: done?.message || "" }, state), age(job.metadata.creationTimestamp, now), actions(key, "delete")],
    [s.succeeded, s.active, s.failed, state, age(job.metadata.creationTimestamp, now)],
  );
}

function daemonSetRow(ds, now) {
  const s = ds.status || {};
  const desired = s.desiredNumberScheduled || 0;
  const ready = s.numberReady || 0;
  const updated = s.updatedNumberScheduled || 0;
  const moving = updated < desired || ready < desired || (s.observedGeneration || 0) < (ds.metadata.generation || 0);
  const key = `${ds.metadata.namespace}/${ds.metadata.name}`;
  return row(
    ds,
    [ds.metadata.name, ds.metadata.namespace, `${ready}/${desired}`, updated, moving ? meter("Rollout", updated, desired, `${updated} of ${desired} updated`, true) : h("span", { class: "badge ok" }, "complete"), age(ds.metadata.creationTimestamp, now), actions(key, "restart", "delete")],
    [desired, ready, updated, moving, age(ds.metadata.creationTimestamp, now)],
    moving ? "moving" : "",
  );
}

/** Replicas asked for by the last scale click per Deployment, until the watch catches up. */
const pendingReplicas = new Map();

async function act(event, kind) {
  const target = event.target.closest("button[data-action]");
  if (!target) return;
  const { action, key } = target.dataset;
  const [namespace, name] = key.split("/");
  const item = { metadata: { namespace, name } };
  const path = objectPath(kind, item);
  const what = `${kind.id.replace(/s$/, "")} ${key}`;
  try {
    if (action === "up" || action === "down") {
      // Quick clicks count from the last target asked for, not from what the watch has shown.
      const current = pendingReplicas.get(key) ?? list(kind.path).items.get(key)?.spec?.replicas ?? 1;
      const replicas = Math.max(0, current + (action === "up" ? 1 : -1));
      pendingReplicas.set(key, replicas);
      setTimeout(() => pendingReplicas.get(key) === replicas && pendingReplicas.delete(key), 2000);
      await mergePatch(path, { spec: { replicas } });
      toast(`Scaled ${what} to ${replicas}`);
    } else if (action === "restart") {
      const restartedAt = new Date().toISOString();
      await mergePatch(path, { spec: { template: { metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": restartedAt } } } } });
      toast(`Restarting ${what}`);
    } else if (action === "delete") {
      if (!(await confirmDialog(`Delete ${what}? Its pods are deleted too.`))) return;
      await remove(path);
      toast(`Deleted ${what}`);
    }
  } catch (error) {
    toast(`${what}: ${error.message}`, "error");
  }
}
