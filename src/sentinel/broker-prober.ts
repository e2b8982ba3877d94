import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BrokerService } from "../gen/goulette/v1/broker_pb.js";

export interface BrokerProberOptions {
  /** How long one Health call may take before the broker counts as unreachable (ms). */
  timeoutMs: number;
  transport?: (baseUrl: string) => Transport;
}

/**
 * The leader's own check of a broker a client reported unreachable (DESIGN §6): the leader does not
 * take the client's word alone. A broker is reachable when its Health RPC answers in time.
 */
export class BrokerProber {
  constructor(private readonly options: BrokerProberOptions) {}

  async isReachable(address: string): Promise<boolean> {
    const baseUrl = /^https?:\/\//.test(address) ? address : `http://${address}`;
    const transport = this.options.transport?.(baseUrl) ?? createGrpcTransport({ baseUrl });
    const client = createClient(BrokerService, transport);
    try {
      await client.health({}, { timeoutMs: this.options.timeoutMs });
      return true;
    } catch {
      return false;
    }
  }
}
