import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parseOwner } from "../../src/common/pid-lock.js";
import {
  allDevPorts,
  devArgs,
  devPorts,
  processesMentioning,
  runGoulette,
  startDev,
  takenPorts,
  type DevPorts,
  type RunningDev,
} from "../helpers/dev-process.js";
import { waitFor } from "../helpers/wait.js";

const SENTINELS = 1;
const BROKERS = 2;

/**
 * One `goulette dev`, then what a user does next: run it again (same directory, or same ports), kill
 * it with -9, and run it again.
 */
describe(
  "goulette dev: a second one, kill -9, and the next start",
  { skip: process.platform !== "linux" },
  () => {
    let root: string;
    let dataDir: string;
    let ports: DevPorts;
    let dev: RunningDev;
    /** Every process of this cluster: its command line names the data directory or the etcd port. */
    const clusterProcesses = () => [
      ...new Map(
        [...processesMentioning(dataDir), ...processesMentioning(`127.0.0.1:${ports.etcdPort}`)].map((p) => [
          p.pid,
          p,
        ]),
      ).values(),
    ];

    before(async () => {
      root = await mkdtemp(path.join(tmpdir(), "goulette-dev-life-"));
      dataDir = path.join(root, "data");
      ports = await devPorts(SENTINELS, BROKERS);
      dev = await startDev(devArgs(dataDir, ports, SENTINELS, BROKERS));
    });
    after(async () => {
      await dev.stop("SIGKILL");
      await rm(root, { recursive: true, force: true });
    });

    it("a second one on the same data directory exits at once, naming the first, and starts nothing", async () => {
      const otherPorts = await devPorts(SENTINELS, BROKERS);
      const run = await runGoulette([
        ...devArgs(dataDir, otherPorts, SENTINELS, BROKERS),
        "--log-level",
        "info",
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(
        run.stderr,
        `goulette: data directory ${dataDir} is in use by another goulette dev (pid ${dev.process.pid}): ` +
          `stop it (Ctrl-C in its terminal, or kill ${dev.process.pid}), or pass another --data-dir\n`,
      );
      assert.equal(run.stdout, "", "no child was started (each would log 'starting …' at info)");
      assert.ok(run.ms < 10_000, `exited after ${run.ms} ms`);
      assert.deepEqual(await takenPorts(allDevPorts(otherPorts, SENTINELS, BROKERS)), []);
      assert.equal(parseOwner(readFileSync(path.join(dataDir, "dev.lock"), "utf8"))?.pid, dev.process.pid);
    });

    it("a second one on the first one's ports exits at once, naming the port and its holder", async () => {
      const otherDir = path.join(root, "other");
      const run = await runGoulette([...devArgs(otherDir, ports, SENTINELS, BROKERS), "--log-level", "info"]);
      assert.equal(run.code, 1, run.stderr);
      const sentinel = processesMentioning(`127.0.0.1:${ports.sentinelPort}`).find((p) =>
        p.argv.includes("sentinel"),
      );
      assert.ok(sentinel, "the first cluster's sentinel");
      assert.match(
        run.stderr,
        new RegExp(
          `^goulette: 127\\.0\\.0\\.1:${ports.sentinelPort} \\(sentinel-1\\) is already in use by pid ` +
            `${sentinel.pid} \\(goulette sentinel --id sentinel-1 .*, started by goulette dev pid ` +
            `${dev.process.pid}\\): stop that process, or start this one with another --sentinel-port ` +
            `\\(4 more ports are taken too\\)\\n$`,
        ),
      );
      assert.equal(run.stdout, "");
      assert.ok(run.ms < 10_000, `exited after ${run.ms} ms`);
      assert.equal(existsSync(path.join(otherDir, "etcd")), false, "etcd was not started");
      assert.equal(existsSync(path.join(otherDir, "dev.lock")), false, "the lock was let go");
    });

    it("kill -9 leaves no process of the cluster and frees every port within seconds", async () => {
      const children = clusterProcesses().filter((p) => p.pid !== dev.process.pid);
      const kindOf = (argv: string[]) => {
        if (argv.some((w) => w.endsWith("etcd"))) return "etcd";
        // Each broker's filesystem sync helper (dev runs --fsync interval): `sh -c SCRIPT goulette-syncfs DIR`.
        if (argv[3] === "goulette-syncfs") return "syncfs helper";
        return argv[2];
      };
      const kinds = children.map((p) => kindOf(p.argv)).sort();
      assert.deepEqual(
        kinds,
        ["broker", "broker", "etcd", "sentinel", "syncfs helper", "syncfs helper"],
        JSON.stringify(children),
      );
      const killed = Date.now();
      await dev.stop("SIGKILL");
      await waitFor(() => clusterProcesses().length === 0, {
        timeoutMs: 5_000,
        what: "every process of the cluster to be gone",
      });
      const portList = allDevPorts(ports, SENTINELS, BROKERS);
      await waitFor(async () => (await takenPorts(portList)).length === 0, {
        timeoutMs: 5_000,
        what: `ports ${portList.join(", ")} to be free`,
      });
      assert.ok(Date.now() - killed < 5_000);
      assert.ok(existsSync(path.join(dataDir, "dev.lock")), "kill -9 leaves the lock behind");
    });

    it("the next one on the same directory and ports takes the stale lock over and starts", async () => {
      dev = await startDev(devArgs(dataDir, ports, SENTINELS, BROKERS));
      assert.match(dev.output(), /took over the data directory of a goulette dev that is gone/);
      assert.equal(parseOwner(readFileSync(path.join(dataDir, "dev.lock"), "utf8"))?.pid, dev.process.pid);
      assert.equal(await dev.stop("SIGTERM"), 0);
      assert.equal(existsSync(path.join(dataDir, "dev.lock")), false, "a clean stop lets the lock go");
      assert.deepEqual(clusterProcesses(), []);
    });
  },
);
