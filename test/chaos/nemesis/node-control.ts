import { readFile, readdir, stat, truncate, writeFile, open } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { NodeControl } from "./node-preload.js";

/** The compiled preload, for `nodeArgs: ["--import", NODE_PRELOAD]`. */
export const NODE_PRELOAD = path.join(path.dirname(fileURLToPath(import.meta.url)), "node-preload.js");

/** Writes and signals the control files the preload reads (one per node id, in `dir`). */
export class NodeControls {
  readonly #controls = new Map<string, NodeControl>();

  constructor(readonly dir: string) {}

  /** Sets a node's control before it starts (no signal). */
  async init(id: string, control: NodeControl): Promise<void> {
    this.#controls.set(id, { ...control });
    await this.#write(id);
  }

  /**
   * Changes a node's control and tells it (SIGUSR2). A paused node takes it when resumed, a dead one
   * when it starts again.
   */
  async update(id: string, change: NodeControl, pid: number | undefined): Promise<void> {
    this.#controls.set(id, { ...this.#controls.get(id), ...change });
    await this.#write(id);
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGUSR2");
    } catch (err) {
      // A node another fault killed reads its control file when it starts again.
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
  }

  clockOffset(id: string): number {
    return this.#controls.get(id)?.clockOffsetMs ?? 0;
  }

  /**
   * After a power loss (the node wrote its ledger and died): cuts every file of the ledger to its
   * durable length; returns the bytes dropped. Clears the power-loss flag for the next start.
   */
  async applyPowerLoss(id: string): Promise<number> {
    const ledgerFile = path.join(this.dir, `${id}.durable.json`);
    const ledger = JSON.parse(await readFile(ledgerFile, "utf8")) as Record<string, number>;
    let dropped = 0;
    for (const [file, length] of Object.entries(ledger)) {
      const size = await stat(file).then(
        (s) => s.size,
        () => undefined,
      );
      if (size === undefined || size <= length) continue;
      await truncate(file, length);
      dropped += size - length;
    }
    this.#controls.set(id, { ...this.#controls.get(id), powerLoss: false });
    await this.#write(id);
    return dropped;
  }

  async #write(id: string): Promise<void> {
    await writeFile(path.join(this.dir, `${id}.json`), JSON.stringify(this.#controls.get(id) ?? {}));
  }
}

/** Segment files (`*.log`) with data under a broker's data dir: `<dataDir>/<topic>/<partition>/log/`. */
export async function segmentFiles(dataDir: string, topic: string): Promise<string[]> {
  const out: string[] = [];
  const topicDir = path.join(dataDir, topic);
  const partitions = await readdir(topicDir).catch(() => [] as string[]);
  for (const p of partitions.sort()) {
    const logDir = path.join(topicDir, p, "log");
    const files = await readdir(logDir).catch(() => [] as string[]);
    for (const f of files.sort()) {
      if (!f.endsWith(".log")) continue;
      const file = path.join(logDir, f);
      if ((await stat(file)).size > 0) out.push(file);
    }
  }
  return out;
}

/** Flips bit `bit` (0–7) of the byte at `position` of `file`. */
export async function flipBit(file: string, position: number, bit: number): Promise<void> {
  const handle = await open(file, "r+");
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] as number) ^ (1 << bit);
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}
