import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  RoleOutcome,
  SetTopicRoleResultSchema,
  SetTopicRolesResponseSchema,
  type SetTopicRoleRequest,
  type SetTopicRoleResult,
  type SetTopicRolesRequest,
  type SetTopicRolesResponse,
} from "../gen/goulette/v1/broker_pb.js";
import { InvalidArgumentError, toConnectError } from "../errors.js";
import { forEachYielding } from "../common/yielding.js";
import { APPLY_CONCURRENCY, type PartitionManager } from "./partition-manager.js";

/** Roles one SetTopicRoles call may carry (the sentinel sends at most 1,000). */
export const MAX_ROLES_PER_CALL = 10_000;

/**
 * SetTopicRoles: every role is applied as SetTopicRole would apply it and answered on its own, so one
 * bad entry does not hold back the others. Roles of one partition are applied in request order.
 */
export async function setTopicRoles(
  partitions: Pick<PartitionManager, "applyRole">,
  req: SetTopicRolesRequest,
): Promise<SetTopicRolesResponse> {
  if (req.roles.length > MAX_ROLES_PER_CALL) {
    throw new InvalidArgumentError(`${req.roles.length} roles in one call; at most ${MAX_ROLES_PER_CALL}`);
  }
  const results: SetTopicRoleResult[] = new Array<SetTopicRoleResult>(req.roles.length);
  // One chain per partition keeps a partition's roles in order; chains run with bounded concurrency.
  const chains = new Map<string, number[]>();
  req.roles.forEach((role, i) => {
    const key = `${role.topic}#${role.partition}`;
    const chain = chains.get(key);
    if (chain) chain.push(i);
    else chains.set(key, [i]);
  });
  await forEachYielding([...chains.values()], APPLY_CONCURRENCY, async (chain) => {
    for (const i of chain) results[i] = await applyOne(partitions, req.roles[i] as SetTopicRoleRequest);
  });
  return create(SetTopicRolesResponseSchema, { results });
}

async function applyOne(
  partitions: Pick<PartitionManager, "applyRole">,
  role: SetTopicRoleRequest,
): Promise<SetTopicRoleResult> {
  try {
    const { partition, applied } = await partitions.applyRole(role);
    return create(SetTopicRoleResultSchema, {
      outcome: applied ? RoleOutcome.APPLIED : RoleOutcome.STALE,
      logEndOffset: BigInt(partition.log.logEndOffset),
    });
  } catch (err) {
    // Answered per role inside a successful response, so translated here, with the same mapping.
    const error = toConnectError(err);
    return create(SetTopicRoleResultSchema, {
      outcome: RoleOutcome.ERROR,
      code: codeName(error.code),
      message: error.rawMessage,
    });
  }
}

/** The Connect protocol's name of a code: Code.InvalidArgument → "invalid_argument". */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/(?<=[a-z])(?=[A-Z])/g, "_").toLowerCase();
}
