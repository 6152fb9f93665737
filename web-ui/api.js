// The dashboard's only way to the cluster: the public Kubernetes API on this page's origin,
// with the cluster's bearer token. Lists stay live through one watch stream each, resumed
// from the last resourceVersion after a disconnect and relisted when the server says 410.

const TOKEN_KEY = "flotilla.token";

/** Takes `?token=` off the address bar into this tab's storage, so it is not left in history. */
export function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

/** Listeners told when the server refuses the token, so the page can ask for another. */
export const unauthorized = new EventTarget();

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** A refused request, carrying the Kubernetes `Status` the server answered with. */
export class ApiError extends Error {
  constructor(code, status) {
    super(status?.message || `the server answered ${code}`);
    this.code = code;
    this.reason = status?.reason || "";
    this.causes = status?.details?.causes || [];
  }
}

async function errorOf(response) {
  let status = null;
  const text = await response.text().catch(() => "");
  try {
    status = JSON.parse(text);
  } catch {
    status = { message: text.trim() || `${response.status} ${response.statusText}` };
  }
  if (response.status === 401) unauthorized.dispatchEvent(new Event("unauthorized"));
  return new ApiError(response.status, status);
}

/**
 * One API call. `body` is sent as given when it is a string (YAML, say), as JSON otherwise.
 * Answers the decoded JSON (or text, for non-JSON answers) and the HTTP status.
 */
export async function call(method, path, { body, contentType, signal } = {}) {
  const init = { method, headers: headers({ Accept: "application/json" }), signal };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = contentType || "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  const type = response.headers.get("Content-Type") || "";
  const value = type.includes("json") ? await response.json() : await response.text();
  return { status: response.status, value, headers: response.headers };
}

export async function get(path) {
  return (await call("GET", path)).value;
}

export function mergePatch(path, patch) {
  return call("PATCH", path, { body: patch, contentType: "application/merge-patch+json" });
}

export function remove(path) {
  return call("DELETE", path, { body: { propagationPolicy: "Background" } });
}

/**
 * Reads a streamed answer line by line (watch events, followed logs) until it ends; `onOpen`
 * is called once the server has accepted the request.
 */
export async function streamLines(path, onLine, signal, onOpen = () => {}) {
  const response = await fetch(path, { headers: headers(), signal });
  if (!response.ok) throw await errorOf(response);
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    }
    if (pending) onLine(pending);
  } finally {
    reader.cancel().catch(() => {});
  }
}

export function keyOf(object) {
  const m = object.metadata;
  return m.namespace ? `${m.namespace}/${m.name}` : m.name;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A live list: list once, then watch from the list's resourceVersion. It runs while anyone
 * subscribes (browsers allow six connections per server over HTTP/1.1, so a stream nobody
 * looks at is closed) and keeps what it knows, so a return resumes from where it left off.
 */
class ListWatch {
  constructor(path) {
    this.path = path;
    this.items = new Map();
    this.resourceVersion = "";
    this.synced = false;
    /** "connecting" | "live" | "reconnecting" | "error: …", shown in the header. */
    this.state = "connecting";
    this.listeners = new Set();
    this.abort = null;
    this.scheduled = false;
  }

  subscribe(listener) {
    this.listeners.add(listener);
    clearTimeout(this.closing);
    if (!this.abort) this.run();
    if (this.synced) listener(this);
    return () => {
      this.listeners.delete(listener);
      // Closed a moment later, so a view that follows and shows the same list keeps the stream.
      if (this.listeners.size === 0) this.closing = setTimeout(() => this.close(), 0);
    };
  }

  close() {
    if (this.listeners.size === 0 && this.abort) {
      this.abort.abort();
      this.abort = null;
    }
  }

  /** Tells listeners once per frame, however many events arrived in it. */
  changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener(this);
      watchState.dispatchEvent(new Event("change"));
    });
  }

  async run() {
    const abort = new AbortController();
    this.abort = abort;
    let failures = 0;
    while (!abort.signal.aborted) {
      const started = Date.now();
      try {
        if (!this.resourceVersion) await this.relist(abort.signal);
        await this.watch(abort.signal);
        // The server ended a healthy stream (its timeout): go on from here. A stream that
        // ends at once, again and again, is backed off like a failure.
        failures = Date.now() - started > 5000 ? 0 : failures + 1;
      } catch (error) {
        if (abort.signal.aborted) break;
        failures += 1;
        if (error.code === 410) {
          this.resourceVersion = ""; // the history is gone: list afresh
        } else {
          this.state = error.code === 401 ? "error: the token was refused" : error.code >= 400 && error.code < 500 ? `error: ${error.message}` : "reconnecting";
          this.changed();
        }
      }
      if (failures > 1 && !abort.signal.aborted) await sleep(Math.min(250 * 2 ** failures, 8000));
    }
  }

  async relist(signal) {
    const response = await call("GET", this.path, { signal });
    const list = response.value;
    this.items = new Map((list.items || []).map((item) => [keyOf(item), item]));
    this.resourceVersion = list.metadata?.resourceVersion || "";
    this.synced = true;
  }

  async watch(signal) {
    const separator = this.path.includes("?") ? "&" : "?";
    const url = `${this.path}${separator}watch=1&allowWatchBookmarks=true&timeoutSeconds=600&resourceVersion=${encodeURIComponent(this.resourceVersion)}`;
    await streamLines(
      url,
      (line) => {
        if (signal.aborted || !line.trim()) return;
        const event = JSON.parse(line);
        const object = event.object;
        if (event.type === "ERROR") {
          const gone = object.code === 410 || object.reason === "Expired" || object.reason === "Gone";
          throw new ApiError(gone ? 410 : object.code || 500, object);
        }
        if (event.type === "ADDED" || event.type === "MODIFIED") {
          this.items.set(keyOf(object), object);
        } else if (event.type === "DELETED") {
          this.items.delete(keyOf(object));
        }
        if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
        if (event.type !== "BOOKMARK") this.changed();
      },
      signal,
      () => {
        this.state = "live";
        this.changed();
      },
    );
  }
}

const lists = new Map();
/** Fires whenever any live list changes, for the header's connection indicator. */
export const watchState = new EventTarget();

/** The one live list for `path` (e.g. `/api/v1/pods`), shared by every view. */
export function list(path) {
  if (!lists.has(path)) lists.set(path, new ListWatch(path));
  return lists.get(path);
}

/** Every list some view is watching now, for the connection indicator. */
export function activeLists() {
  return [...lists.values()].filter((l) => l.listeners.size > 0);
}

/** Subscribes to several lists; calls `render` when any changes; answers an unsubscribe. */
export function watchAll(paths, render) {
  const watched = paths.map(list);
  const redraw = () => render(...watched);
  const stops = watched.map((l) => l.subscribe(redraw));
  redraw();
  return () => stops.forEach((stop) => stop());
}

/** A request whose answer the caller reads whatever its status (a Function's own errors, say). */
export function send(method, path, { body, contentType } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined && method !== "GET" && method !== "HEAD") {
    init.body = body;
    if (contentType) init.headers["Content-Type"] = contentType;
  }
  return fetch(path, init);
}
