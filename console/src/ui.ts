/** What every page shares: its shape, error and token handling, and live refresh. */
import { askForToken, confirmAction } from "./auth.js";
import { isUnauthenticated, messageOf } from "./api.js";
import { h, type Child } from "./dom.js";

export interface Route {
  /** First path segment: overview, ring, topics, groups, oplog. */
  page: string;
  /** Further segments (a topic or group name, "messages"). */
  rest: string[];
  params: URLSearchParams;
}

export interface PageView {
  readonly title: string;
  readonly element: HTMLElement;
  /** Reloads what the page shows (the router calls it on a timer while the tab is visible). */
  refresh(): Promise<void>;
  /** Milliseconds between refreshes; 0 = only when asked. */
  readonly refreshMs: number;
  dispose?(): void;
}

/** Ask the router to refresh the current page now (after a token was given, an action, …). */
export const refreshNow = (): void => void window.dispatchEvent(new Event("console-refresh"));

/**
 * Fills `area` with what `load` builds. An error shows in its place; one that needs the admin token
 * offers to enter it (the page refreshes once it is given). A refresh that changes nothing leaves the
 * DOM alone, and one that does keeps the keyboard focus on the same link or control.
 */
export async function fill(area: HTMLElement, load: () => Promise<Child>): Promise<void> {
  let nodes: Node[];
  try {
    const content = await load();
    nodes = (Array.isArray(content) ? content : [content]).flatMap(toNodes);
  } catch (err) {
    nodes = [errorBox(err)];
  }
  const html = nodes.map((n) => (n instanceof Element ? n.outerHTML : (n.textContent ?? ""))).join("");
  if (html === area.innerHTML) return;
  const focused = area.contains(document.activeElement) ? focusKey(document.activeElement) : undefined;
  area.replaceChildren(...nodes);
  if (focused) {
    const again = [...area.querySelectorAll<HTMLElement>("a, button, input, select, textarea, summary")].find(
      (el) => focusKey(el) === focused,
    );
    again?.focus({ preventScroll: true });
  }
}

/** What identifies a focusable element across re-renders: its id, else its target and text. */
function focusKey(el: Element | null): string | undefined {
  if (!el) return undefined;
  return el.id || `${el.tagName}|${el.getAttribute("href") ?? ""}|${el.textContent ?? ""}`;
}

function toNodes(child: Child): Node[] {
  if (child === null || child === undefined || child === false) return [];
  if (Array.isArray(child)) return child.flatMap(toNodes);
  return [child instanceof Node ? child : document.createTextNode(String(child))];
}

export function errorBox(err: unknown): HTMLElement {
  if (isUnauthenticated(err)) {
    return h(
      "div",
      { class: "notice warn", role: "status" },
      h("p", {}, `This needs the admin token: ${messageOf(err)}`),
      h(
        "button",
        {
          type: "button",
          onclick: () => void askForToken(messageOf(err)).then((given) => given && refreshNow()),
        },
        "Enter token",
      ),
    );
  }
  return h("div", { class: "notice bad", role: "alert" }, messageOf(err));
}

/**
 * Runs an action the user asked for; when it needs the token, asks for it and tries once more.
 * Shows the outcome in `status`.
 */
export async function act<T>(
  status: HTMLElement,
  action: () => Promise<T>,
  done: (result: T) => string,
): Promise<T | undefined> {
  status.replaceChildren(h("span", { class: "muted" }, "working…"));
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await action();
      status.replaceChildren(h("span", { class: "ok-text", role: "status" }, done(result)));
      return result;
    } catch (err) {
      if (attempt === 0 && isUnauthenticated(err) && (await askForToken(messageOf(err)))) continue;
      status.replaceChildren(h("span", { class: "bad-text", role: "alert" }, messageOf(err)));
      return undefined;
    }
  }
}

/** What a confirmation dialog asks before a change that cannot be undone. */
export interface Confirmation {
  title: string;
  text: string;
  /** The confirming button's label. */
  action: string;
}

/**
 * Asks for a confirmation, then runs `action` as {@link act} does and refreshes the page (also after a
 * failure: part of it may have been applied). Declined: `status` says "cancelled" and nothing runs.
 */
export async function confirmThenAct<T>(
  status: HTMLElement,
  confirmation: Confirmation,
  action: () => Promise<T>,
  done: (result: T) => string,
): Promise<void> {
  if (!(await confirmAction(confirmation.title, confirmation.text, confirmation.action))) {
    status.replaceChildren("cancelled");
    return;
  }
  await act(status, action, done);
  refreshNow();
}

/** A page element with its heading. */
export function pageElement(title: string, ...children: Child[]): HTMLElement {
  return h("div", { class: "page" }, h("h1", { tabindex: "-1" }, title), ...children);
}
