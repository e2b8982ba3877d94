/**
 * The goulette package: the client SDK for Node (gRPC over HTTP/2).
 *
 *   import { Producer, Consumer, Admin } from "goulette";
 *
 * Browsers use src/client/web.ts instead (Connect or gRPC-web over fetch); see docs/client.md.
 */
export * from "./client/node.js";
export { createWebTransport, type WebTransportOptions } from "./client/web.js";
