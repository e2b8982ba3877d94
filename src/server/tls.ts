import { readFileSync } from "node:fs";
import type http2 from "node:http2";
import { ConnectError } from "@connectrpc/connect";
import { InvalidArgumentError, errorMessage } from "../errors.js";

/** Server side: the certificate a server presents, and optionally the CA its clients must be signed by. */
export interface TlsFiles {
  /** Server certificate chain (PEM). */
  certFile: string;
  /** Private key of certFile (PEM). */
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  caFile?: string;
}

/** Client side: what a Goulette component trusts and presents when it dials another one over https. */
export interface ClientTlsOptions {
  /**
   * CA certificate(s) (PEM) that server certificates must chain to. Default: Node's trust store, which
   * includes the files named by NODE_EXTRA_CA_CERTS.
   */
  caFile?: string;
  /** Client certificate chain (PEM) presented when a server asks for one (mutual TLS). */
  certFile?: string;
  /** Private key of certFile (PEM). */
  keyFile?: string;
}

/** Reads one PEM file, naming the option and the path when it cannot. */
function readPem(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the ${what} file '${file}': ${errorMessage(err)}`);
  }
}

/** The node:tls server options for a TlsFiles (files read once, at start). */
export function serverTlsOptions(files: TlsFiles): {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  const cert = readPem("TLS certificate (--tls-cert)", files.certFile);
  const key = readPem("TLS key (--tls-key)", files.keyFile);
  if (!files.caFile) return { cert, key, requestCert: false, rejectUnauthorized: false };
  return {
    cert,
    key,
    ca: readPem("TLS CA (--tls-ca)", files.caFile),
    requestCert: true,
    rejectUnauthorized: true,
  };
}

/** The node:http2 connect options for a ClientTlsOptions (files read once, here). */
export function clientTlsOptions(options: ClientTlsOptions): http2.SecureClientSessionOptions {
  if (Boolean(options.certFile) !== Boolean(options.keyFile)) {
    throw new InvalidArgumentError("a client certificate needs both a certificate file and a key file");
  }
  return {
    ...(options.caFile ? { ca: readPem("TLS CA", options.caFile) } : {}),
    ...(options.certFile ? { cert: readPem("TLS client certificate", options.certFile) } : {}),
    ...(options.keyFile ? { key: readPem("TLS client key", options.keyFile) } : {}),
  };
}

/** Node's codes for "the server's certificate is not trusted". */
const UNTRUSTED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
]);

/**
 * A sentence a person can act on for a TLS failure somewhere in an error's cause chain, or undefined when
 * the error is not about TLS. Node's own messages ("self-signed certificate in certificate chain") do not
 * say what to do.
 */
export function describeTlsError(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as Error & { code?: unknown }).code;
    const text = typeof code === "string" ? code : "";
    const message = shortTlsMessage(e instanceof ConnectError ? e.rawMessage : e.message);
    if (UNTRUSTED.has(text)) {
      return `the server's TLS certificate is not trusted (${message}): pass the CA that signed it (--tls-ca, or NODE_EXTRA_CA_CERTS)`;
    }
    if (text === "CERT_HAS_EXPIRED" || text === "CERT_NOT_YET_VALID") {
      return `the server's TLS certificate is not valid now (${message})`;
    }
    if (text === "ERR_TLS_CERT_ALTNAME_INVALID") {
      return `the server's TLS certificate does not name the host dialled (${message}): use a name or IP in its subjectAltName`;
    }
    if (/CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN/.test(text)) {
      return `the server refused this client's TLS certificate (${message}): mutual TLS needs a client certificate signed by the server's CA (--tls-cert and --tls-key)`;
    }
    if (text === "ERR_SSL_WRONG_VERSION_NUMBER" || text === "ERR_SSL_PACKET_LENGTH_TOO_LONG") {
      return `TLS handshake failed (${message}): is the server serving plain http rather than https?`;
    }
  }
  return undefined;
}

/** OpenSSL's "805C…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:…" → the alert. */
function shortTlsMessage(message: string): string {
  return /alert [a-z ]+/i.exec(message)?.[0] ?? message.split("\n")[0] ?? message;
}
