import { stat, truncate } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestCluster } from "../../helpers/cluster.js";
import type { ProxyMode, TcpProxy } from "../../helpers/tcp-proxy.js";
import type { EtcdControl } from "../harness.js";
import type { FaultEvent } from "./checker.js";
import { flipBit, segmentFiles, type NodeControls } from "./node-control.js";
import type { Rng } from "./rng.js";
import { until } from "./workload.js";

/**
 * The faults the nemesis combines. Each one is injected by `inject` and undone by the heal it returns;
 * a fault's slot says what it takes: two faults of one slot never overlap, so at most one broker is down
 * or damaged at a time (a majority of every partition's replicas keeps its disk: the guarantee's
 * premise), at most one sentinel of three, and etcd once.
 */

export const FAULT_KINDS = [
  "broker-kill",
  "broker-pause",
  "sentinel-kill",
  "sentinel-pause",
  "etcd-kill",
  "etcd-pause",
  "partition-leader",
  "partition-one-way",
  "partition-flap",
  "partition-sentinels",
  "clock-step",
  "power-loss",
  "disk-bitflip",
  "disk-truncate",
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

type Slot = "broker" | "sentinel" | "etcd" | "network" | "clock";

export const FAULT_SLOTS: Record<FaultKind, Slot> = {
  "broker-kill": "broker",
  "broker-pause": "broker",
  "power-loss": "broker",
  "disk-bitflip": "broker",
  "disk-truncate": "broker",
  "sentinel-kill": "sentinel",
  "sentinel-pause": "sentinel",
  "etcd-kill": "etcd",
  "etcd-pause": "etcd",
  "partition-leader": "network",
  "partition-one-way": "network",
  "partition-flap": "network",
  "partition-sentinels": "network",
  "clock-step": "clock",
};

/** What the faults act on. */
export interface FaultTargets {
  cluster: TestCluster;
  etcd: EtcdControl;
  controls: NodeControls;
  /** The TCP proxy in front of each broker, which the other brokers replicate through. */
  proxies: ReadonlyMap<string, TcpProxy>;
  /** The TCP proxies in front of the sentinels, which brokers send their KeepAlives through. */
  sentinelProxies: readonly TcpProxy[];
  /** The loopback address each broker's outgoing connections leave from. */
  sourceOf(broker: string): string;
  /** Flags a broker is restarted with (its proxy address, its client listener). */
  brokerArgs(broker: string): string[];
  /** Nodes killed or paused right now (brokers, sentinels): clients avoid them. */
  down: Set<string>;
  topic: string;
}

export interface ActiveFault {
  event: FaultEvent;
  heal(): Promise<void>;
}

export async function injectFault(kind: FaultKind, t: FaultTargets, rng: Rng): Promise<ActiveFault> {
  const event = (target: string, detail?: string): FaultEvent => ({
    kind,
    target,
    startAt: Date.now(),
    ...(detail ? { detail } : {}),
  });
  const brokers = [...t.cluster.brokers.keys()];
  const sentinels = [...t.cluster.sentinels.keys()];
  switch (kind) {
    case "broker-kill": {
      const b = await pickBroker(t, rng);
      const e = event(b);
      t.down.add(b);
      await t.cluster.killBroker(b);
      return { event: e, heal: () => restartBroker(t, b) };
    }
    case "broker-pause": {
      const b = await pickBroker(t, rng);
      const e = event(b);
      t.down.add(b);
      t.cluster.broker(b).pause();
      return {
        event: e,
        async heal() {
          t.cluster.broker(b).resume();
          t.down.delete(b);
        },
      };
    }
    case "power-loss": {
      const b = await pickBroker(t, rng);
      const e = event(b);
      t.down.add(b);
      const proc = t.cluster.broker(b);
      await t.controls.update(b, { powerLoss: true }, proc.process.pid);
      await until(proc.exited, Date.now() + 10_000);
      await proc.kill();
      e.detail = `${await t.controls.applyPowerLoss(b)} unsynced bytes dropped`;
      return { event: e, heal: () => restartBroker(t, b) };
    }
    case "disk-bitflip":
    case "disk-truncate": {
      const b = await pickBroker(t, rng);
      const e = event(b);
      t.down.add(b);
      await t.cluster.killBroker(b);
      const files = await segmentFiles(t.cluster.broker(b).dataDir, t.topic);
      if (files.length === 0) e.detail = "no segment yet";
      else {
        const file = rng.pick(files);
        const size = (await stat(file)).size;
        const name = file.split("/").slice(-2).join("/");
        if (kind === "disk-bitflip") {
          const position = rng.int(0, size - 1);
          const bit = rng.int(0, 7);
          await flipBit(file, position, bit);
          e.detail = `${name} byte ${position} of ${size} bit ${bit}`;
        } else {
          const length = rng.int(0, size - 1);
          await truncate(file, length);
          e.detail = `${name} cut to ${length} of ${size} bytes`;
        }
      }
      return { event: e, heal: () => restartBroker(t, b) };
    }
    case "sentinel-kill": {
      const s = rng.pick(sentinels);
      const e = event(s);
      t.down.add(s);
      await t.cluster.killSentinel(s);
      return {
        event: e,
        async heal() {
          await t.cluster.restartSentinel(s);
          t.down.delete(s);
        },
      };
    }
    case "sentinel-pause": {
      const s = rng.pick(sentinels);
      const e = event(s);
      t.down.add(s);
      t.cluster.sentinels.get(s)?.process.kill("SIGSTOP");
      return {
        event: e,
        async heal() {
          t.cluster.sentinels.get(s)?.process.kill("SIGCONT");
          t.down.delete(s);
        },
      };
    }
    case "etcd-kill": {
      const e = event("etcd");
      await t.etcd.kill();
      return { event: e, heal: () => t.etcd.start() };
    }
    case "etcd-pause": {
      const e = event("etcd");
      t.etcd.pause();
      return { event: e, heal: async () => t.etcd.resume() };
    }
    case "partition-leader":
    case "partition-flap": {
      // A partition leader cut off from every other broker, both ways; sentinels and clients still reach it.
      const leader = await pickBroker(t, rng, 1);
      const mode: ProxyMode = rng.pick(["drop", "blackhole"] as const);
      const cut = (on: boolean) => {
        for (const other of brokers) {
          if (other === leader) continue;
          t.proxies.get(leader)?.setSourceMode(t.sourceOf(other), on ? mode : undefined);
          t.proxies.get(other)?.setSourceMode(t.sourceOf(leader), on ? mode : undefined);
        }
      };
      const e = event(leader, mode);
      cut(true);
      if (kind === "partition-leader") return { event: e, heal: async () => cut(false) };
      // Flapping: cut and healed in turn, periods drawn now so the seed fixes them.
      const periods = Array.from({ length: 16 }, () => rng.int(300, 1_500));
      let stop = false;
      const flapping = (async () => {
        for (let i = 0; !stop; i++) {
          await sleep(periods[i % periods.length] as number);
          if (!stop) cut(i % 2 === 1);
        }
      })();
      return {
        event: e,
        async heal() {
          stop = true;
          await flapping;
          cut(false);
        },
      };
    }
    case "partition-one-way": {
      // `from` cannot open connections to `to` (`to` still reaches `from`).
      const from = rng.pick(brokers);
      const to = rng.pick(brokers.filter((b) => b !== from));
      const mode: ProxyMode = rng.pick(["drop", "blackhole"] as const);
      const e = event(`${from}→${to}`, mode);
      t.proxies.get(to)?.setSourceMode(t.sourceOf(from), mode);
      return { event: e, heal: async () => t.proxies.get(to)?.setSourceMode(t.sourceOf(from), undefined) };
    }
    case "partition-sentinels": {
      // A broker cut off from every sentinel (its KeepAlives fail); the sentinels' probes, the other
      // brokers and the clients still reach it: it must fence itself.
      const b = await pickBroker(t, rng);
      const mode: ProxyMode = rng.pick(["drop", "blackhole"] as const);
      const e = event(b, mode);
      for (const proxy of t.sentinelProxies) proxy.setSourceMode(t.sourceOf(b), mode);
      return {
        event: e,
        async heal() {
          for (const proxy of t.sentinelProxies) proxy.setSourceMode(t.sourceOf(b), undefined);
        },
      };
    }
    case "clock-step": {
      const node = rng.pick([...brokers, ...sentinels]);
      const stepMs = rng.pick([-3_600_000, -60_000, -10_000, 10_000, 60_000, 3_600_000]);
      const pid = () =>
        t.cluster.brokers.get(node)?.process.pid ?? t.cluster.sentinels.get(node)?.process.pid;
      const e = event(node, `${stepMs > 0 ? "+" : ""}${stepMs / 1000} s`);
      await t.controls.update(node, { clockOffsetMs: stepMs }, pid());
      return { event: e, heal: () => t.controls.update(node, { clockOffsetMs: 0 }, pid()) };
    }
  }
}

async function restartBroker(t: FaultTargets, broker: string): Promise<void> {
  await t.cluster.restartBroker(broker, t.brokerArgs(broker));
  t.down.delete(broker);
}

/**
 * A broker to fault: with probability `leaderBias` (default ½) the leader of a random partition of the
 * topic (the interesting target), else any broker.
 */
async function pickBroker(t: FaultTargets, rng: Rng, leaderBias = 0.5): Promise<string> {
  const brokers = [...t.cluster.brokers.keys()];
  const any = rng.pick(brokers);
  if (!rng.chance(leaderBias)) return any;
  const partition = rng.int(0, 63);
  try {
    const live = [...t.cluster.sentinels.values()].find((s) => !t.down.has(s.id));
    const res = await live?.client.getBrokers({ topic: t.topic }, { timeoutMs: 2_000 });
    const parts = res?.partitions ?? [];
    return parts[partition % Math.max(1, parts.length)]?.leader || any;
  } catch {
    return any;
  }
}
