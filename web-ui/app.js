// The dashboard's shell: signs in with the token from `/?token=…`, routes `#/section/…` to a
// view, and shows whether the live lists are connected.

import { adoptTokenFromUrl, setToken, token, unauthorized, watchState, activeLists } from "./api.js";
import { h, fill } from "./dom.js";
import overview from "./views/overview.js";
import workloads from "./views/workloads.js";
import pods from "./views/pods.js";
import podDetail from "./views/pod-detail.js";
import functions from "./views/functions.js";
import events from "./views/events.js";
import apply from "./views/apply.js";

const VIEWS = { overview, workloads, pods, pod: podDetail, functions, events, apply };

let unmount = () => {};
let routed = false;

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route() {
  const hash = window.location.hash;
  // In-page anchors (the skip link's #main) are not sections.
  if (hash && !hash.startsWith("#/") && routed) return;
  const [path, query] = hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/").map(decode);
  const view = VIEWS[name] || overview;
  unmount();
  const main = document.getElementById("main");
  fill(main);
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.getAttribute("href") === `#/${name === "pod" ? "pods" : name || "overview"}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view.title} · flotilla`;
  unmount = view.mount(main, new URLSearchParams(query || ""), ...rest) || (() => {});
  showConnection();
  // After a change of section, keyboard and screen reader users start at its content.
  if (routed) main.focus();
  routed = true;
}

function showConnection() {
  const lists = activeLists();
  const element = document.getElementById("connection");
  const broken = lists.find((l) => l.state !== "live");
  element.className = `connection ${broken ? "down" : "up"}`;
  element.textContent = lists.length === 0 ? "" : broken ? broken.state : "live";
}

/** Asks for the token when the server refuses the one we have (or none was given). */
function askForToken() {
  if (document.getElementById("sign-in")) return;
  const input = h("input", { id: "token-input", type: "password", autocomplete: "off", "aria-label": "Cluster token" });
  const form = h(
    "form",
    {
      id: "sign-in",
      class: "sign-in",
      onsubmit: (event) => {
        event.preventDefault();
        setToken(input.value.trim());
        window.location.reload();
      },
    },
    h("p", {}, token() ? "The server refused this tab's token." : "Sign in with the cluster's token.", " It is in ", h("code", {}, "flotilla-data/token"), " and in the kubeconfig, and ", h("code", {}, "flotilla up"), " prints a signed-in link."),
    h("label", { for: "token-input" }, "Token "),
    input,
    h("button", { type: "submit" }, "Sign in"),
  );
  document.getElementById("notices").append(form);
  input.focus();
}

// The skip link focuses the content itself: following "#main" would only move the point
// the next Tab starts from, and would put a non-section in the address bar.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});
adoptTokenFromUrl();
unauthorized.addEventListener("unauthorized", askForToken);
watchState.addEventListener("change", showConnection);
window.addEventListener("hashchange", route);
// A module script runs once the document is parsed, so the page can be drawn now.
route();
