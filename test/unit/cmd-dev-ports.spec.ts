import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { devPortNeeds } from "../../src/cmd/dev-ports.js";
import { InvalidArgumentError } from "../../src/errors.js";

const defaults = {
  sentinelCount: 3,
  brokerCount: 3,
  sentinelPort: 9090,
  brokerPort: 9190,
  etcdPort: 2379,
  etcdPeerPort: 2380,
};

describe("goulette dev ports", () => {
  it("lists every port of the cluster, each with what listens there and the flag that moves it", () => {
    const needs = devPortNeeds(defaults);
    assert.deepEqual(
      needs.map((n) => [n.port, n.what]),
      [
        [9090, "sentinel-1"],
        [9091, "sentinel-2"],
        [9092, "sentinel-3"],
        [9190, "broker-1"],
        [9191, "broker-2"],
        [9192, "broker-3"],
        [2379, "etcd client port"],
        [2380, "etcd peer port"],
      ],
    );
    assert.ok(needs.every((n) => n.host === "127.0.0.1"));
    assert.match(needs[4]?.remedy ?? "", /another --broker-port$/);
    assert.match(needs[7]?.remedy ?? "", /another --etcd-peer-port$/);
    assert.equal(devPortNeeds({ ...defaults, brokerCount: 0 }).length, 5);
  });

  it("refuses ranges that overlap or run past 65535", () => {
    assert.throws(
      () => devPortNeeds({ ...defaults, brokerPort: 9092 }),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.message ===
          "sentinel-3 and broker-1 would both listen on port 9092: " +
            "choose --sentinel-port and --broker-port so that they do not overlap",
    );
    assert.throws(() => devPortNeeds({ ...defaults, etcdPort: 9191 }), /broker-2 and etcd client port/);
    assert.throws(
      () => devPortNeeds({ ...defaults, brokerPort: 65534 }),
      /broker-3 would need port 65536, past 65535: lower --broker-port/,
    );
  });
});
