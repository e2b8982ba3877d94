import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { SentinelService } from "../gen/goulette/v1/sentinel_pb.js";

type GroupMethods = Pick<
  ServiceImpl<typeof SentinelService>,
  "groupHeartbeat" | "watchGroupAssignment" | "listGroups" | "describeGroup"
>;

/** The consumer-group RPCs of SentinelService (placeholder until the coordinator is wired). */
export function createGroupService(): GroupMethods {
  const unimplemented = (): never => {
    throw new ConnectError("consumer groups are not implemented yet", Code.Unimplemented);
  };
  return {
    groupHeartbeat: unimplemented,
    // eslint-disable-next-line require-yield
    async *watchGroupAssignment() {
      unimplemented();
    },
    listGroups: unimplemented,
    describeGroup: unimplemented,
  };
}
