import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PEM files made at test time by `openssl`: a CA, certificates it signed, and an unrelated CA. */
export interface TestCerts {
  readonly dir: string;
  /** The cluster CA (trust anchor, and the --tls-ca of mutual TLS). */
  readonly caCert: string;
  /**
   * A node certificate for 127.0.0.1 and localhost, usable as server and as client certificate (what
   * a sentinel or broker presents both ways).
   */
  readonly nodeCert: string;
  readonly nodeKey: string;
  /** A client-only certificate (e.g. the admin CLI's). */
  readonly clientCert: string;
  readonly clientKey: string;
  /** A CA nobody trusts, and a client certificate it signed: must be refused. */
  readonly otherCaCert: string;
  readonly otherClientCert: string;
  readonly otherClientKey: string;
  /** Removes the directory. */
  cleanup(): Promise<void>;
}

/** Generates the certificates into a fresh temporary directory (P-256 keys: fast; valid for 2 days). */
export async function generateCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-certs-"));
  const file = (name: string) => path.join(dir, name);
  try {
    await makeCa(dir, "ca", "Goulette Test CA");
    await makeCa(dir, "other-ca", "Someone Else's CA");
    await makeLeaf(dir, "ca", "node", "goulette-node", [
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "extendedKeyUsage=serverAuth,clientAuth",
    ]);
    await makeLeaf(dir, "ca", "client", "goulette-admin", ["extendedKeyUsage=clientAuth"]);
    await makeLeaf(dir, "other-ca", "other-client", "intruder", ["extendedKeyUsage=clientAuth"]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    caCert: file("ca.crt"),
    nodeCert: file("node.crt"),
    nodeKey: file("node.key"),
    clientCert: file("client.crt"),
    clientKey: file("client.key"),
    otherCaCert: file("other-ca.crt"),
    otherClientCert: file("other-client.crt"),
    otherClientKey: file("other-client.key"),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await run(
    "openssl",
    [
      "req",
      "-x509",
      ...KEY,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    { cwd: dir },
  );
}

async function makeLeaf(
  dir: string,
  ca: string,
  name: string,
  cn: string,
  extensions: string[],
): Promise<void> {
  await run(
    "openssl",
    ["req", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`],
    {
      cwd: dir,
    },
  );
  await writeFile(
    path.join(dir, `${name}.ext`),
    ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", ...extensions].join("\n") + "\n",
  );
  await run(
    "openssl",
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ],
    { cwd: dir },
  );
}

/**
 * One more client certificate signed by the test CA, named `cn` (e.g. `broker:b1`), with extra
 * extensions (e.g. `subjectAltName=URI:urn:goulette:sentinel`). Files `<name>.crt` and `<name>.key`.
 */
export async function makeClientCert(
  certs: TestCerts,
  name: string,
  cn: string,
  extensions: string[] = [],
): Promise<{ certFile: string; keyFile: string }> {
  await makeLeaf(certs.dir, "ca", name, cn, ["extendedKeyUsage=clientAuth", ...extensions]);
  return { certFile: path.join(certs.dir, `${name}.crt`), keyFile: path.join(certs.dir, `${name}.key`) };
}
