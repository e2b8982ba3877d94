/**
 * The admin token: typed in by the user when a call needs it, kept for this tab's session only
 * (sessionStorage, never the URL), and sent as `authorization: Bearer …`. A browser client
 * certificate (mutual TLS) needs nothing here: the browser presents it itself.
 */
import { h } from "./dom.js";

const KEY = "goulette.console.token";

export function token(): string | undefined {
  return sessionStorage.getItem(KEY) ?? undefined;
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
  notify();
}

const listeners = new Set<() => void>();
export function onTokenChange(fn: () => void): void {
  listeners.add(fn);
}
function notify(): void {
  for (const fn of listeners) fn();
}

/**
 * Asks for the token in a modal dialog; resolves true when one was given. `why` says which action
 * needs it (the server's message).
 */
export function askForToken(why: string): Promise<boolean> {
  return new Promise((resolve) => {
    const input = h("input", {
      type: "password",
      id: "token-input",
      autocomplete: "off",
      required: true,
      "aria-describedby": "token-why",
    });
    const dialog = h(
      "dialog",
      { class: "token-dialog", "aria-labelledby": "token-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "token-title" }, "Admin token"),
        h("p", { id: "token-why" }, why),
        h("label", { for: "token-input" }, "Token"),
        input,
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", value: "ok", class: "primary" }, "Use token"),
          h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
        ),
        h("p", { class: "hint" }, "Kept in this tab only (session storage); never put in a URL."),
      ),
    );
    dialog.addEventListener("close", () => {
      const given = dialog.returnValue === "ok" && input.value !== "";
      if (given) {
        sessionStorage.setItem(KEY, input.value);
        notify();
      }
      dialog.remove();
      resolve(given);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** Asks the user to confirm an action in a modal dialog. */
export function confirmAction(title: string, text: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm-dialog", "aria-labelledby": "confirm-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "confirm-title" }, title),
        h("p", {}, text),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", value: "ok", class: "danger" }, action),
          h("button", { type: "submit", value: "cancel", autofocus: true }, "Cancel"),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
