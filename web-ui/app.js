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

function route() {
  const [path, query] = window.location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/").map(decodeURIComponent);
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
  document.getElementById("main").prepend(form);
  input.focus();
}

adoptTokenFromUrl();
unauthorized.addEventListener("unauthorized", askForToken);
watchState.addEventListener("change", showConnection);
window.addEventListener("hashchange", route);
// A module script runs once the document is parsed, so the page can be drawn now.
route();
