import { Worker } from "node:worker_threads";
import type { LoadResult, LoadSpec, WorkerReply, WorkerRequest } from "./load-protocol.js";

export type { LoadResult, LoadSpec, LoadTarget } from "./load-protocol.js";

/** A load generator running in a worker thread; one run at a time. */
export interface LoadGenerator {
  run(spec: LoadSpec): Promise<LoadResult>;
  close(): Promise<void>;
}

export function createLoadGenerator(): LoadGenerator {
  const worker = new Worker(new URL("./load-worker.js", import.meta.url));
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  worker.on("message", (reply: WorkerReply) => {
    const waiter = pending.get(reply.id);
    pending.delete(reply.id);
    waiter?.resolve(reply);
  });
  worker.on("error", (err) => {
    for (const waiter of pending.values()) waiter.reject(err);
    pending.clear();
  });
  const send = (request: WorkerRequest) =>
    new Promise<WorkerReply>((resolve, reject) => {
      pending.set(request.id, { resolve, reject });
      worker.postMessage(request);
    });
  return {
    async run(spec) {
      const reply = await send({ id: nextId++, spec });
      if (reply.error || !reply.result) throw new Error(`load run failed: ${reply.error ?? "no result"}`);
      return reply.result;
    },
    async close() {
      await send({ id: nextId++, close: true }).catch(() => undefined);
      await worker.terminate();
    },
  };
}
