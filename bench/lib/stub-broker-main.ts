import type { ConnectRouter } from "@connectrpc/connect";
import { BrokerService, RoleOutcome } from "../../src/gen/goulette/v1/broker_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startRpcServer } from "../../src/server/rpc-server.js";

/**
 * A stand-in for the brokers of a control-plane benchmark, run as its own process: it acknowledges the
 * SetTopicRoles / SetTopicRole / RemoveTopic / Health calls a sentinel leader sends after each assignment change, so the
 * leader's write path does its real work (one RPC per replica) instead of failing fast on a dead port.
 * Prints its port on stdout, then serves until killed.
 */
const routes = (router: ConnectRouter) => {
  router.service(BrokerService, {
    setTopicRole: () => ({}),
    setTopicRoles: (req) => ({ results: req.roles.map(() => ({ outcome: RoleOutcome.APPLIED })) }),
    removeTopic: () => ({}),
    health: () => ({}),
  });
};
const server = await startRpcServer({
  address: "127.0.0.1:0",
  routes,
  fallback: (_req, res) => {
    res.writeHead(404);
    res.end();
  },
  logger: silentLogger(),
});
process.stdout.write(`${server.port}\n`);
