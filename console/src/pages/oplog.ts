/** The operation log, a page at a time (newest first), and the snapshot that compacts it. */
import { sentinel, timeout } from "../api.js";
import { h, section, table, time } from "../dom.js";
import { confirmThenAct, fill, pageElement, type PageView, type Route } from "../ui.js";

const PAGE = 50;

export function oplogPage(route: Route): PageView {
  // The page shows operations (upto - PAGE, upto], newest first; no `upto` = the newest page.
  const requested = route.params.get("upto");
  const list = h("div");
  const snapshotStatus = h("p", { class: "status", "data-testid": "snapshot-status" });
  const element = pageElement(
    "Operation log",
    list,
    section(
      "Snapshot",
      h(
        "p",
        {},
        "A snapshot records the state at the newest applied operation and compacts the operations it covers.",
      ),
      h(
        "button",
        {
          type: "button",
          id: "snapshot-create",
          onclick: () =>
            void confirmThenAct(
              snapshotStatus,
              {
                title: "Create a snapshot?",
                text: "The leader writes one now and compacts the log.",
                action: "Create snapshot",
              },
              () => sentinel.createSnapshot({}, timeout(30_000)),
              (r) =>
                `snapshot ${r.snapshotId}: ${r.compactedOperations} operation(s) compacted, ${r.sizeBytes} bytes`,
            ),
        },
        "Create snapshot…",
      ),
      snapshotStatus,
    ),
  );

  const refresh = () =>
    fill(list, async () => {
      const head = (await sentinel.listOperations({ afterId: 0n, limit: 1 }, timeout())).headId;
      const upto =
        requested !== null && /^\d+$/.test(requested) && BigInt(requested) < head ? BigInt(requested) : head;
      const after = upto > BigInt(PAGE) ? upto - BigInt(PAGE) : 0n;
      const page = await sentinel.listOperations(
        { afterId: after, limit: Number(upto - after) || 1 },
        timeout(),
      );
      const shown = page.operations.filter((op) => op.id <= upto);
      const older = after > page.snapshotId ? after : undefined;
      const newer =
        upto < page.headId
          ? upto + BigInt(PAGE) < page.headId
            ? upto + BigInt(PAGE)
            : page.headId
          : undefined;
      return [
        h(
          "p",
          { "data-testid": "oplog-range" },
          `Head ${page.headId} · snapshot ${page.snapshotId} (operations up to it are compacted) · ` +
            `showing ${after + 1n} to ${upto}`,
        ),
        h(
          "nav",
          { class: "pager", "aria-label": "operation log pages" },
          older !== undefined ? h("a", { href: `#/oplog?upto=${older}` }, "← Older") : null,
          newer !== undefined ? h("a", { href: `#/oplog?upto=${newer}` }, "Newer →") : null,
          h("a", { href: "#/oplog" }, "Newest"),
        ),
        table(
          ["Id", "Time", "Type", "Leader", "Data"],
          [...shown]
            .reverse()
            .map((op) => [
              String(op.id),
              time(op.timestamp),
              h("code", {}, op.type),
              op.leaderId,
              h(
                "details",
                {},
                h("summary", {}, `${op.dataJson.length} bytes`),
                h("pre", {}, pretty(op.dataJson)),
              ),
            ]),
          { "data-testid": "operations" },
        ),
      ];
    });
  return { title: "Operation log", element, refresh, refreshMs: 0 };
}

function pretty(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}
