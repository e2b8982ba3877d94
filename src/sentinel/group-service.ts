import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError } from "../errors.js";
import {
  DescribeGroupResponseSchema,
  GroupHeartbeatResponseSchema,
  MemberAssignmentSchema,
  type DescribeGroupResponse,
  type GroupHeartbeatRequest,
  type GroupHeartbeatResponse,
  type GroupSummary,
  type MemberAssignment,
} from "../gen/goulette/v1/group_pb.js";
import type { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";
import {
  notAMember,
  type GroupCoordinator,
  type HeartbeatInput,
  type HeartbeatResult,
} from "../groups/coordinator.js";
import type { GroupView } from "../groups/group-view.js";
import { parsePartitionKey, partitionKey, type GroupState, type MemberView } from "../groups/model.js";
import { groupPhase, memberView } from "../groups/transitions.js";
import type { PartitionCounts } from "../groups/assignor.js";
import {
  sessionTimeoutOf,
  subscriptionOf,
  validateClientId,
  validateGroupName,
  validateInstanceId,
  validateMemberId,
  validateOwned,
} from "../groups/validation.js";
import { FORWARDED_HEADER, type WriteRouter } from "./forwarder.js";

type GroupMethods = Pick<
  ServiceImpl<typeof SentinelService>,
  "groupHeartbeat" | "watchGroupAssignment" | "listGroups" | "describeGroup"
>;

export interface GroupServiceOptions {
  coordinator: GroupCoordinator;
  view: GroupView;
  router: WriteRouter;
  partitionCounts: PartitionCounts;
  /** How long a watch waits for a member this sentinel has not seen yet (it may have just joined). */
  memberAppearTimeoutMs?: number;
}

/**
 * The consumer-group RPCs of SentinelService (docs/architecture.md, "Consumer groups"): heartbeats
 * answered here when they change nothing, routed to the leader otherwise; pushes and reads from this
 * sentinel's mirror of the groups.
 */
export function createGroupService(options: GroupServiceOptions): GroupMethods {
  const { coordinator, view, router } = options;
  const appearTimeoutMs = options.memberAppearTimeoutMs ?? 2_000;

  async function* watch(
    group: string,
    memberId: string,
    ctx: HandlerContext,
  ): AsyncIterable<MemberAssignment> {
    validateGroupName(group);
    validateMemberId(memberId);
    let wake: (() => void) | undefined;
    const onChanged = (changed: string) => {
      if (changed === group) wake?.();
    };
    view.on("changed", onChanged);
    // One listener for the whole stream (one per wake would pile up on a long-lived stream).
    const aborted = new Promise<void>((resolve) =>
      ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    try {
      const deadline = Date.now() + appearTimeoutMs;
      let seen = false;
      let sent: MemberView | undefined;
      while (!ctx.signal.aborted) {
        const changed = new Promise<void>((resolve) => (wake = resolve));
        const snapshot = view.get(group);
        if (snapshot.members.has(memberId)) {
          seen = true;
          const current = memberView(snapshot.state, memberId);
          if (!sent || current.generation !== sent.generation) {
            sent = current;
            yield toMemberAssignment(memberId, current);
          }
        } else if (seen || Date.now() >= deadline) {
          throw notAMember(group, memberId);
        }
        const timeout = seen ? undefined : setTimeout(() => wake?.(), Math.max(0, deadline - Date.now()));
        await Promise.race([changed, aborted]);
        if (timeout) clearTimeout(timeout);
      }
    } finally {
      view.off("changed", onChanged);
    }
  }

  return {
    async groupHeartbeat(req, ctx) {
      const input = heartbeatInput(req);
      const local = await coordinator.tryLocal(input);
      if (local) return toHeartbeatResponse(local);
      return router.route(
        "GroupHeartbeat",
        async () => toHeartbeatResponse(await coordinator.decide(input)),
        (client, headers) => client.groupHeartbeat(req, { headers }),
        ctx.requestHeader.get(FORWARDED_HEADER),
      );
    },

    watchGroupAssignment(req, ctx: HandlerContext) {
      return watch(req.group, req.memberId, ctx);
    },

    async listGroups(req) {
      const groups: GroupSummary[] = [];
      for (const group of view.groups()) {
        if (!group.startsWith(req.prefix)) continue;
        const snapshot = view.get(group);
        const topics = subscribedTopics(snapshot.members, snapshot.state);
        groups.push({
          $typeName: "goulette.v1.GroupSummary",
          group,
          state: groupPhase(snapshot.state, snapshot.members),
          members: snapshot.members.size,
          generation: BigInt(snapshot.state.generation),
          topics,
          partitions: topics.reduce((sum, t) => sum + (options.partitionCounts(t) ?? 0), 0),
        });
      }
      return { groups };
    },

    async describeGroup(req) {
      validateGroupName(req.group);
      return describe(req.group, view, options.partitionCounts);
    },
  };
}

function heartbeatInput(req: GroupHeartbeatRequest): HeartbeatInput {
  validateGroupName(req.group);
  const joining = req.memberId === "";
  if (!joining) validateMemberId(req.memberId);
  if (req.instanceId !== "") validateInstanceId(req.instanceId);
  if (req.leave && joining) throw new InvalidArgumentError("leave needs the member_id the join answered");
  validateClientId(req.clientId);
  validateOwned(req.owned);
  const topics = joining || req.topics.length > 0 ? subscriptionOf(req.topics) : [];
  return {
    group: req.group,
    memberId: req.memberId,
    instanceId: req.instanceId,
    clientId: req.clientId,
    topics,
    sessionTimeoutMs: sessionTimeoutOf(req.sessionTimeoutMs),
    owned: new Set(req.owned.map((o) => partitionKey(o.topic, o.partition))),
    generation: safeGeneration(req.generation),
    leave: req.leave,
  };
}

function safeGeneration(generation: bigint): number {
  if (generation > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(`generation ${generation} is out of range`);
  }
  return Number(generation);
}

function toHeartbeatResponse(result: HeartbeatResult): GroupHeartbeatResponse {
  return create(GroupHeartbeatResponseSchema, {
    assignment: toMemberAssignment(result.memberId, result.view),
    heartbeatIntervalMs: result.heartbeatIntervalMs,
    sessionTimeoutMs: result.sessionTimeoutMs,
  });
}

function toMemberAssignment(memberId: string, member: MemberView): MemberAssignment {
  return create(MemberAssignmentSchema, {
    memberId,
    generation: BigInt(member.generation),
    partitions: member.partitions.map((p) => ({
      topic: p.topic,
      partition: p.partition,
      epoch: BigInt(p.epoch),
    })),
    pending: member.pending,
  });
}

function subscribedTopics(members: ReadonlyMap<string, { topics: string[] }>, state: GroupState): string[] {
  const topics = new Set<string>();
  for (const member of members.values()) for (const t of member.topics) topics.add(t);
  for (const key of Object.keys(state.owners)) topics.add(parsePartitionKey(key).topic);
  return [...topics].sort();
}

function describe(group: string, view: GroupView, partitionCounts: PartitionCounts): DescribeGroupResponse {
  const snapshot = view.get(group);
  if (snapshot.members.size === 0 && snapshot.state.generation === 0) {
    return create(DescribeGroupResponseSchema, {}); // unknown group: empty, not an error
  }
  const members = [...snapshot.members.values()].sort((a, b) => (a.memberId < b.memberId ? -1 : 1));
  const owned = new Set(Object.keys(snapshot.state.owners));
  const unassigned: { topic: string; partition: number }[] = [];
  for (const topic of subscribedTopics(snapshot.members, snapshot.state)) {
    const count = partitionCounts(topic) ?? 0;
    for (let p = 0; p < count; p++)
      if (!owned.has(partitionKey(topic, p))) unassigned.push({ topic, partition: p });
  }
  return create(DescribeGroupResponseSchema, {
    group,
    state: groupPhase(snapshot.state, snapshot.members),
    generation: BigInt(snapshot.state.generation),
    members: members.map((m) => {
      const mv = memberView(snapshot.state, m.memberId);
      return {
        memberId: m.memberId,
        instanceId: m.instanceId,
        clientId: m.clientId,
        topics: m.topics,
        sessionTimeoutMs: m.sessionTimeoutMs,
        joinedAt: BigInt(m.joinedAt),
        lastHeartbeat: BigInt(m.lastHeartbeat),
        partitions: mv.partitions.map((p) => ({
          topic: p.topic,
          partition: p.partition,
          epoch: BigInt(p.epoch),
        })),
        revoking: mv.revoking,
        pending: mv.pending,
      };
    }),
    unassigned,
  });
}
