// Small helpers every view uses: building elements, keeping a table's rows in step with a list
// without rebuilding it (a thousand pods must stay smooth), and reading Kubernetes values.

/** `h("a", {href: "#/pods", class: "x"}, "text", child…)`: an element with attributes and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (name === "style") element.style.cssText = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/**
 * Keeps `tbody`'s rows equal to `items`, in order. `row(item)` answers `{ key, signature, cells }`
 * where `signature` is a string that changes whenever the row's content does and `cells()`
 * builds the row's cells. Rows whose signature is unchanged are left alone (nothing is built for
 * them, and focus and selection survive), which keeps a thousand-row table cheap to update.
 */
export function syncRows(tbody, items, row) {
  const existing = new Map();
  for (const tr of tbody.children) existing.set(tr.dataset.key, tr);
  let previous = null;
  const kept = new Set();
  for (const item of items) {
    const { key, cells, signature, className } = row(item);
    kept.add(key);
    let tr = existing.get(key);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = key;
    }
    if (tr.dataset.signature !== signature) {
      tr.dataset.signature = signature;
      tr.className = className || "";
      // A rebuilt row must not take the keyboard focus away from whoever is on its button.
      const focused = tr.contains(document.activeElement) ? focusSelector(document.activeElement) : null;
      fill(tr, cells().map((cell) => (cell instanceof Node && cell.tagName === "TD" ? cell : h("td", {}, cell))));
      if (focused) tr.querySelector(focused)?.focus();
    }
    const expected = previous ? previous.nextSibling : tbody.firstChild;
    if (expected !== tr) tbody.insertBefore(tr, expected);
    previous = tr;
  }
  for (const [key, tr] of existing) if (!kept.has(key)) tr.remove();
}

function focusSelector(element) {
  if (element.dataset.action) return `[data-action="${element.dataset.action}"]`;
  if (element.dataset.invoke) return "[data-invoke]";
  if (element.tagName === "A") return "a";
  return null;
}

/** "3s", "5m", "2h", "4d" since an RFC 3339 timestamp, as kubectl prints ages. */
export function age(timestamp, now = Date.now()) {
  if (!timestamp) return "";
  const seconds = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

const BINARY = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL = { n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A Kubernetes quantity ("250m", "64Mi", "1e3") as a number; 0 when absent or malformed. */
export function quantity(text) {
  if (text === undefined || text === null) return 0;
  const match = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$/.exec(String(text).trim());
  if (!match) return 0;
  const number = Number(match[1]);
  return number * (BINARY[match[2]] ?? DECIMAL[match[2]] ?? 1);
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function cores(n) {
  return n < 1 ? `${Math.round(n * 1000)}m` : `${Number(n.toFixed(2))}`;
}

/**
 * A bar of `used` out of `total` with a label. A capacity (the default) turns amber and red as
 * it fills; a `progress` bar (rollouts, completions) stays one colour, since full is good.
 */
export function meter(label, used, total, text, progress = false) {
  const fraction = total > 0 ? Math.min(1, used / total) : 0;
  const level = progress ? "progress" : fraction > 0.9 ? "high" : fraction > 0.7 ? "mid" : "low";
  return h(
    "div",
    { class: "meter" },
    h("span", { class: "meter-label" }, label),
    h(
      "span",
      {
        class: `meter-bar ${level}`,
        role: "meter",
        "aria-label": label,
        "aria-valuemin": 0,
        "aria-valuemax": total,
        "aria-valuenow": used,
      },
      h("span", { class: "meter-fill", style: `width:${(fraction * 100).toFixed(1)}%` }),
    ),
    h("span", { class: "meter-text" }, text),
  );
}

/** A small SVG line of the last values, for request rates and latencies. */
export function sparkline(values, label) {
  const width = 120;
  const height = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (values.length > 1) {
    const max = Math.max(...values, 1e-9);
    const step = width / (values.length - 1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    svg.append(line);
  }
  return svg;
}

/** Labels as `a=b` pairs. */
export function labelText(labels) {
  return Object.entries(labels || {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

/**
 * Whether `labels` match a selector in kubectl's syntax: `app=web,tier!=db,env in (a,b),key,!key`.
 * Answers null when the selector cannot be read, so the page can say so.
 */
export function selectorMatcher(selector) {
  const terms = [];
  const text = selector.trim();
  if (!text) return () => true;
  const parts = text.match(/([^,(]+(\([^)]*\))?)/g) || [];
  for (const raw of parts) {
    const part = raw.trim();
    if (!part) continue;
    let m;
    if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(part))) {
      const [, key, op, value] = m;
      terms.push((l) => (op === "!=" ? l[key] !== value : l[key] === value));
    } else if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part))) {
      const values = m[3].split(",").map((v) => v.trim());
      const key = m[1];
      terms.push((l) => (m[2] === "in" ? key in l && values.includes(l[key]) : !values.includes(l[key])));
    } else if ((m = /^!([\w./-]+)$/.exec(part))) {
      const key = m[1];
      terms.push((l) => !(key in l));
    } else if ((m = /^([\w./-]+)$/.exec(part))) {
      const key = m[1];
      terms.push((l) => key in l);
    } else {
      return null;
    }
  }
  return (labels) => terms.every((term) => term(labels || {}));
}

const PLAIN = /^[A-Za-z_/][\w ./@()-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|y|n)$/i;

/** An object as YAML, for reading (a pod's detail), laid out as kubectl prints it. */
export function toYaml(value) {
  return `${yamlLines(value, "").join("\n")}\n`;
}

function scalar(value) {
  if (Array.isArray(value)) return "[]";
  if (value && typeof value === "object") return "{}";
  if (typeof value === "string") {
    const plain = PLAIN.test(value) && !RESERVED.test(value) && !/\s$/.test(value);
    return plain ? value : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

const nested = (value) => value !== null && typeof value === "object" && Object.keys(value).length > 0;

function yamlLines(value, indent) {
  const lines = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (!nested(item)) lines.push(`${indent}- ${scalar(item)}`);
      else if (Array.isArray(item)) lines.push(`${indent}-`, ...yamlLines(item, `${indent}  `));
      else {
        const inner = yamlLines(item, `${indent}  `);
        inner[0] = `${indent}- ${inner[0].trimStart()}`;
        lines.push(...inner);
      }
    }
  } else if (nested(value)) {
    for (const [key, item] of Object.entries(value)) {
      const name = PLAIN.test(key) && !RESERVED.test(key) ? key : JSON.stringify(key);
      if (!nested(item)) lines.push(`${indent}${name}: ${scalar(item)}`);
      else lines.push(`${indent}${name}:`, ...yamlLines(item, Array.isArray(item) ? indent : `${indent}  `));
    }
  } else {
    lines.push(`${indent}${scalar(value)}`);
  }
  return lines;
}

/** Announces a short message to people and screen readers. */
export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  const note = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  area.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

/** Asks before something that cannot be undone; resolves true when confirmed. */
export function confirmDialog(question, action = "Delete") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-label": question },
      h("p", {}, question),
      h(
        "form",
        { method: "dialog", class: "actions" },
        h("button", { value: "cancel", autofocus: true }, "Cancel"),
        h("button", { value: "confirm", class: "danger" }, action),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
