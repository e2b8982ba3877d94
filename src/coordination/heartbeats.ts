import type { Etcd3, Watcher } from "etcd3";
import type { ListenerAddress } from "../fsm/listeners.js";
import type { Keyspace } from "./keyspace.js";

/** What a broker's heartbeat key holds. */
export interface Heartbeat {
  brokerId: string;
  address: string;
  /** Its other listeners (absent when none): a down broker that beats again comes back with them. */
  listeners?: ListenerAddress[];
  status: string;
  /** Unix ms of the KeepAlive that wrote it. */
  lastHeartbeat: number;
}

/**
 * Broker heartbeats: `<prefix>/brokers/<id>` bound to a lease of `ttlSeconds`. Any sentinel can record
 * a KeepAlive (a fresh lease per beat, so no sentinel owns another's lease); when beats stop, etcd
 * deletes the key and the leader's watch sees it.
 */
export class HeartbeatStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: Keyspace,
    private readonly ttlSeconds: number,
  ) {}

  async record(beat: Heartbeat): Promise<void> {
    const lease = this.etcd.lease(this.ttlSeconds, { autoKeepAlive: false });
    try {
      await lease.put(this.keys.broker(beat.brokerId)).value(JSON.stringify(beat));
    } finally {
      // Stop tracking the lease locally; etcd expires it TTL after this beat unless a newer one replaces it.
      lease.release();
    }
  }

  async all(): Promise<Map<string, Heartbeat>> {
    const res = await this.etcd.getAll().prefix(this.keys.brokersPrefix).strings();
    const beats = new Map<string, Heartbeat>();
    for (const text of Object.values(res)) {
      const beat = JSON.parse(text) as Heartbeat;
      beats.set(beat.brokerId, beat);
    }
    return beats;
  }

  async get(brokerId: string): Promise<Heartbeat | undefined> {
    const text = await this.etcd.get(this.keys.broker(brokerId)).string();
    return text ? (JSON.parse(text) as Heartbeat) : undefined;
  }

  /** Calls onExpired(brokerId) when a heartbeat key disappears and onBeat on every put. */
  async watch(handlers: {
    onBeat: (beat: Heartbeat) => void;
    onExpired: (brokerId: string) => void;
    onError: (err: Error) => void;
  }): Promise<Watcher> {
    const watcher = await this.etcd.watch().prefix(this.keys.brokersPrefix).create();
    watcher.on("put", (kv) => {
      try {
        handlers.onBeat(JSON.parse(kv.value.toString()) as Heartbeat);
      } catch (err) {
        handlers.onError(err as Error);
      }
    });
    watcher.on("delete", (kv) => handlers.onExpired(kv.key.toString().slice(this.keys.brokersPrefix.length)));
    watcher.on("error", handlers.onError);
    return watcher;
  }
}
