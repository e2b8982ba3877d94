import { InvalidArgumentError } from "../errors.js";
import type { Admin } from "../client/node.js";
import { formatTable, toJson } from "./table.js";

/** The admin options the ACL commands read. */
export interface AclCommandOptions {
  json: boolean;
  principal: string;
  topic: string;
  permission: string[];
}

export const ACL_USAGE = `  acl add --principal app:<name>|'*' --topic <topic>|<prefix>* --permission read,write
               grant an application (or every application, '*') read and/or write on a topic or
               on every topic starting with a prefix ('orders.*'); replaces what that principal
               had on that topic. While no ACL exists applications may use every topic; once
               one exists, only what an ACL grants
  acl remove --principal p --topic t
               delete one entry
  acl list [--principal p]
               every entry (or one principal's)`;

/** `goulette admin acl add | remove | list`, through the SDK's Admin client. */
export async function runAclCommand(args: string[], o: AclCommandOptions, admin: Admin): Promise<void> {
  const [action, extra] = args;
  if (extra !== undefined) throw new InvalidArgumentError(`unexpected argument '${extra}' (see --help)`);
  switch (action) {
    case "add": {
      need(o.principal, "--principal", "add");
      need(o.topic, "--topic", "add");
      if (o.permission.length === 0) throw new InvalidArgumentError("acl add needs --permission read,write");
      const res = await admin.putAcl({
        principal: o.principal,
        resource: o.topic,
        permissions: o.permission,
      });
      const acl = res.acl;
      if (o.json) return print(toJson({ operationId: res.operationId, acl }));
      const what = `${acl?.principal ?? o.principal} may ${acl?.permissions.join(" and ") ?? ""} '${acl?.resource ?? o.topic}'`;
      print(res.operationId > 0n ? `${what} (operation ${res.operationId})` : `${what} (unchanged)`);
      return;
    }
    case "remove": {
      need(o.principal, "--principal", "remove");
      need(o.topic, "--topic", "remove");
      if (o.permission.length > 0) throw new InvalidArgumentError("--permission does not go with acl remove");
      const res = await admin.deleteAcl(o.principal, o.topic);
      if (o.json) return print(toJson({ operationId: res.operationId }));
      print(`ACL of ${o.principal} on '${o.topic}' removed (operation ${res.operationId})`);
      return;
    }
    case "list": {
      if (o.topic || o.permission.length > 0)
        throw new InvalidArgumentError("acl list takes only --principal (see --help)");
      const acls = await admin.listAcls(o.principal ? { principal: o.principal } : {});
      if (o.json) return print(toJson({ acls }));
      if (acls.length === 0) return print("no ACLs: applications may use every topic");
      print(
        formatTable(
          ["PRINCIPAL", "TOPIC", "PERMISSIONS"],
          acls.map((a) => [a.principal, a.resource, a.permissions.join(",")]),
        ),
      );
      return;
    }
    default:
      throw new InvalidArgumentError(
        `admin acl needs add, remove or list${action ? `, not '${action}'` : ""} (see --help)`,
      );
  }
}

function need(value: string, flag: string, action: string): void {
  if (!value) throw new InvalidArgumentError(`acl ${action} needs ${flag}`);
}

function print(text: string): void {
  console.log(text);
}
