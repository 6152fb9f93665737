// Events: what the cluster says is happening, newest first, warnings standing out.

import { watchAll } from "../api.js";
import { h, syncRows, age } from "../dom.js";
import { newestEvents, eventTime } from "../status.js";

/** Rows on the page at once, for the reason the Pods view gives. */
const SHOWN = 200;

export default {
  title: "Events",
  mount(main) {
    const type = h("select", { id: "event-type", "aria-label": "Event type" }, h("option", { value: "" }, "all types"), h("option", {}, "Warning"), h("option", {}, "Normal"));
    const text = h("input", { id: "event-text", type: "search", placeholder: "object, reason or message", "aria-label": "Search events" });
    const tbody = h("tbody", { id: "event-rows" });
    const count = h("p", { class: "muted", id: "event-count" });
    main.append(
      h("h1", {}, "Events"),
      h("div", { class: "filters", role: "search" }, type, text),
      count,
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "events" }, h("thead", {}, h("tr", {}, ["Age", "Type", "Reason", "Object", "Message", "Count"].map((c) => h("th", { scope: "col" }, c)))), tbody)),
    );
    let events = null;
    const render = () => {
      if (!events?.synced) return;
      const needle = text.value.trim().toLowerCase();
      const now = Date.now();
      const matching = newestEvents([...events.items.values()]).filter(
        (e) => (!type.value || e.type === type.value) && (!needle || `${e.involvedObject?.kind}/${e.involvedObject?.name} ${e.metadata.namespace} ${e.reason} ${e.message}`.toLowerCase().includes(needle)),
      );
      count.textContent = matching.length > SHOWN ? `newest ${SHOWN} of ${matching.length} events` : `${matching.length} events`;
      syncRows(tbody, matching.slice(0, SHOWN), (e) => {
        const when = age(eventTime(e), now);
        const object = `${e.involvedObject?.kind?.toLowerCase()}/${e.involvedObject?.name}`;
        const link = () => e.involvedObject?.kind === "Pod" ? h("a", { href: `#/pod/${encodeURIComponent(e.involvedObject.namespace || e.metadata.namespace)}/${encodeURIComponent(e.involvedObject.name)}` }, object) : object;
        return {
          key: `${e.metadata.namespace}/${e.metadata.name}`,
          cells: () => [when, h("span", { class: e.type === "Warning" ? "badge bad" : "badge" }, e.type), e.reason, h("span", {}, link(), h("span", { class: "muted" }, ` ${e.metadata.namespace}`)), e.message, e.count || 1],
          signature: `${e.metadata.resourceVersion}|${when}`,
          className: e.type === "Warning" ? "warning" : "",
        };
      });
    };
    type.addEventListener("input", render);
    text.addEventListener("input", render);
    const ticker = setInterval(render, 5000);
    const stop = watchAll(["/api/v1/events"], (live) => {
      events = live;
      render();
    });
    return () => {
      clearInterval(ticker);
      stop();
    };
  },
};
