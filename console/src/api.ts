/**
 * The console's clients, all Connect over fetch to the sentinel that served the page: its own
 * SentinelService, and brokers and peer sentinels through its pass-through (/ui/api/…), since behind a
 * port-forward the page can reach nothing else. The token, when the user gave one, rides on every call.
 */
import { Code, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BrokerService } from "../../src/gen/goulette/v1/broker_pb.js";
import { SentinelService } from "../../src/gen/goulette/v1/sentinel_pb.js";
import { Admin, Producer, type WebTransportOptions } from "../../src/client/web.js";
import { bearerHeaders } from "../../src/common/bearer.js";
import { token } from "./auth.js";

const origin = location.origin;
const API = `${origin}/ui/api`;
/** The brokers' default addresses: the ones the sentinel itself can dial. */
export const LISTENER = "internal";

const withToken: Interceptor = (next) => (req) => {
  for (const [name, value] of Object.entries(bearerHeaders(token()))) req.header.set(name, value);
  return next(req);
};

const transports = new Map<string, Transport>();
function transport(baseUrl: string): Transport {
  let t = transports.get(baseUrl);
  if (!t) {
    t = createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [withToken] });
    transports.set(baseUrl, t);
  }
  return t;
}

/** The sentinel that served the page. */
export const sentinel: Client<typeof SentinelService> = createClient(SentinelService, transport(origin));

/** Another sentinel of the cluster, by id (its own view: applied id, digest). */
export function peer(id: string): Client<typeof SentinelService> {
  return createClient(SentinelService, transport(`${API}/sentinel/${encodeURIComponent(id)}`));
}

/** A broker by its default address. */
export function broker(address: string): Client<typeof BrokerService> {
  return createClient(BrokerService, transport(brokerBase(address)));
}

function brokerBase(address: string): string {
  return `${API}/broker/${encodeURIComponent(address)}`;
}

/** The SDK's web transport, routed the same way (for Admin's group calls and the Producer). */
const webTransport: WebTransportOptions = { sentinelUrl: () => origin, brokerUrl: brokerBase };

/** An SDK admin client with the current token (group descriptions with lag, offset resets). */
export function admin(): Admin {
  const current = token();
  return new Admin({
    sentinels: [origin],
    webTransport,
    listener: LISTENER,
    ...(current ? { token: current } : {}),
  });
}

/** An SDK producer of one topic with the current token. */
export function producer(topic: string): Producer {
  const current = token();
  return new Producer({
    sentinels: [origin],
    topic,
    webTransport,
    listener: LISTENER,
    lingerMs: 0,
    deliveryTimeoutMs: 15_000,
    ...(current ? { token: current } : {}),
  });
}

/** The Connect code of an error from either the raw clients or the SDK (both carry one). */
export function codeOf(err: unknown): Code | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? (code as Code) : undefined;
}

export function isUnauthenticated(err: unknown): boolean {
  return codeOf(err) === Code.Unauthenticated || codeOf(err) === Code.PermissionDenied;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return (err as { rawMessage?: string }).rawMessage ?? err.message;
  return String(err);
}

/** A deadline for one call (the pass-through cuts silent calls too, later). */
export function timeout(ms = 10_000): { timeoutMs: number } {
  return { timeoutMs: ms };
}
