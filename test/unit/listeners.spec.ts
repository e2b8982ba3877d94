import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { advertisedListeners } from "../../src/broker/advertised-listeners.js";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors.js";
import {
  MAX_LISTENERS,
  addressOn,
  canonicalListeners,
  sameListeners,
  validateListenerName,
} from "../../src/fsm/listeners.js";
import { decodeOperation, encodeOperation, type Operation } from "../../src/fsm/operations.js";
import { ClusterState } from "../../src/fsm/state.js";
import { listenerHostsLookup } from "../../src/sentinel/listener-hosts.js";

const op = (id: number, command: Omit<Operation, "id" | "timestamp" | "leaderId">): Operation =>
  ({ ...command, id, timestamp: 1_700_000_000_000 + id, leaderId: "s1" }) as Operation;

describe("listener names and lists", () => {
  it("accepts lowercase names and refuses the rest with the rule", () => {
    for (const name of ["external", "ext-2", "a"]) validateListenerName(name);
    for (const name of ["", "EXTERNAL", "2ext", "ext_1", "e".repeat(33), "ext ernal"]) {
      assert.throws(() => validateListenerName(name), /lowercase letters, digits or '-'/, name);
    }
  });

  it("sorts a broker's listeners by name and refuses duplicates, 'internal' and bad addresses", () => {
    assert.deepEqual(
      canonicalListeners([
        { name: "public", address: "p.example.com:443" },
        { name: "external", address: "127.0.0.1:9094" },
      ]).map((l) => l.name),
      ["external", "public"],
    );
    const bad: [Parameters<typeof canonicalListeners>[0], RegExp][] = [
      [
        [
          { name: "external", address: "a:1" },
          { name: "external", address: "b:1" },
        ],
        /given twice/,
      ],
      [[{ name: "internal", address: "a:1" }], /default address/],
      [[{ name: "external", address: "no-port" }], /not host:port/],
      [
        Array.from({ length: MAX_LISTENERS + 1 }, (_, i) => ({ name: `l${i}`, address: "a:1" })),
        /at most 16/,
      ],
    ];
    for (const [list, message] of bad) {
      assert.throws(
        () => canonicalListeners(list),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError);
          assert.match(err.message, message);
          return true;
        },
      );
    }
  });

  it("compares lists, absent meaning none", () => {
    assert.ok(sameListeners(undefined, []));
    assert.ok(sameListeners([{ name: "e", address: "a:1" }], [{ name: "e", address: "a:1" }]));
    assert.ok(!sameListeners([{ name: "e", address: "a:1" }], [{ name: "e", address: "a:2" }]));
    assert.ok(!sameListeners([{ name: "e", address: "a:1" }], undefined));
  });

  it("answers a broker's address per listener; a missing one names the listeners the broker has", () => {
    const broker = {
      brokerId: "b1",
      address: "b1.internal:9190",
      listeners: [{ name: "external", address: "lb:9094" }],
    };
    assert.equal(addressOn(broker, ""), "b1.internal:9190");
    assert.equal(addressOn(broker, "internal"), "b1.internal:9190");
    assert.equal(addressOn(broker, "external"), "lb:9094");
    assert.throws(
      () => addressOn(broker, "public"),
      (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.match(
          err.message,
          /broker 'b1' has no listener 'public' \(it advertises: internal, external\)/,
        );
        return true;
      },
    );
    assert.throws(() => addressOn({ brokerId: "b2", address: "b2:1" }, "external"), /advertises: internal\)/);
  });
});

describe("--advertise-listeners", () => {
  it("keeps entries for every broker and the ones naming this broker", () => {
    const entries = [
      "public=goulette.example.com:443",
      "external@broker-0=203.0.113.10:9094",
      "external@broker-1=203.0.113.11:9094",
    ];
    assert.deepEqual(advertisedListeners(entries, "broker-1"), [
      { name: "external", address: "203.0.113.11:9094" },
      { name: "public", address: "goulette.example.com:443" },
    ]);
    assert.deepEqual(advertisedListeners([], "broker-0"), []);
  });

  it("refuses a listener given to other brokers but not to this one, and malformed entries", () => {
    assert.throws(
      () => advertisedListeners(["external@broker-0=a:1", "external@broker-1=b:1"], "broker-2"),
      /gives listener 'external' to broker-0, broker-1 but not to this broker \('broker-2'\): add external@broker-2=host:port/,
    );
    assert.throws(() => advertisedListeners(["external"], "b"), /not name=host:port/);
    assert.throws(() => advertisedListeners(["external=nohost"], "b"), /not host:port/);
    assert.throws(() => advertisedListeners(["External=a:1"], "b"), /lowercase/);
    assert.throws(() => advertisedListeners(["external=a:1", "external@b=a:2"], "b"), /given twice/);
  });
});

