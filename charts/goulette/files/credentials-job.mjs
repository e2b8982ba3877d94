/* global process, console, Buffer */
// Creates the release's credentials Secret, or adds the keys it lacks; never changes or removes a key
// that exists, so tokens survive every `helm upgrade` and nothing random is ever rendered by Helm.
// Run by the chart's pre-install/pre-upgrade hook Job (templates/credentials-job.yaml) with node and
// no dependencies. Environment: SECRET_NAME, SECRET_NAMESPACE, SECRET_KEYS (comma-separated),
// SECRET_LABELS (JSON); the API server and the ServiceAccount as Kubernetes gives them to a pod.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";

const serviceAccount = process.env.SERVICEACCOUNT_DIR || "/var/run/secrets/kubernetes.io/serviceaccount";
const name = required("SECRET_NAME");
const namespace = required("SECRET_NAMESPACE");
const keys = required("SECRET_KEYS")
  .split(",")
  .filter((k) => k !== "");
const labels = JSON.parse(process.env.SECRET_LABELS || "{}");
const apiHost = required("KUBERNETES_SERVICE_HOST");
const apiPort = process.env.KUBERNETES_SERVICE_PORT || "443";
const bearer = readFileSync(`${serviceAccount}/token`, "utf8").trim();
const ca = readFileSync(`${serviceAccount}/ca.crt`);
const collection = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
const ATTEMPTS = 5;

function required(variable) {
  const value = process.env[variable];
  if (!value) fail(`${variable} is not set`);
  return value;
}

function fail(message) {
  console.error(`goulette credentials: ${message}`);
  process.exit(1);
}

/** 256 random bits, base64url: 43 characters, no whitespace. */
function newTokens(names) {
  return Object.fromEntries(
    names.map((k) => [k, Buffer.from(randomBytes(32).toString("base64url")).toString("base64")]),
  );
}

function call(method, path, body, contentType = "application/json") {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = https.request(
      {
        host: apiHost,
        port: apiPort,
        method,
        path,
        ca,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${bearer}`,
          accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": contentType }),
        },
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => (text += chunk));
        response.on("end", () => {
          let parsed;
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = { message: text };
          }
          resolve({ status: response.statusCode, body: parsed });
        });
      },
    );
    request.on("timeout", () => request.destroy(new Error("the API server did not answer within 10 s")));
    request.on("error", reject);
    request.end(payload);
  });
}

function refused(what, answer) {
  return `${what} Secret ${namespace}/${name}: HTTP ${answer.status} ${answer.body?.message ?? ""}`.trim();
}

// A conflict (another writer between our read and our write) is retried from a fresh read, so a key
// is never generated twice.
for (let attempt = 1; ; attempt++) {
  const current = await call("GET", `${collection}/${encodeURIComponent(name)}`);
  if (current.status === 404) {
    const created = await call("POST", collection, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace, labels },
      type: "Opaque",
      data: newTokens(keys),
    });
    if (created.status === 201) {
      console.log(`goulette credentials: created Secret ${namespace}/${name} with ${keys.length} tokens`);
      break;
    }
    if (created.status === 409 && attempt < ATTEMPTS) continue;
    fail(refused("cannot create", created));
  } else if (current.status === 200) {
    const existing = current.body.data ?? {};
    const missing = keys.filter((k) => !(k in existing));
    if (missing.length === 0) {
      console.log(`goulette credentials: Secret ${namespace}/${name} holds every token; unchanged`);
      break;
    }
    const patched = await call(
      "PATCH",
      `${collection}/${encodeURIComponent(name)}`,
      { metadata: { resourceVersion: current.body.metadata?.resourceVersion }, data: newTokens(missing) },
      "application/merge-patch+json",
    );
    if (patched.status === 200) {
      console.log(`goulette credentials: added ${missing.join(", ")} to Secret ${namespace}/${name}`);
      break;
    }
    if (patched.status === 409 && attempt < ATTEMPTS) continue;
    fail(refused("cannot update", patched));
  } else {
    fail(refused("cannot read", current));
  }
}
