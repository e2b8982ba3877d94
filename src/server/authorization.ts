import { isMessage, type Message } from "@bufbuild/protobuf";
import type { ContextValues, Interceptor } from "@connectrpc/connect";
import { PermissionDeniedError, UnauthenticatedError, toConnectError } from "../errors.js";
import {
  GetCommittedOffsetRequestSchema,
  ReplicateRequestSchema,
  ReplicateSessionRequestSchema,
} from "../gen/goulette/v1/broker_pb.js";
import {
  GetBrokersRequestSchema,
  KeepAliveRequestSchema,
  RegisterBrokerRequestSchema,
  UnregisterBrokerRequestSchema,
} from "../gen/goulette/v1/sentinel_pb.js";
import type { HeaderCheck } from "./call-head.js";
import {
  describePrincipal,
  peerCertificateKey,
  principalOf,
  setPrincipal,
  type Authenticator,
  type Principal,
  type PrincipalKind,
} from "./identity.js";

/**
 * Who may call each RPC: one declarative table per service (SENTINEL_RULES, BROKER_RULES) of the
 * principal kinds allowed, plus, where the arguments matter, a check of each request message (a broker
 * acts only as itself; creating a topic needs a credential). Methods absent from a table are refused to
 * every caller but trusted ones, so a new RPC is closed until it is given a rule.
 *
 * Trusted callers (the legacy shared token, anonymous callers under --allow-anonymous) pass every rule.
 */
export interface MethodRule {
  /** Kinds allowed to call; "anyone" includes anonymous callers. */
  readonly allow: readonly PrincipalKind[] | "anyone";
  /** A refusal for this caller and message (each message of a stream), or undefined to let it through. */
  readonly check?: (principal: Principal, message: Message) => Refusal | undefined;
}

export type Refusal = UnauthenticatedError | PermissionDeniedError;

export type RuleTable = Readonly<Record<string, MethodRule>>;

const COMPONENTS_AND_ADMIN: readonly PrincipalKind[] = ["broker", "sentinel", "admin"];
const ADMIN: readonly PrincipalKind[] = ["sentinel", "admin"];
const CLIENT_WRITES: readonly PrincipalKind[] = ["application", "admin"];

/** A broker registers, beats and unregisters only itself; sentinels (forwarding) and admins any broker. */
function asItself(what: string, brokerIdOf: (m: Message) => string | undefined) {
  return (principal: Principal, message: Message): Refusal | undefined => {
    if (principal.kind !== "broker") return undefined;
    const claimed = brokerIdOf(message);
    if (claimed === undefined || claimed === "" || claimed === principal.name) return undefined;
    return new PermissionDeniedError(
      `${describePrincipal(principal)} may not ${what} as broker '${claimed.slice(0, 200)}': a broker acts only as itself`,
    );
  };
}

/**
 * The sentinel's rules. GetBrokers is open for existing topics (producers and consumers call it
 * constantly); creating a topic needs an application, an admin or a sentinel forwarding it;
 * `unreachable_brokers` from an unauthenticated caller is ignored by the handler (see
 * reportsUnreachable). GetClusterStatus, GetRing and the group RPCs stay open as before.
 */
export function sentinelRules(topicExists: (topic: string) => boolean): RuleTable {
  return {
    RegisterBroker: {
      allow: COMPONENTS_AND_ADMIN,
      check: asItself("register", (m) =>
        isMessage(m, RegisterBrokerRequestSchema) ? m.brokerId : undefined,
      ),
    },
    KeepAlive: {
      allow: COMPONENTS_AND_ADMIN,
      check: asItself("send heartbeats", (m) =>
        isMessage(m, KeepAliveRequestSchema) ? m.brokerId : undefined,
      ),
    },
    UnregisterBroker: {
      allow: COMPONENTS_AND_ADMIN,
      check: asItself("unregister", (m) =>
        isMessage(m, UnregisterBrokerRequestSchema) ? m.brokerId : undefined,
      ),
    },
    CreateSnapshot: { allow: ADMIN },
    ListTopics: { allow: ADMIN },
    ListOperations: { allow: ADMIN },
    GetBrokers: {
      allow: "anyone",
      check: (principal, m) => {
        if (!isMessage(m, GetBrokersRequestSchema) || topicExists(m.topic)) return undefined;
        if (["application", "admin", "sentinel"].includes(principal.kind)) return undefined;
        const what = `creating topic '${m.topic.slice(0, 200)}' (GetBrokers of a new topic)`;
        return principal.kind === "anonymous"
          ? new UnauthenticatedError(`${what} needs a credential: ${SEND_CREDENTIAL}`)
          : new PermissionDeniedError(`${what} is not allowed to ${describePrincipal(principal)}`);
      },
    },
    GetClusterStatus: { allow: "anyone" },
    GetRing: { allow: "anyone" },
    GroupHeartbeat: { allow: "anyone" },
    WatchGroupAssignment: { allow: "anyone" },
    ListGroups: { allow: "anyone" },
    DescribeGroup: { allow: "anyone" },
  };
}

/**
 * The broker's rules: roles and topic removal only from sentinels; replication only from brokers, each
 * as itself (`follower_id`); produce and commits from applications and admins; reads and Health open.
 */
