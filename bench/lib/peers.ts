/** The peer queues of the data-plane benchmark as real processes: NATS JetStream and Redis. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../../test/helpers/ports.js";
import { waitFor } from "../../test/helpers/wait.js";
import { trackChild } from "./children.js";

export interface PeerProcess {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Its data directory (a temp dir removed by stop()). */
  readonly dir: string;
  readonly process: ChildProcess;
  /** Last lines of its output, for failure messages. */
  logTail(): string;
  /** SIGTERM (a clean shutdown), wait for the exit, remove the data dir. */
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** `--appendfsync`: `everysec` (fsync once a second) or `always` (fsync before answering). */
  appendfsync: "everysec" | "always";
}

/** `nats-server -js` with file storage in a temp dir (JetStream's file store: fsync on its own schedule). */
export async function startNats(): Promise<PeerProcess> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-bench-nats-"));
  return startPeer("nats-server", ["-js", "-sd", dir, "-a", "127.0.0.1", "-p", String(port)], port, dir);
}

/** `redis-server` with the append-only file on (no RDB snapshots) in a temp dir. */
export async function startRedis(options: RedisOptions): Promise<PeerProcess> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), "goulette-bench-redis-"));
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    options.appendfsync,
    "--dir",
    dir,
  ];
  return startPeer("redis-server", args, port, dir);
}

async function startPeer(bin: string, args: string[], port: number, dir: string): Promise<PeerProcess> {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const peer: PeerProcess = {
    port,
    dir,
    process: child,
    logTail: () => log.split("\n").slice(-15).join("\n"),
    async stop() {
      if (alive()) {
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      async () => {
        if (!alive()) throw new Error(`${bin} exited with ${child.exitCode}:\n${peer.logTail()}`);
        return canConnect(port);
      },
      { timeoutMs: 10_000, what: `${bin} to listen on ${port}` },
    );
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
