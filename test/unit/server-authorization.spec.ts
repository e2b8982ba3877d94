import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { GouletteError } from "../../src/errors.js";
import {
  BatchesRequestSchema,
  GetCommittedOffsetRequestSchema,
  MessageRequestSchema,
  PullRequestSchema,
  ReplicateRequestSchema,
} from "../../src/gen/goulette/v1/broker_pb.js";
import { GroupHeartbeatRequestSchema } from "../../src/gen/goulette/v1/group_pb.js";
import { AclSet, canonicalAclEntry } from "../../src/fsm/acl.js";
import {
  GetBrokersRequestSchema,
  HandOverLeadershipRequestSchema,
  KeepAliveRequestSchema,
} from "../../src/gen/goulette/v1/sentinel_pb.js";
import {
  BROKER_RULES,
  authorizeCaller,
  brokerRules,
  reportsUnreachable,
  sentinelRules,
  type RuleTable,
} from "../../src/server/authorization.js";
import { ANONYMOUS, type Principal, type PrincipalKind } from "../../src/server/identity.js";

const who = (kind: PrincipalKind, name = "", trusted = false): Principal => ({
  kind,
  name,
  trusted,
  via: "token",
});
const KINDS: PrincipalKind[] = ["sentinel", "broker", "admin", "application", "anonymous"];

/** The kinds a table lets call a method at all, as a sorted list. */
function allowed(rules: RuleTable, method: string): string[] {
  return KINDS.filter((kind) => {
    try {
      authorizeCaller(method, rules[method], who(kind, "x"));
      return true;
    } catch {
      return false;
    }
  });
}

const codeOf = (err: unknown) => (err instanceof GouletteError ? Code[err.code] : String(err));

