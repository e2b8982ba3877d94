import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import net from "node:net";
import { describe, it } from "node:test";
import {
  findPortHolder,
  isGouletteDev,
  isProcessRunning,
  parseProcNetTcp,
  parseProcStat,
  readProcStat,
  shortCommandLine,
} from "../../src/common/proc.js";

const linux = existsSync("/proc/self/stat");

describe("/proc readers", () => {
  it("parses /proc/<pid>/stat, whatever the command name holds", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 4));
    fields[0] = "S"; // state (3rd field)
    fields[1] = "4242"; // ppid
    fields[19] = "987654"; // starttime (22nd)
    assert.deepEqual(parseProcStat(`123 (we (ird) name) ${fields.join(" ")}\n`), {
      state: "S",
      ppid: 4242,
      startTime: "987654",
    });
    assert.equal(parseProcStat("123 (cut short) S 1"), undefined);
    assert.equal(parseProcStat(""), undefined);
  });

  it("finds the listening sockets of /proc/net/tcp and tcp6, and only those", () => {
    const tcp = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55501 1 0",
      "   1: 0100007F:2382 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 55502 1 0",
      "   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 55503 1 0",
      "",
    ].join("\n");
    const tcp6 = [
      "  sl  local_address                         remote_address                        st ...",
      "   0: 00000000000000000000000001000000:23E6 00000000000000000000000000000000:0000 0A " +
        "00000000:00000000 00:00000000 00000000   107        0 77701 1 0",
    ].join("\n");
    assert.deepEqual(parseProcNetTcp(tcp), [
      { port: 0x2382, uid: 1000, inode: "55501" },
      { port: 8080, uid: 0, inode: "55503" },
    ]);
    assert.deepEqual(parseProcNetTcp(tcp6), [{ port: 0x23e6, uid: 107, inode: "77701" }]);
    assert.deepEqual(parseProcNetTcp("garbage\nmore garbage"), []);
  });

  it("shortens command lines for messages", () => {
    const argv = ["/usr/bin/node", "/srv/goulette/dist/src/cmd/goulette.js", "broker", "--id", "broker-3"];
    assert.equal(shortCommandLine(argv), "goulette broker --id broker-3");
    assert.equal(shortCommandLine(["/usr/local/bin/goulette", "dev"]), "goulette dev");
    assert.equal(
      shortCommandLine(["/usr/bin/python3", "-m", "http.server", "9190"]),
      "python3 -m http.server 9190",
    );
    assert.equal(shortCommandLine(["nc", "-l", "x".repeat(100)], 20), `nc -l ${"x".repeat(13)}…`);
    assert.equal(isGouletteDev(argv), false);
    assert.equal(isGouletteDev(["/usr/bin/node", "/x/goulette.js", "dev", "--brokers", "1"]), true);
    assert.equal(isGouletteDev(["/usr/local/bin/goulette", "dev"]), true);
  });

  it("names this process as the holder of a port it listens on", { skip: !linux && "no /proc" }, async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      assert.deepEqual(findPortHolder(port), { pid: process.pid, uid: process.getuid?.() ?? 0 });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(findPortHolder(port), undefined, "nobody listens once it is closed");
  });

  it("tells a running process from a gone one or a reused pid", () => {
    assert.equal(isProcessRunning(process.pid), true);
    assert.equal(isProcessRunning(0), false, "never a process group");
    assert.equal(isProcessRunning(-1), false);
    const stat = readProcStat(process.pid);
    if (stat) {
      assert.equal(isProcessRunning(process.pid, stat.startTime), true);
      assert.equal(isProcessRunning(process.pid, `${stat.startTime}0`), false);
    }
  });
});