describe("--listener-hosts", () => {
  it("maps the host a request was sent to onto its listener; a port narrows the match", () => {
    const lookup = listenerHostsLookup(["external=goulette.example.com", "local=127.0.0.1:19090"]);
    assert.equal(
      lookup("http://goulette.example.com:9090/goulette.v1.SentinelService/GetBrokers"),
      "external",
    );
    assert.equal(lookup("https://GOULETTE.example.com/x"), "external");
    assert.equal(lookup("http://127.0.0.1:19090/x"), "local");
    assert.equal(lookup("http://127.0.0.1:9090/x"), undefined);
    assert.equal(lookup("http://sentinel.ns.svc:9090/x"), undefined);
    assert.equal(listenerHostsLookup(["edge=h:80"])("http://h/x"), "edge", "default port of http");
    assert.equal(listenerHostsLookup([])("http://h/x"), undefined);
  });

  it("refuses malformed entries, 'internal' and a host given to two listeners", () => {
    assert.throws(() => listenerHostsLookup(["goulette.example.com"]), /not name=host/);
    assert.throws(() => listenerHostsLookup(["external="]), /not name=host/);
    assert.throws(() => listenerHostsLookup(["internal=h"]), /by default/);
    assert.throws(() => listenerHostsLookup(["a=h", "b=h"]), /both 'a' and 'b'/);
  });
});

describe("listeners in the operation log", () => {
  const listeners = [{ name: "external", address: "lb-0:9094" }];

  it("registerBroker records them; a snapshot carries them; a broker without them digests as before", () => {
    const state = new ClusterState();
    state.apply(op(1, { type: "registerBroker", data: { brokerId: "b0", address: "b0:9190", listeners } }));
    state.apply(op(2, { type: "registerBroker", data: { brokerId: "b1", address: "b1:9190" } }));
    assert.deepEqual(state.broker("b0")?.listeners, listeners);
    assert.ok(!("listeners" in (state.broker("b1") ?? {})), "no listeners key for a broker without any");

    const copy = new ClusterState();
    copy.restore(JSON.parse(JSON.stringify(state.snapshot())) as ReturnType<ClusterState["snapshot"]>);
    assert.equal(copy.digest(), state.digest());
    assert.deepEqual(copy.broker("b0")?.listeners, listeners);

    // An empty list is recorded as none: the same state as a log written before listeners existed.
    const old = new ClusterState();
    old.apply(op(1, { type: "registerBroker", data: { brokerId: "b1", address: "b1:9190" } }));
    const empty = new ClusterState();
    empty.apply(
      op(1, { type: "registerBroker", data: { brokerId: "b1", address: "b1:9190", listeners: [] } }),
    );
    assert.equal(empty.digest(), old.digest());
  });

  it("a broker marked down keeps them; registering with new ones replaces them", () => {
    const state = new ClusterState();
    state.apply(op(1, { type: "registerBroker", data: { brokerId: "b0", address: "b0:9190", listeners } }));
    state.apply(
      op(2, {
        type: "handleUnreachableBrokers",
        data: { brokerIds: ["b0"], reason: "heartbeat-expired", changes: [] },
      }),
    );
    assert.equal(state.broker("b0")?.status, "down");
    assert.deepEqual(state.broker("b0")?.listeners, listeners);
    const moved = [{ name: "external", address: "lb-9:9094" }];
    state.apply(
      op(3, { type: "addBrokerToHashRing", data: { brokerId: "b0", address: "b0:9190", listeners: moved } }),
    );
    assert.deepEqual(state.broker("b0")?.listeners, moved);
    state.apply(op(4, { type: "registerBroker", data: { brokerId: "b0", address: "b0:9190" } }));
    assert.equal(state.broker("b0")?.listeners, undefined);
  });

  it("decodes operations with and without listeners, and refuses malformed ones", () => {
    const withListeners = op(1, {
      type: "registerBroker",
      data: { brokerId: "b0", address: "b0:1", listeners },
    });
    assert.deepEqual(decodeOperation(encodeOperation(withListeners)), withListeners);
    const text = JSON.stringify({
      ...withListeners,
      data: { brokerId: "b0", address: "b0:1", listeners: [{ name: 1 }] },
    });
    assert.throws(() => decodeOperation(text), /listeners must be a list of \{name, address\}/);
  });
});
