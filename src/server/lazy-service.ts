import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

type Handler = (input: unknown, ctx: unknown) => unknown;

/**
 * A service whose implementation exists only later (a sentinel binds its port before it has recovered
 * its state): every method of the descriptor calls `get()`'s implementation, or fails with
 * `unavailable()` while there is none. Streaming responses are generators, so they fail on the first
 * pull as a stream must, rather than returning a rejection.
 */
export function lazyService<S extends DescService>(
  service: S,
  get: () => ServiceImpl<S> | undefined,
  unavailable: () => Error,
): ServiceImpl<S> {
  const impl: Record<string, Handler> = {};
  const target = (name: string): Handler => {
    const current = get() as Record<string, Handler> | undefined;
    if (!current) throw unavailable();
    return (current[name] as Handler).bind(current);
  };
  for (const method of service.methods) {
    const name = method.localName;
    impl[name] =
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming"
        ? async function* (input: unknown, ctx: unknown) {
            yield* target(name)(input, ctx) as AsyncIterable<unknown>;
          }
        : async (input: unknown, ctx: unknown) => target(name)(input, ctx);
  }
  return impl as unknown as ServiceImpl<S>;
}
