import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  GetBrokersRequestSchema,
  GetBrokersResponseSchema,
  SentinelService,
  type GetBrokersRequest,
  type GetBrokersResponse,
} from "../../src/gen/goulette/v1/sentinel_pb.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startRpcServer } from "../../src/server/rpc-server.js";

/**
 * No-op GetBrokers servers for the read-path benchmark: the same answer from three server stacks, so the
 * cost of each layer shows side by side. `answer` picks the response for a request's topic.
 * - goulette: startRpcServer (request guard, the port shared by HTTP/1.1 and HTTP/2; no interceptors);
 * - connect: connect-node's own adapter on a plain cleartext HTTP/2 server (what Connect costs by itself);
 * - grpc-js: @grpc/grpc-js's server (the stack etcd3's client is built on), decoding the request and
 *   encoding the response with the same protobuf code.
 */
export interface NoopServer {
  readonly url: string;
  close(): Promise<void>;
}

export type Answer = (req: GetBrokersRequest) => GetBrokersResponse;

function routes(answer: Answer) {
  return (router: ConnectRouter) => {
    router.service(SentinelService, { getBrokers: (req) => answer(req) });
  };
}

export async function startGouletteNoop(answer: Answer): Promise<NoopServer> {
  const server = await startRpcServer({
    address: "127.0.0.1:0",
    routes: routes(answer),
    fallback: (_req, res) => {
      res.writeHead(404);
      res.end();
    },
    logger: silentLogger(),
  });
  return { url: `http://127.0.0.1:${server.port}`, close: () => server.close() };
}

export async function startConnectNoop(answer: Answer): Promise<NoopServer> {
  const server = http2.createServer(connectNodeAdapter({ routes: routes(answer) }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle sessions would hold close() open; the benchmark is over.
        setTimeout(() => resolve(), 500).unref();
      }),
  };
}

export async function startGrpcJsNoop(answer: Answer): Promise<NoopServer> {
  const definition: grpc.ServiceDefinition = {
    getBrokers: {
      path: `/${SentinelService.typeName}/GetBrokers`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: GetBrokersRequest) => Buffer.from(toBinary(GetBrokersRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(GetBrokersRequestSchema, b),
      responseSerialize: (m: GetBrokersResponse) => Buffer.from(toBinary(GetBrokersResponseSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(GetBrokersResponseSchema, b),
    },
  };
  const server = new grpc.Server();
  server.addService(definition, {
    getBrokers: (
      call: grpc.ServerUnaryCall<GetBrokersRequest, GetBrokersResponse>,
      callback: grpc.sendUnaryData<GetBrokersResponse>,
    ) => callback(null, answer(call.request)),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 500).unref();
      }),
  };
}
