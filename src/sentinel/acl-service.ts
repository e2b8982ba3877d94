import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError, NotFoundError } from "../errors.js";
import {
  canonicalAclEntry,
  canonicalAclPrincipal,
  validateAclResource,
  type AclEntry,
  type AclSet,
} from "../fsm/acl.js";
import {
  AclEntrySchema,
  DeleteAclResponseSchema,
  PutAclResponseSchema,
  type AclEntry as AclEntryMessage,
  type SentinelService,
} from "../gen/goulette/v1/sentinel_pb.js";
import type { ControlPlane } from "./control-plane.js";
import { FORWARDED_HEADER, type WriteRouter } from "./forwarder.js";
import type { LeaderActions } from "./leader-actions.js";

export interface AclServiceOptions {
  plane: Pick<ControlPlane, "state" | "committedState">;
  router: WriteRouter;
  actions: Pick<LeaderActions, "putAcl" | "deleteAcl">;
}

type AclMethods = Pick<ServiceImpl<typeof SentinelService>, "putAcl" | "deleteAcl" | "listAcls">;

export function toAclMessage(entry: AclEntry): AclEntryMessage {
  return create(AclEntrySchema, {
    principal: entry.principal,
    resource: entry.resource,
    permissions: [...entry.permissions],
  });
}

/** A KeepAlive answer's ACL fields: the list only when the broker's digest differs. */
export function aclsForBroker(
  acls: AclSet,
  heldDigest: string,
): { acls: AclEntryMessage[]; aclsDigest: string; aclsUnchanged: boolean } {
  const unchanged = heldDigest === acls.digest;
  return {
    acls: unchanged ? [] : acls.entries().map(toAclMessage),
    aclsDigest: acls.digest,
    aclsUnchanged: unchanged,
  };
}

/** PutAcl, DeleteAcl (writes: validated here, carried out by the leader) and ListAcls (any sentinel). */
export function createAclService(options: AclServiceOptions): AclMethods {
  const { plane, router, actions } = options;
  const forwardedBy = (ctx: HandlerContext) => ctx.requestHeader.get(FORWARDED_HEADER);
  return {
    async putAcl(req, ctx) {
      if (!req.acl) throw new InvalidArgumentError("acl is missing");
      const entry = canonicalAclEntry(req.acl);
      return router.route(
        "PutAcl",
        async () => {
          const op = await actions.putAcl(entry);
          return create(PutAclResponseSchema, { operationId: BigInt(op?.id ?? 0), acl: toAclMessage(entry) });
        },
        (client, headers) => client.putAcl(req, { headers }),
        forwardedBy(ctx),
      );
    },

    async deleteAcl(req, ctx) {
      const principal = canonicalAclPrincipal(req.principal);
      validateAclResource(req.resource);
      await plane.committedState();
      // Checked here too, so a missing entry fails fast on any sentinel; the leader checks again.
      if (!plane.state.acls.get(principal, req.resource))
        throw new NotFoundError(`no ACL entry for ${principal} on '${req.resource}'`);
      return router.route(
        "DeleteAcl",
        async () => {
          const op = await actions.deleteAcl(principal, req.resource);
          return create(DeleteAclResponseSchema, { operationId: BigInt(op?.id ?? 0) });
        },
        (client, headers) => client.deleteAcl(req, { headers }),
        forwardedBy(ctx),
      );
    },

    async listAcls(req) {
      const principal = req.principal === "" ? undefined : canonicalAclPrincipal(req.principal);
      await plane.committedState();
      const acls = plane.state.acls;
      return {
        acls: acls
          .entries()
          .filter((e) => principal === undefined || e.principal === principal)
          .map(toAclMessage),
        digest: acls.digest,
      };
    },
  };
}
