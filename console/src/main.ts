/**
 * The console's entry point: a hash router over the pages, refreshed on a timer while the tab is
 * visible (each page picks its period; nothing polls in a hidden tab).
 */
import { forgetToken, onTokenChange, token } from "./auth.js";
import { h } from "./dom.js";
import { groupPage, groupsPage } from "./pages/groups.js";
import { messagesPage } from "./pages/messages.js";
import { oplogPage } from "./pages/oplog.js";
import { overviewPage } from "./pages/overview.js";
import { ringPage } from "./pages/ring.js";
import { topicPage, topicsPage } from "./pages/topics.js";
import { errorBox, type PageView, type Route } from "./ui.js";

const NAV: [string, string][] = [
  ["overview", "Overview"],
  ["ring", "Ring"],
  ["topics", "Topics"],
  ["groups", "Groups"],
  ["oplog", "Operation log"],
];

function parseRoute(): Route {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path = "", query = ""] = hash.split("?", 2);
  const [page = "overview", ...rest] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page, rest, params: new URLSearchParams(query) };
}

function viewOf(route: Route): PageView {
  const [name, sub] = route.rest;
  switch (route.page) {
    case "ring":
      return ringPage(route);
    case "topics":
      if (name && sub === "messages") return messagesPage(name, route);
      return name ? topicPage(name) : topicsPage();
    case "groups":
      return name ? groupPage(name) : groupsPage();
    case "oplog":
      return oplogPage(route);
    default:
      return overviewPage();
  }
}

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const authArea = document.getElementById("auth") as HTMLElement;
let current: PageView | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<void> | undefined;

function renderNav(route: Route): void {
  nav.replaceChildren(
    ...NAV.map(([page, label]) =>
      h("a", { href: `#/${page}`, ...(route.page === page ? { "aria-current": "page" } : {}) }, label),
    ),
  );
}

function renderAuth(): void {
  authArea.replaceChildren(
    token()
      ? h("button", { type: "button", class: "link", onclick: () => forgetToken() }, "Forget token")
      : h("span", { class: "muted" }, "no token"),
  );
}

/** Refreshes the page now, then again after its period (one refresh at a time). */
async function cycle(view: PageView): Promise<void> {
  clearTimeout(timer);
  if (refreshing) await refreshing;
  if (view !== current) return;
  // Pages show their own errors; anything else still ends up on the page, not as an unhandled rejection.
  refreshing = view
    .refresh()
    .catch((err: unknown) => void view.element.prepend(errorBox(err)))
    .finally(() => (refreshing = undefined));
  await refreshing;
  main.dataset.loaded = "true";
  if (view === current && view.refreshMs > 0 && !document.hidden) {
    timer = setTimeout(() => void cycle(view), view.refreshMs);
  }
}

function show(): void {
  const route = parseRoute();
  current?.dispose?.();
  clearTimeout(timer);
  renderNav(route);
  const view = viewOf(route);
  current = view;
  document.title = `${view.title} · Goulette console`;
  delete main.dataset.loaded;
  main.replaceChildren(view.element);
  view.element.querySelector("h1")?.focus({ preventScroll: true });
  void cycle(view);
}

window.addEventListener("hashchange", show);
window.addEventListener("console-refresh", () => current && void cycle(current));
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && current) void cycle(current);
});
onTokenChange(() => {
  renderAuth();
  if (current) void cycle(current);
});
renderAuth();
show();
