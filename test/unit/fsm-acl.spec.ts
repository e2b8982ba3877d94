import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AclSet, canonicalAclEntry } from "../../src/fsm/acl.js";
import { decodeOperation, encodeOperation, type Command, type Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { InvalidArgumentError } from "../../src/errors.js";

const op = (id: number, command: Command): Operation => ({
  ...command,
  id,
  timestamp: 1_700_000_000_000 + id,
  leaderId: "s0",
});

const put = (principal: string, resource: string, permissions: string[]): Command => ({
  type: "putAcl",
  data: canonicalAclEntry({ principal, resource, permissions }),
});

const HISTORY: Command[] = [
  { type: "registerBroker", data: { brokerId: "b1", address: "127.0.0.1:7001" } },
  put("app:writer", "orders.*", ["write"]),
  put("app:reader", "orders.*", ["read"]),
  put("*", "public", ["read", "write"]),
  put("app:reader", "orders.*", ["write", "read"]), // replaces the read-only entry
  { type: "deleteAcl", data: { principal: "*", resource: "public" } },
  put("app:audit", "*", ["read"]),
];

describe("topic ACLs in the state machine", () => {
  it("applies put and delete, and a replay (from scratch or a snapshot) gives the same ACLs", () => {
    const ops = HISTORY.map((c, i) => op(i + 1, c));
    const state = new ClusterState();
    for (const o of ops) state.apply(decodeOperation(encodeOperation(o)));
    assert.deepEqual(
      state.acls.entries().map((e) => `${e.principal} ${e.resource} ${e.permissions.join(",")}`),
      [
        "application:audit * read",
        "application:reader orders.* read,write",
        "application:writer orders.* write",
      ],
    );
    const replayed = new ClusterState();
    for (const o of ops) replayed.apply(o);
    assert.equal(replayed.digest(), state.digest());
    assert.equal(replayed.acls.digest, state.acls.digest);

    // Snapshot after 4 operations, then the rest: the same state.
    const partial = new ClusterState();
    for (const o of ops.slice(0, 4)) partial.apply(o);
    const restored = new ClusterState();
    restored.restore(JSON.parse(JSON.stringify(partial.snapshot())));
    for (const o of ops.slice(4)) restored.apply(o);
    assert.equal(restored.digest(), state.digest());
    assert.deepEqual(restored.acls.entries(), state.acls.entries());
  });

  it("a state without ACLs snapshots and digests as before (no acls key)", () => {
    const state = new ClusterState();
    state.apply(op(1, HISTORY[0] as Command));
    assert.equal("acls" in state.snapshot(), false);
    state.apply(op(2, put("app:a", "t", ["read"])));
    state.apply(op(3, { type: "deleteAcl", data: { principal: "application:a", resource: "t" } }));
    assert.equal("acls" in state.snapshot(), false);
  });

  it("no entry: applications keep full access; any entry: only what is granted", () => {
    assert.ok(AclSet.EMPTY.allows("anyone", "orders.eu", "write"));
    const set = new AclSet([
      canonicalAclEntry({ principal: "app:a", resource: "orders.*", permissions: ["write"] }),
      canonicalAclEntry({ principal: "*", resource: "news", permissions: ["read"] }),
    ]);
    assert.ok(set.allows("a", "orders.eu", "write"));
    assert.ok(!set.allows("a", "orders.eu", "read"));
    assert.ok(!set.allows("a", "ordersX", "write"), "orders.* is the prefix 'orders.'");
    assert.ok(!set.allows("b", "orders.eu", "write"));
    assert.ok(set.allows("b", "news", "read"));
    assert.ok(!set.allows("b", "news", "write"));
    assert.ok(set.allows("a", "news", "read"), "'*' entries apply to every application");
  });

  it("refuses bad principals, topics and permissions with a message naming them", () => {
    const bad: [Parameters<typeof canonicalAclEntry>[0], RegExp][] = [
      [{ principal: "admin:ops", resource: "t", permissions: ["read"] }, /ACL principal "admin:ops"/],
      [{ principal: "app:", resource: "t", permissions: ["read"] }, /ACL principal "app:"/],
      [{ principal: "app:a", resource: "a/b", permissions: ["read"] }, /ACL topic "a\/b"/],
      [{ principal: "app:a", resource: "a*b", permissions: ["read"] }, /ACL topic "a\*b"/],
      [{ principal: "app:a", resource: "", permissions: ["read"] }, /ACL topic ""/],
      [{ principal: "app:a", resource: "t", permissions: ["delete"] }, /ACL permission "delete" is unknown/],
      [{ principal: "app:a", resource: "t", permissions: [] }, /needs a permission/],
    ];
    for (const [entry, message] of bad) {
      assert.throws(
        () => canonicalAclEntry(entry),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError);
          assert.match(err.message, message);
          return true;
        },
      );
    }
  });

  it("decodeOperation refuses malformed or non-canonical ACL operations", () => {
    const encoded = (data: unknown, type = "putAcl") =>
      JSON.stringify({ id: 1, type, timestamp: 1, leaderId: "s0", data });
    assert.throws(() =>
      decodeOperation(encoded({ principal: "app:a", resource: "t", permissions: ["read"] })),
    );
    assert.throws(() =>
      decodeOperation(encoded({ principal: "application:a", resource: "t", permissions: ["read", "x"] })),
    );
    assert.throws(() => decodeOperation(encoded({ principal: "application:a" }, "deleteAcl")));
    const ok = decodeOperation(
      encoded({ principal: "application:a", resource: "t*", permissions: ["read"] }),
    );
    assert.equal(ok.type, "putAcl");
  });
});
