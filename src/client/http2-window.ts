import type http2 from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";

/** Receive window of each stream (HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE) the SDK advertises. */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
/** Receive window of each connection (all its streams together). */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

/**
 * An Http2SessionManager whose connections receive with wide flow-control windows. HTTP/2 starts every
 * stream and connection at 64 KiB: a broker sending fetched batches of 64 KiB records then stalls for a
 * WINDOW_UPDATE round trip after every record or two, which on a busy host capped 64 KiB consume at a
 * fraction of what the broker reads (docs/benchmarks.md). Memory stays bounded: a consumer that stops
 * reading stops the broker after at most these windows.
 */
export class WideWindowSessionManager extends Http2SessionManager {
  readonly #widened = new WeakSet<http2.Http2Session>();

  constructor(
    url: string,
    pingOptions: ConstructorParameters<typeof Http2SessionManager>[1],
    sessionOptions: http2.SecureClientSessionOptions = {},
  ) {
    super(url, pingOptions, {
      ...sessionOptions,
      settings: { ...sessionOptions.settings, initialWindowSize: STREAM_WINDOW_BYTES },
    });
  }

  override async request(
    ...args: Parameters<Http2SessionManager["request"]>
  ): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    // The connection window has no SETTINGS entry: it is raised with a WINDOW_UPDATE once per session.
    const session = stream.session;
    if (session && !this.#widened.has(session)) {
      this.#widened.add(session);
      session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      // The manager stops listening for errors once it moves a session out of its active state, but a
      // ping timeout may still destroy that session with an error: without a listener that error would
      // crash the process. The streams on it fail on their own and the manager reconnects.
      session.on("error", () => undefined);
    }
    return stream;
  }
}
