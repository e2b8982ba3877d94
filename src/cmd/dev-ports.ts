import type { PortNeed } from "../common/port-check.js";
import { InvalidArgumentError } from "../errors.js";

/** Everything `goulette dev` listens on is on loopback. */
export const DEV_HOST = "127.0.0.1";

export interface DevPortOptions {
  sentinelCount: number;
  brokerCount: number;
  sentinelPort: number;
  brokerPort: number;
  etcdPort: number;
  etcdPeerPort: number;
}

interface DevPort extends PortNeed {
  flag: string;
}

/**
 * Every port a dev cluster will listen on, each with the flag that moves it. Throws
 * InvalidArgumentError when two of them coincide or one is past 65535, before anything is probed.
 */
export function devPortNeeds(o: DevPortOptions): PortNeed[] {
  const need = (port: number, what: string, flag: string): DevPort => ({
    host: DEV_HOST,
    port,
    what,
    flag,
    remedy: `stop that process, or start this one with another ${flag}`,
  });
  const needs: DevPort[] = [
    ...range(o.sentinelCount, (i) => need(o.sentinelPort + i, `sentinel-${i + 1}`, "--sentinel-port")),
    ...range(o.brokerCount, (i) => need(o.brokerPort + i, `broker-${i + 1}`, "--broker-port")),
    need(o.etcdPort, "etcd client port", "--etcd-port"),
    need(o.etcdPeerPort, "etcd peer port", "--etcd-peer-port"),
  ];
  const byPort = new Map<number, DevPort>();
  for (const n of needs) {
    if (n.port > 65_535) {
      throw new InvalidArgumentError(`${n.what} would need port ${n.port}, past 65535: lower ${n.flag}`);
    }
    const other = byPort.get(n.port);
    if (other) {
      throw new InvalidArgumentError(
        `${other.what} and ${n.what} would both listen on port ${n.port}: ` +
          `choose ${other.flag} and ${n.flag} so that they do not overlap`,
      );
    }
    byPort.set(n.port, n);
  }
  return needs.map(({ flag: _flag, ...portNeed }) => portNeed);
}

function range<T>(count: number, make: (i: number) => T): T[] {
  return Array.from({ length: count }, (_, i) => make(i));
}
