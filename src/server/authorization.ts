import { isMessage, type Message } from "@bufbuild/protobuf";
import type { ContextValues, Interceptor } from "@connectrpc/connect";
import { PermissionDeniedError, UnauthenticatedError, UnavailableError, toConnectError } from "../errors.js";
import { AclSet, type AclPermission } from "../fsm/acl.js";
import {
  BatchesRequestSchema,
  CommitOffsetRequestSchema,
  DeleteCommittedOffsetRequestSchema,
  DeleteRecordsRequestSchema,
  FetchRequestSchema,
  GetCommittedOffsetRequestSchema,
  MessageRequestSchema,
  PullRequestSchema,
  ReplicateRequestSchema,
  ReplicateSessionRequestSchema,
} from "../gen/goulette/v1/broker_pb.js";
import { GroupHeartbeatRequestSchema } from "../gen/goulette/v1/group_pb.js";
import {
  GetBrokersRequestSchema,
  KeepAliveRequestSchema,
  RegisterBrokerRequestSchema,
  UnregisterBrokerRequestSchema,
  HandOverLeadershipRequestSchema,
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
 * Applications are further limited per topic by the cluster's ACLs (src/fsm/acl.ts): topicAccess.
 */
export interface MethodRule {
  /** Kinds allowed to call; "anyone" includes anonymous callers. */
  readonly allow: readonly PrincipalKind[] | "anyone";
  /** A refusal for this caller and message (each message of a stream), or undefined to let it through. */
  readonly check?: (principal: Principal, message: Message) => Refusal | undefined;
}

/** Unavailable: a broker that has not learned the ACLs yet cannot decide (the client retries). */
export type Refusal = UnauthenticatedError | PermissionDeniedError | UnavailableError;

export type RuleTable = Readonly<Record<string, MethodRule>>;

const COMPONENTS_AND_ADMIN: readonly PrincipalKind[] = ["broker", "sentinel", "admin"];
const ADMIN: readonly PrincipalKind[] = ["sentinel", "admin"];
const CLIENT_WRITES: readonly PrincipalKind[] = ["application", "admin"];
/** Every identified caller: reads need a credential unless the node runs with --allow-anonymous. */
const CREDENTIALED: readonly PrincipalKind[] = ["application", "admin", "sentinel", "broker"];

/** The one refusal of a caller who may not do `what`: a missing credential, or the wrong identity. */
export function refuse(principal: Principal, what: string): Refusal {
  return principal.kind === "anonymous"
    ? new UnauthenticatedError(`${what} needs a credential: ${SEND_CREDENTIAL}`)
    : new PermissionDeniedError(`${what} is not allowed to ${describePrincipal(principal)}`);
}

/**
 * An application's access to a topic under the ACLs (`undefined`: not learned yet, on a broker before
 * its first KeepAlive answer). Other kinds are not limited by ACLs: their method rules decide.
 */
export function topicAccess(
  acls: AclSet | undefined,
  principal: Principal,
  topic: string,
  permissions: readonly AclPermission[],
): Refusal | undefined {
  if (principal.kind !== "application") return undefined;
  if (!acls) {
    return new UnavailableError("this broker has not learned the topic ACLs from the sentinels yet; retry");
  }
  if (permissions.some((p) => acls.allows(principal.name, topic, p))) return undefined;
  return new PermissionDeniedError(
    `${describePrincipal(principal)} may not ${permissions.join(" or ")} topic '${topic.slice(0, 200)}': ` +
      "no ACL grants it (see goulette admin acl list)",
  );
}

/** A per-message check: the application needs `permission` on the topic the message names. */
function onTopic(
  acls: () => AclSet | undefined,
  permission: AclPermission,
  topicsOf: (m: Message) => Iterable<string>,
) {
  return (principal: Principal, message: Message): Refusal | undefined => {
    // Only applications are limited by ACLs: skip the work for every other caller.
    if (principal.kind !== "application") return undefined;
    const set = acls();
    // A request naming several topics (multi-partition produce) is refused whole at its first topic
    // the caller may not use: nothing of it is stored.
    for (const topic of topicsOf(message)) {
      const refusal = topicAccess(set, principal, topic, [permission]);
      if (refusal !== undefined) return refusal;
    }
    return undefined;
  };
}

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
 * The sentinel's rules. GetBrokers needs a credential (applications: read or write on the topic);
 * creating a topic needs an application with write on it, an admin or a sentinel forwarding it;
 * `unreachable_brokers` from an unauthenticated caller is ignored by the handler (see
 * reportsUnreachable). The group RPCs need a credential (applications: read on the topics they join
 * with). GetClusterStatus and GetRing (the cluster's shape, no topic data) stay open: producers ask for
 * the status before anything else, and the console draws both. ACL changes are admin writes.
 */
export function sentinelRules(
  topicExists: (topic: string) => boolean,
  acls: () => AclSet = () => AclSet.EMPTY,
): RuleTable {
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
    HandOverLeadership: {
      allow: COMPONENTS_AND_ADMIN,
      check: asItself("hand over the leadership", (m) =>
        isMessage(m, HandOverLeadershipRequestSchema) ? m.brokerId : undefined,
      ),
    },
    CreateSnapshot: { allow: ADMIN },
    ListTopics: { allow: ADMIN },
    ListOperations: { allow: ADMIN },
    PutAcl: { allow: ADMIN },
    DeleteAcl: { allow: ADMIN },
    ListAcls: { allow: ADMIN },
    GetBrokers: {
      // Checked per message (not from the head) so that the refusal names the topic.
      allow: "anyone",
      check: (principal, m) => {
        if (!isMessage(m, GetBrokersRequestSchema)) return undefined;
        const topic = m.topic.slice(0, 200);
        if (topicExists(m.topic)) {
          if (principal.kind === "anonymous")
            return refuse(principal, `reading topic '${topic}' (GetBrokers)`);
          return topicAccess(acls(), principal, m.topic, ["read", "write"]);
        }
        if (!["application", "admin", "sentinel"].includes(principal.kind))
          return refuse(principal, `creating topic '${topic}' (GetBrokers of a new topic)`);
        return topicAccess(acls(), principal, m.topic, ["write"]);
      },
    },
    GetClusterStatus: { allow: "anyone" },
    GetRing: { allow: "anyone" },
    GroupHeartbeat: {
      allow: CREDENTIALED,
      check: (principal, m) => {
        if (!isMessage(m, GroupHeartbeatRequestSchema)) return undefined;
        for (const topic of m.topics) {
          const refusal = topicAccess(acls(), principal, topic, ["read"]);
          if (refusal) return refusal;
        }
        return undefined;
      },
    },
    WatchGroupAssignment: { allow: CREDENTIALED },
    ListGroups: { allow: CREDENTIALED },
    DescribeGroup: { allow: CREDENTIALED },
  };
}

/**
 * The broker's rules: roles and topic removal only from sentinels; replication only from brokers, each
 * as itself (`follower_id`); produce and commits from applications and admins; reads from any
 * identified caller; Health open (probes). Applications need, per the ACLs (`acls`, as the broker
 * last learned them from the sentinels), write on a topic to produce to it or delete its records, and
 * read to pull, fetch, read or commit its offsets.
 */
export function brokerRules(acls: () => AclSet | undefined): RuleTable {
  const reads = onTopic(acls, "read", readTopicsOf);
  const writes = onTopic(acls, "write", writeTopicsOf);
  return {
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
    SendMessage: { allow: CLIENT_WRITES, check: writes },
    Produce: { allow: CLIENT_WRITES, check: writes },
    SendBatches: { allow: CLIENT_WRITES, check: writes },
    ProduceBatches: { allow: CLIENT_WRITES, check: writes },
    CommitOffset: { allow: CLIENT_WRITES, check: reads },
    DeleteCommittedOffset: { allow: CLIENT_WRITES, check: reads },
    // Deleting records is writing to the topic (as Kafka's DeleteRecords needs its DELETE right).
    DeleteRecords: { allow: CLIENT_WRITES, check: writes },
    GetCommittedOffset: {
      allow: CREDENTIALED,
      // With a member epoch it raises the group's commit fence: a write.
      check: (principal, m) => {
        if (isMessage(m, GetCommittedOffsetRequestSchema) && m.memberEpoch !== 0n) {
          if (!CLIENT_WRITES.includes(principal.kind)) {
            return refuse(
              principal,
              "GetCommittedOffset with a member_epoch (a take-over: it raises the group's commit fence)",
            );
          }
        }
        return reads(principal, m);
      },
    },
    PullMessage: { allow: CREDENTIALED, check: reads },
    FetchMessages: { allow: CREDENTIALED, check: reads },
    Health: { allow: "anyone" },
  };
}

/** The topic a read request names: pull, fetch, and the committed-offset RPCs. */
function readTopicsOf(m: Message): Iterable<string> {
  if (isMessage(m, PullRequestSchema) || isMessage(m, FetchRequestSchema)) return [m.topic];
  if (isMessage(m, CommitOffsetRequestSchema) || isMessage(m, GetCommittedOffsetRequestSchema))
    return [m.topic];
  return isMessage(m, DeleteCommittedOffsetRequestSchema) ? [m.topic] : [];
}

/**
 * The topics a produce request writes: one (SendMessage, Produce), or each distinct topic of its batches
 * (SendBatches, ProduceBatches: many batches usually share a few topics).
 */
function writeTopicsOf(m: Message): Iterable<string> {
  if (isMessage(m, MessageRequestSchema) || isMessage(m, DeleteRecordsRequestSchema)) return [m.topic];
  return isMessage(m, BatchesRequestSchema) ? new Set(m.batches.map((b) => b.topic)) : [];
}

/** The broker's rules of a cluster without ACLs (embedders and tests that do not follow the sentinels). */
export const BROKER_RULES: RuleTable = brokerRules(() => AclSet.EMPTY);

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
