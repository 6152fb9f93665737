// Apply: paste or upload YAML (several documents), check it with the server (a dry run) and
// apply it with server-side apply, each document's outcome or error shown beside it.

import { call, get } from "../api.js";
import { h, fill } from "../dom.js";

const FIELD_MANAGER = "flotilla-dashboard";

export default {
  title: "Apply",
  mount(main) {
    const text = h("textarea", { id: "apply-text", rows: 18, spellcheck: "false", "aria-label": "YAML to apply", placeholder: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  containers:\n  - name: hello\n    image: hello.wasm" });
    const file = h("input", { type: "file", id: "apply-file", accept: ".yaml,.yml,.json,text/yaml,application/json", "aria-label": "Upload a YAML file" });
    const namespace = h("input", { id: "apply-namespace", value: "default", "aria-label": "Namespace for documents that name none", size: 12 });
    const force = h("input", { type: "checkbox", id: "apply-force" });
    const results = h("ol", { id: "apply-results", class: "results", "aria-live": "polite" });
    const buttons = [];
    const run = (dryRun) => async (event) => {
      event.preventDefault();
      // One run at a time: a second click would send every document again, interleaved.
      buttons.forEach((b) => (b.disabled = true));
      try {
        await applyAll(text.value, namespace.value.trim() || "default", { dryRun, force: force.checked }, results);
      } finally {
        buttons.forEach((b) => (b.disabled = false));
      }
    };
    const validate = h("button", { type: "button", id: "apply-validate", onclick: run(true) }, "Validate");
    const submit = h("button", { type: "submit", id: "apply-submit", class: "primary" }, "Apply");
    buttons.push(validate, submit);
    file.addEventListener("change", async () => {
      if (file.files[0]) text.value = await file.files[0].text();
    });
    main.append(
      h("h1", {}, "Apply"),
      h("p", { class: "muted" }, "Paste or upload manifests; documents separated by ", h("code", {}, "---"), " are applied in order with server-side apply, as ", h("code", {}, "kubectl apply --server-side"), " does."),
      h(
        "form",
        { class: "apply", onsubmit: run(false) },
        text,
        h(
          "div",
          { class: "toolbar" },
          h("label", {}, "Upload ", file),
          h("label", {}, "Default namespace ", namespace),
          h("label", { title: "Take over fields another manager set (kubectl apply --server-side --force-conflicts)" }, force, " Force conflicts"),
          validate,
          submit,
        ),
      ),
      results,
    );
  },
};

/** The documents of a multi-document YAML text, each with the line it starts on. */
export function splitDocuments(text) {
  const documents = [];
  let current = [];
  let start = 1;
  text.split("\n").forEach((line, index) => {
    if (/^---(\s|$)/.test(line)) {
      documents.push({ text: current.join("\n"), line: start });
      current = [];
      start = index + 2;
    } else {
      current.push(line);
    }
  });
  documents.push({ text: current.join("\n"), line: start });
  return documents.filter((d) => d.text.split("\n").some((l) => l.trim() && !l.trim().startsWith("#")));
}

const unquote = (v) => v.trim().replace(/^(["'])(.*)\1$/, "$2");

/**
 * What the URL of a document needs: apiVersion, kind, metadata.name and metadata.namespace.
 * The server parses the whole document; this reads just those fields (JSON, or YAML's block
 * and flow forms of `metadata`).
 */
export function identify(text) {
  const trimmed = text
    .split("\n")
    .filter((l) => !l.trim().startsWith("#"))
    .join("\n")
    .trim();
  if (trimmed.startsWith("{")) {
    try {
      const o = JSON.parse(trimmed);
      return { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata?.name, namespace: o.metadata?.namespace };
    } catch {
      return {};
    }
  }
  const top = (key) => {
    const m = new RegExp(`^${key}:[ \\t]*([^#\\n]*)`, "m").exec(text);
    return m ? unquote(m[1]) : undefined;
  };
  const found = { apiVersion: top("apiVersion"), kind: top("kind") };
  const lines = text.split("\n");
  const at = lines.findIndex((l) => /^metadata:/.test(l));
  if (at >= 0) {
    const flow = /^metadata:\s*\{(.*)\}/.exec(lines[at]);
    if (flow) {
      for (const part of flow[1].split(",")) {
        const [k, ...v] = part.split(":");
        const field = unquote(k);
        if (field === "name" || field === "namespace") found[field] = unquote(v.join(":"));
      }
    } else {
      let indent = null;
      for (const line of lines.slice(at + 1)) {
        if (!line.trim() || line.trim().startsWith("#")) continue;
        const depth = line.length - line.trimStart().length;
        if (depth === 0) break;
        indent ??= depth;
        const m = /^\s*(name|namespace):[ \t]*([^#]*)/.exec(line);
        if (depth === indent && m) found[m[1]] = unquote(m[2]);
      }
    }
  }
  return found;
}

const discovery = new Map();

/** The resource of `kind` in `apiVersion` (its plural and whether it is namespaced), from discovery. */
async function resourceOf(apiVersion, kind) {
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const lookup = async () => {
    if (!discovery.has(base)) discovery.set(base, get(base).catch((e) => (discovery.delete(base), Promise.reject(e))));
    try {
      const list = await discovery.get(base);
      return [list, list.resources.find((r) => r.kind === kind && !r.name.includes("/"))];
    } catch (error) {
      throw new Error(`the server does not serve apiVersion ${apiVersion} (${error.message})`);
    }
  };
  let [list, resource] = await lookup();
  if (!resource) {
    // The kind may have been added since this page asked (a CRD applied a moment ago, say).
    discovery.delete(base);
    [list, resource] = await lookup();
  }
  if (!resource) throw new Error(`apiVersion ${apiVersion} has no kind ${kind}; it serves ${list.resources.filter((r) => !r.name.includes("/")).map((r) => r.kind).join(", ")}`);
  return { base, plural: resource.name, namespaced: resource.namespaced };
}

async function applyAll(text, defaultNamespace, options, results) {
  const documents = splitDocuments(text);
  fill(results);
  if (documents.length === 0) {
    results.append(h("li", { class: "error" }, "Nothing to apply: paste a manifest or upload a file."));
    return;
  }
  for (const [index, document] of documents.entries()) {
    const item = h("li", { class: "pending" }, `document ${index + 1} (line ${document.line}): …`);
    results.append(item);
    await applyOne(document, index, defaultNamespace, options, item);
  }
}

async function applyOne(document, index, defaultNamespace, { dryRun, force }, item) {
  const where = `document ${index + 1} (line ${document.line})`;
  const { apiVersion, kind, name, namespace } = identify(document.text);
  if (kind && /List$/.test(kind)) {
    fill(item, h("b", {}, where), `: a ${kind} cannot be applied as one object; put its items in documents of their own, separated by ---`);
    item.className = "error";
    return;
  }
  const missing = [!apiVersion && "apiVersion", !kind && "kind", !name && "metadata.name"].filter(Boolean);
  if (missing.length) {
    fill(item, h("b", {}, where), `: needs ${missing.join(", ")} to be applied`);
    item.className = "error";
    return;
  }
  const label = `${kind.toLowerCase()}/${name}`;
  try {
    const resource = await resourceOf(apiVersion, kind);
    const scope = resource.namespaced ? `/namespaces/${encodeURIComponent(namespace || defaultNamespace)}` : "";
    const params = new URLSearchParams({ fieldManager: FIELD_MANAGER, fieldValidation: "Strict" });
    if (force) params.set("force", "true");
    if (dryRun) params.set("dryRun", "All");
    const response = await call("PATCH", `${resource.base}${scope}/${resource.plural}/${encodeURIComponent(name)}?${params}`, { body: document.text, contentType: "application/apply-patch+yaml" });
    const verb = response.status === 201 ? "created" : "configured";
    fill(item, h("b", {}, label), ` ${verb}${dryRun ? " (dry run: valid, nothing written)" : ""}`);
    item.className = "ok";
  } catch (error) {
    fill(
      item,
      h("b", {}, `${label}`),
      ` (${where}): `,
      h("span", { class: "message" }, error.message),
      error.causes?.length ? h("ul", {}, error.causes.map((c) => h("li", {}, c.field ? h("code", {}, c.field) : "", c.field ? ": " : "", c.message))) : null,
    );
    item.className = "error";
  }
}
