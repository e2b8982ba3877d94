/** The physical ceiling of this machine for the data plane: loopback TCP bytes/s and disk write+fsync rates. */
import { spawn } from "node:child_process";
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { freePort } from "../test/helpers/ports.js";
import { trackChild } from "./lib/children.js";

/**
 * A sink in another process counts the bytes it reads; this process writes 64 KiB chunks as fast as the
 * socket drains for `durationMs`. Bytes/s as the sink saw them (two processes, as broker and client are).
 */
export async function loopbackBytesPerSecond(durationMs: number): Promise<number> {
  const port = await freePort();
  const sinkSource = `
    const net = require("node:net");
    let bytes = 0; let first = 0; let last = 0;
    const server = net.createServer((s) => {
      s.on("data", (c) => { if (!first) first = performance.now(); bytes += c.length; last = performance.now(); });
      s.on("end", () => { process.stdout.write(JSON.stringify({ bytes, seconds: (last - first) / 1000 })); server.close(); s.end(); });
    });
    server.listen(${port}, "127.0.0.1", () => process.stdout.write("ready\\n"));`;
  const sink = spawn(process.execPath, ["-e", sinkSource], { stdio: ["ignore", "pipe", "inherit"] });
  trackChild(sink);
  let out = "";
  await new Promise<void>((resolve) =>
    sink.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("ready\n")) resolve();
    }),
  );
  out = "";
  const exited = new Promise<void>((resolve) => sink.once("exit", () => resolve()));
  const chunk = Buffer.alloc(64 * 1024, 7);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("error", reject);
    socket.once("connect", () => {
      const start = performance.now();
      const pump = () => {
        while (performance.now() - start < durationMs) {
          if (!socket.write(chunk)) {
            socket.once("drain", pump);
            return;
          }
        }
        socket.end(() => resolve());
      };
      pump();
    });
  });
  await exited;
  const result = JSON.parse(out.slice(out.indexOf("{"))) as { bytes: number; seconds: number };
  return result.bytes / result.seconds;
}

export interface DiskRate {
  writeBytes: number;
  /** write + fdatasync pairs per second. */
  opsPerSecond: number;
  bytesPerSecond: number;
}

/** Sequential `writeBytes` writes each followed by fdatasync, for `durationMs`, in a file under `dir`. */
export function diskWriteSyncRate(dir: string, writeBytes: number, durationMs: number): DiskRate {
  const file = path.join(dir, `goulette-bench-disk-${process.pid}`);
  const fd = openSync(file, "w");
  const buffer = Buffer.alloc(writeBytes, 1);
  let ops = 0;
  const start = performance.now();
  try {
    while (performance.now() - start < durationMs) {
      writeSync(fd, buffer);
      fdatasyncSync(fd);
      ops++;
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  const seconds = (performance.now() - start) / 1000;
  return { writeBytes, opsPerSecond: ops / seconds, bytesPerSecond: (ops * writeBytes) / seconds };
}
