import { spawn } from "node:child_process";
import { trackChild } from "./children.js";
import { withTimeout } from "./wait.js";

export interface StubBroker {
  /** host:port to register brokers with. */
  readonly address: string;
  stop(): Promise<void>;
}

/** Starts stub-broker-main.js as a child process (see there) and reads its port. */
export async function startStubBroker(): Promise<StubBroker> {
  const child = spawn(process.execPath, [new URL("./stub-broker-main.js", import.meta.url).pathname], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split("\n")[0];
        if (out.includes("\n") && line) resolve(Number(line));
      });
      child.once("exit", (code) => reject(new Error(`stub broker exited with ${code}`)));
    }),
    10_000,
    "starting the stub broker",
  );
  return {
    address: `127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}