describe("authorization rules", () => {
  const sentinel = sentinelRules((topic) => topic === "existing");

  it("lets only the listed kinds call each internal RPC", () => {
    assert.deepEqual(allowed(BROKER_RULES, "SetTopicRoles"), ["sentinel"]);
    assert.deepEqual(allowed(BROKER_RULES, "RemoveTopic"), ["sentinel"]);
    assert.deepEqual(allowed(BROKER_RULES, "ReplicateSession"), ["broker"]);
    assert.deepEqual(allowed(BROKER_RULES, "SendMessage"), ["admin", "application"]);
    assert.deepEqual(allowed(BROKER_RULES, "SendBatches"), ["admin", "application"]);
    assert.deepEqual(allowed(BROKER_RULES, "ProduceBatches"), ["admin", "application"]);
    assert.deepEqual(allowed(BROKER_RULES, "Health"), KINDS);
    assert.deepEqual(allowed(sentinel, "RegisterBroker"), ["sentinel", "broker", "admin"]);
    assert.deepEqual(allowed(sentinel, "ListOperations"), ["sentinel", "admin"]);
    // A method without a rule is closed to everyone but trusted callers.
    assert.deepEqual(allowed(sentinel, "SomethingNew"), []);
    authorizeCaller("SomethingNew", undefined, who("anonymous", "", true));
  });

  it("answers Unauthenticated to anonymous callers and PermissionDenied to the wrong identity", () => {
    assert.throws(
      () => authorizeCaller("RemoveTopic", BROKER_RULES.RemoveTopic, ANONYMOUS),
      (e) => codeOf(e) === "Unauthenticated",
    );
    assert.throws(
      () => authorizeCaller("RemoveTopic", BROKER_RULES.RemoveTopic, who("application", "web")),
      (e) =>
        codeOf(e) === "PermissionDenied" &&
        /not allowed to application:web \(only to: sentinel\)/.test(String(e)),
    );
  });

  it("checks the arguments: a broker as itself, topic creation, a fencing offset read", () => {
    const b1 = who("broker", "b1");
    const beat = (brokerId: string) => create(KeepAliveRequestSchema, { brokerId });
    assert.equal(sentinel.KeepAlive?.check?.(b1, beat("b1")), undefined);
    assert.equal(codeOf(sentinel.KeepAlive?.check?.(b1, beat("b2"))), "PermissionDenied");
    assert.equal(sentinel.KeepAlive?.check?.(who("sentinel"), beat("b2")), undefined);
    const handOver = (brokerId: string) => create(HandOverLeadershipRequestSchema, { brokerId });
    assert.equal(sentinel.HandOverLeadership?.check?.(b1, handOver("b1")), undefined);
    assert.equal(codeOf(sentinel.HandOverLeadership?.check?.(b1, handOver("b2"))), "PermissionDenied");
    assert.ok(!sentinel.HandOverLeadership?.allow.includes("application"), "not an application's call");
    const fetch = (followerId: string) => create(ReplicateRequestSchema, { followerId });
    assert.equal(codeOf(BROKER_RULES.Replicate?.check?.(b1, fetch("b2"))), "PermissionDenied");
    assert.equal(BROKER_RULES.Replicate?.check?.(b1, fetch("b1")), undefined);
    const getBrokers = (topic: string) => create(GetBrokersRequestSchema, { topic });
    assert.equal(codeOf(sentinel.GetBrokers?.check?.(ANONYMOUS, getBrokers("existing"))), "Unauthenticated");
    assert.equal(sentinel.GetBrokers?.check?.(b1, getBrokers("existing")), undefined);
    assert.equal(codeOf(sentinel.GetBrokers?.check?.(ANONYMOUS, getBrokers("new"))), "Unauthenticated");
    assert.equal(codeOf(sentinel.GetBrokers?.check?.(b1, getBrokers("new"))), "PermissionDenied");
    assert.equal(sentinel.GetBrokers?.check?.(who("application", "web"), getBrokers("new")), undefined);
    const fence = create(GetCommittedOffsetRequestSchema, { memberEpoch: 3n });
    assert.equal(codeOf(BROKER_RULES.GetCommittedOffset?.check?.(ANONYMOUS, fence)), "Unauthenticated");
    assert.equal(BROKER_RULES.GetCommittedOffset?.check?.(who("application", "web"), fence), undefined);
  });

  it("reads need a credential; the group RPCs too", () => {
    for (const method of ["PullMessage", "FetchMessages", "GetCommittedOffset"])
      assert.deepEqual(allowed(BROKER_RULES, method), ["sentinel", "broker", "admin", "application"], method);
    for (const method of ["GroupHeartbeat", "WatchGroupAssignment", "ListGroups", "DescribeGroup"])
      assert.deepEqual(allowed(sentinel, method), ["sentinel", "broker", "admin", "application"], method);
    for (const method of ["PutAcl", "DeleteAcl", "ListAcls"])
      assert.deepEqual(allowed(sentinel, method), ["sentinel", "admin"], method);
  });

  it("limits applications per topic by the ACLs; admins and sentinels are not limited", () => {
    const acls = new AclSet([
      canonicalAclEntry({ principal: "app:a", resource: "orders.*", permissions: ["write"] }),
      canonicalAclEntry({ principal: "app:b", resource: "orders.*", permissions: ["read"] }),
    ]);
    const broker = brokerRules(() => acls);
    const a = who("application", "a");
    const b = who("application", "b");
    const produce = (topic: string) => create(MessageRequestSchema, { topic });
    const pull = (topic: string) => create(PullRequestSchema, { topic });
    assert.equal(broker.Produce?.check?.(a, produce("orders.eu")), undefined);
    const denied = broker.Produce?.check?.(b, produce("orders.eu"));
    assert.equal(codeOf(denied), "PermissionDenied");
    assert.match(String(denied), /application:b may not write topic 'orders\.eu': no ACL grants it/);
    assert.equal(broker.PullMessage?.check?.(b, pull("orders.eu")), undefined);
    assert.equal(codeOf(broker.PullMessage?.check?.(a, pull("orders.eu"))), "PermissionDenied");
    assert.equal(codeOf(broker.PullMessage?.check?.(b, pull("payments"))), "PermissionDenied");
    assert.equal(broker.Produce?.check?.(who("admin"), produce("payments")), undefined);
    // A multi-partition request is checked on every topic it names, and refused whole.
    const batches = (...topics: string[]) =>
      create(BatchesRequestSchema, { batches: topics.map((topic, partition) => ({ topic, partition })) });
    for (const method of ["SendBatches", "ProduceBatches"]) {
      assert.equal(broker[method]?.check?.(a, batches("orders.eu", "orders.us")), undefined, method);
      const mixed = broker[method]?.check?.(a, batches("orders.eu", "payments", "orders.us"));
      assert.equal(codeOf(mixed), "PermissionDenied", method);
      assert.match(String(mixed), /application:a may not write topic 'payments'/, method);
      assert.equal(codeOf(broker[method]?.check?.(b, batches("orders.eu"))), "PermissionDenied", method);
    }
    // Not learned yet (a broker before its first KeepAlive answer): applications wait, others pass.
    const unknown = brokerRules(() => undefined);
    assert.equal(codeOf(unknown.Produce?.check?.(a, produce("orders.eu"))), "Unavailable");
    assert.equal(unknown.Produce?.check?.(who("admin"), produce("orders.eu")), undefined);
    // Sentinels: an existing topic needs read or write, creating one needs write.
    const guarded = sentinelRules(
      (topic) => topic === "orders.eu",
      () => acls,
    );
    const getBrokers = (topic: string) => create(GetBrokersRequestSchema, { topic });
    assert.equal(guarded.GetBrokers?.check?.(a, getBrokers("orders.eu")), undefined);
    assert.equal(guarded.GetBrokers?.check?.(b, getBrokers("orders.eu")), undefined);
    assert.equal(guarded.GetBrokers?.check?.(a, getBrokers("orders.us")), undefined);
    assert.equal(codeOf(guarded.GetBrokers?.check?.(b, getBrokers("orders.us"))), "PermissionDenied");
    const join = create(GroupHeartbeatRequestSchema, { group: "g", topics: ["orders.eu"] });
    assert.equal(guarded.GroupHeartbeat?.check?.(b, join), undefined);
    assert.equal(codeOf(guarded.GroupHeartbeat?.check?.(a, join)), "PermissionDenied");
  });

  it("counts reports of unreachable brokers only from authenticated or trusted callers", () => {
    assert.equal(reportsUnreachable(ANONYMOUS), false);
    assert.equal(reportsUnreachable(who("anonymous", "", true)), true);
    assert.equal(reportsUnreachable(who("application", "web")), true);
  });
});
