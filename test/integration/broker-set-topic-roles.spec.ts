import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  PartitionRole,
  ProduceError,
  RoleOutcome,
  type SetTopicRoleResult,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { sendOnce, text } from "../helpers/broker-process.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";

const summary = (r: SetTopicRoleResult) =>
  r.outcome === RoleOutcome.ERROR
    ? `error:${r.code}`
    : r.outcome === RoleOutcome.APPLIED
      ? "applied"
      : "stale";

/** SetTopicRoles on a real broker: per-role answers, mixed valid and invalid roles, epochs. */
describe("broker: SetTopicRoles", () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({ brokers: 2 });
  });
  after(async () => {
    await cluster?.stop();
  });

  /** The leader of a new one-partition topic on both brokers, and role builders for it. */
  const topicOnBoth = async (topic: string) => {
    const layout = await cluster.createTopic(topic, { partitions: 1, replicas: 2 });
    const p0 = layout.partitions[0];
    assert.ok(p0);
    const other = p0.replicas.find((id) => id !== p0.leader) as string;
    const ref = (id: string) => ({ brokerId: id, address: cluster.brokerAddress(id) });
    const lead = cluster.broker(p0.leader);
    const produce = async () =>
      (await sendOnce(lead.client, { topic, partition: 0, records: [{ messageId: 1n, payload: text("x") }] }))
        .acks[0];
    return {
      p0,
      lead,
      produce,
      /** The role the sentinel gave the leader, at another epoch. */
      leads: (epoch: bigint) => ({
        topic,
        partition: 0,
        role: PartitionRole.LEADER,
        leader: ref(p0.leader),
        replicas: [ref(p0.leader), ref(other)],
        epoch,
      }),
      /** The leader demoted in favour of the other replica. */
      follows: (epoch: bigint) => ({
        topic,
        partition: 0,
        role: PartitionRole.FOLLOWER,
        leader: ref(other),
        replicas: [ref(other), ref(p0.leader)],
        epoch,
      }),
    };
  };

  it("answers each role on its own: malformed entries are refused, the valid ones applied", async () => {
    const t = await topicOnBoth("mixed");
    const res = await t.lead.client.setTopicRoles({
      roles: [
        t.leads(t.p0.epoch),
        { ...t.leads(t.p0.epoch), topic: "" },
        { ...t.leads(t.p0.epoch), role: PartitionRole.UNSPECIFIED },
        { ...t.leads(t.p0.epoch), replicas: [] },
        { ...t.leads(t.p0.epoch), leader: t.follows(0n).leader },
        { ...t.leads(t.p0.epoch), replicas: [{ brokerId: "nobody", address: "127.0.0.1:1" }] },
        t.follows(t.p0.epoch - 1n),
      ],
    });
    assert.deepEqual(res.results.map(summary), [
      "applied",
      "error:invalid_argument",
      "error:invalid_argument",
      "error:invalid_argument",
      "error:invalid_argument",
      "error:invalid_argument",
      "stale",
    ]);
    assert.match(res.results[1]?.message ?? "", /topic/);
    assert.match(res.results[5]?.message ?? "", /does not list this broker/);
    assert.equal(res.results[0]?.code, "", "no code on an applied role");
    assert.equal(res.results[0]?.message, "");
    // Nothing of the refused or stale roles was applied: the broker still leads and takes writes.
    const ack = await t.produce();
    assert.equal(ack?.error, ProduceError.NONE, ack?.errorMessage);
    assert.equal(
      (await t.lead.client.setTopicRoles({ roles: [t.leads(t.p0.epoch)] })).results[0]?.logEndOffset,
      1n,
      "log end offset of the partition after one record",
    );
  });

  it("applies roles of one partition in request order under the epoch rule", async () => {
    const t = await topicOnBoth("epochs");
    const res = await t.lead.client.setTopicRoles({
      roles: [t.follows(t.p0.epoch + 100n), t.leads(t.p0.epoch + 50n), t.follows(t.p0.epoch + 100n)],
    });
    assert.deepEqual(res.results.map(summary), ["applied", "stale", "applied"]);
    const refused = await t.produce();
    assert.equal(refused?.error, ProduceError.NOT_LEADER, "demoted by the newer epoch");
  });

  it("answers an empty call with no results and refuses more than 10,000 roles as a whole", async () => {
    const broker = cluster.broker("b1");
    assert.deepEqual((await broker.client.setTopicRoles({ roles: [] })).results, []);
    const role = { topic: "", partition: 0, role: PartitionRole.LEADER, epoch: 1n };
    await assert.rejects(
      broker.client.setTopicRoles({ roles: Array.from({ length: 10_001 }, () => role) }),
      (err: unknown) =>
        err instanceof ConnectError &&
        err.code === Code.InvalidArgument &&
        /at most 10000/.test(err.rawMessage),
    );
  });
});