export const BROKER_RULES: RuleTable = {
  SetTopicRole: { allow: ["sentinel"] },
  SetTopicRoles: { allow: ["sentinel"] },
  RemoveTopic: { allow: ["sentinel"] },
  Replicate: {
    allow: ["broker"],
    check: asItself("replicate", (m) => (isMessage(m, ReplicateRequestSchema) ? m.followerId : undefined)),
  },
  ReplicateSession: {
    allow: ["broker"],
    check: asItself("replicate", (m) =>
      isMessage(m, ReplicateSessionRequestSchema) ? m.followerId : undefined,
    ),
  },
  SendMessage: { allow: CLIENT_WRITES },
  Produce: { allow: CLIENT_WRITES },
  CommitOffset: { allow: CLIENT_WRITES },
  DeleteCommittedOffset: { allow: CLIENT_WRITES },
  GetCommittedOffset: {
    allow: "anyone",
    // With a member epoch it raises the group's commit fence: a write.
    check: (principal, m) => {
      if (!isMessage(m, GetCommittedOffsetRequestSchema) || m.memberEpoch === 0n) return undefined;
      if (CLIENT_WRITES.includes(principal.kind)) return undefined;
      const what = "GetCommittedOffset with a member_epoch (a take-over: it raises the group's commit fence)";
      return principal.kind === "anonymous"
        ? new UnauthenticatedError(`${what} needs a credential: ${SEND_CREDENTIAL}`)
        : new PermissionDeniedError(`${what} is not allowed to ${describePrincipal(principal)}`);
    },
  },
  PullMessage: { allow: "anyone" },
  FetchMessages: { allow: "anyone" },
  Health: { allow: "anyone" },
};

const SEND_CREDENTIAL =
  "send the header 'authorization: Bearer <token>' (or a client certificate under mutual TLS)";

/** Whether a caller's report of unreachable brokers counts (GetBrokers): authenticated callers only. */
export function reportsUnreachable(principal: Principal | undefined): boolean {
  return principal === undefined || principal.trusted || principal.kind !== "anonymous";
}

/** The caller may make this call at all (headers only; the per-message checks come later). */
export function authorizeCaller(method: string, rule: MethodRule | undefined, principal: Principal): void {
  if (principal.trusted) return;
  if (!rule) throw new PermissionDeniedError(`${method} has no authorization rule: it is refused`);
  if (rule.allow === "anyone" || rule.allow.includes(principal.kind)) return;
  const who = rule.allow.join(", ");
  if (principal.kind === "anonymous") {
    throw new UnauthenticatedError(`${method} needs the credential of: ${who}; ${SEND_CREDENTIAL}`);
  }
  throw new PermissionDeniedError(
    `${method} is not allowed to ${describePrincipal(principal)} (only to: ${who})`,
  );
}

/**
 * The interceptor: resolves the caller, records it in the request's context values (handlers read it
 * with principalOf), applies the method's rule, and checks each message of a stream before the handler
 * sees it, so a refused message has no effect at all.
 */
export function authorization(authenticator: Authenticator, rules: RuleTable): Interceptor {
  return (next) => async (req) => {
    const method = req.method.name;
    // Resolved already by authorizationHeaderCheck when the RPC server ran it before the body.
    const principal =
      principalOf(req.contextValues) ?? resolveCaller(authenticator, method, req.header, req.contextValues);
    const rule = rules[method];
    authorizeCaller(method, rule, principal);
    const check = principal.trusted ? undefined : rule?.check;
    if (!check) return next(req);
    if (!req.stream) {
      const refusal = check(principal, req.message);
      if (refusal) throw refusal;
      return next(req);
    }
    return next({ ...req, message: checkEach(req.message, (m) => check(principal, m)) });
  };
}

async function* checkEach<T extends Message>(
  messages: AsyncIterable<T>,
  check: (message: T) => Refusal | undefined,
): AsyncGenerator<T> {
  for await (const message of messages) {
    const refusal = check(message);
    // Thrown inside the handler's read of the stream: a ConnectError already (errorTranslation keeps it).
    if (refusal) throw toConnectError(refusal);
    yield message;
  }
}

/**
 * The same authentication and method rule from the call's head, before a byte of its body is read
 * (RpcServerOptions.authenticate): a caller without the right credential costs its headers only. The
 * per-message checks stay with the interceptor, which reuses the principal found here.
 */
export function authorizationHeaderCheck(authenticator: Authenticator, rules: RuleTable): HeaderCheck {
  return (head) => {
    const method = head.method.name;
    const principal = resolveCaller(authenticator, method, head.header, head.contextValues);
    authorizeCaller(method, rules[method], principal);
  };
}

function resolveCaller(
  authenticator: Authenticator,
  method: string,
  header: Headers,
  values: ContextValues,
): Principal {
  let principal: Principal;
  try {
    principal = authenticator.resolve(header, values.get(peerCertificateKey));
  } catch (err) {
    if (err instanceof UnauthenticatedError) throw new UnauthenticatedError(`${method}: ${err.message}`);
    throw err;
  }
  setPrincipal(values, principal);
  return principal;
}
