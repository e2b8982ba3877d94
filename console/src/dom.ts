/** Tiny DOM helpers: the console builds its pages with these instead of a UI framework. */

export type Child = Node | string | number | bigint | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

const SVG_NS = "http://www.w3.org/2000/svg";

function assign(el: Element, attrs: Attrs | undefined, children: Child[]): void {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
}

function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: attributes (on* are listeners; `true` is a bare attribute) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  assign(el, attrs, children);
  return el;
}

/** A labelled control of a form: the label's text and the control, whose id the label names. */
export type Field = [label: string, control: HTMLElement];

/**
 * A row of labelled controls and a submit button (the pages' `controls` forms), then `after` (a status
 * line). `onSubmit` gets the submit event (call preventDefault: the page does not navigate).
 */
export function controlsForm(
  onSubmit: (event: Event) => void,
  fields: readonly Field[],
  button: { id: string; text: string; tone: "primary" | "danger" },
  ...after: Child[]
): HTMLFormElement {
  return h(
    "form",
    { class: "controls", onsubmit: onSubmit },
    fields.map(([label, control]) => [h("label", { for: control.id }, label), control]),
    h("button", { type: "submit", class: button.tone, id: button.id }, button.text),
    ...after,
  );
}

/** An SVG element. */
export function svg(tag: string, attrs?: Attrs, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  assign(el, attrs, children);
  return el;
}

/** A table with a header row; `rows` are lists of cells. */
export function table(headers: string[], rows: Child[][], attrs: Attrs = {}): HTMLTableElement {
  return h(
    "table",
    attrs,
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        headers.map((text) => h("th", { scope: "col" }, text)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.length === 0
        ? h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "none"))
        : rows.map((cells) =>
            h(
              "tr",
              {},
              cells.map((cell) => h("td", {}, cell)),
            ),
          ),
    ),
  );
}

/** A section with a heading. */
export function section(title: string, ...children: Child[]): HTMLElement {
  return h("section", {}, h("h2", {}, title), ...children);
}

/** A small coloured label. */
export function badge(text: string, tone: "ok" | "warn" | "bad" | "info" = "info"): HTMLElement {
  return h("span", { class: `badge ${tone}` }, text);
}

export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href }, ...children);
}

/** "3 s ago", "5 min ago" from Unix ms; "never" for 0. */
export function ago(unixMs: number | bigint, now = Date.now()): string {
  const ms = Number(unixMs);
  if (ms <= 0) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function bytes(n: number | bigint): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  if (v < 1024 ** 3) return `${(v / 1024 / 1024).toFixed(1)} MiB`;
  return `${(v / 1024 ** 3).toFixed(2)} GiB`;
}

export function time(unixMs: number | bigint): string {
  const ms = Number(unixMs);
  return ms > 0 ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "—";
}
