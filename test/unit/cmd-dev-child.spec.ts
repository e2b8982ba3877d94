import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exitReason } from "../../src/cmd/dev-child.js";
import { PARENT_PID_ENV, stopWhenParentDies, watchParent } from "../../src/common/parent-watch.js";

describe("goulette dev children", () => {
  it("say why they exited in one line", () => {
    const end = { code: 1, signal: null };
    assert.equal(
      exitReason(
        ['{"level":"info","msg":"starting broker"}', "goulette: 127.0.0.1:9192 is in use: do x"],
        end,
      ),
      "127.0.0.1:9192 is in use: do x",
    );
    const uncaught = [
      '{"level":"info","msg":"starting broker"}',
      "Error: ENOTDIR: not a directory, mkdir '/d/broker-1/topics'",
      "    at async mkdir (node:internal/fs/promises:858:10)",
      "  errno: -20,",
    ];
    assert.equal(
      exitReason(uncaught, end),
      "Error: ENOTDIR: not a directory, mkdir '/d/broker-1/topics' (exit code 1)",
    );
    assert.equal(exitReason([], { code: null, signal: "SIGKILL" }), "exited with signal SIGKILL");
    assert.equal(
      exitReason([], { code: null, signal: null, error: new Error("spawn setpriv ENOENT") }),
      "could not be started: spawn setpriv ENOENT",
    );
  });

  it("notice when the parent they were started by is no longer their parent", () => {
    let calls = 0;
    const stop = watchParent(process.ppid, () => calls++, 10);
    stop();
    assert.equal(calls, 0);
    watchParent(process.pid, () => calls++, 10);
    assert.equal(calls, 1, "not our parent: reported at once");
  });

  it("take the parent pid from the environment and hide it from their own children", () => {
    const env: NodeJS.ProcessEnv = { [PARENT_PID_ENV]: String(process.ppid), OTHER: "x" };
    stopWhenParentDies(env);
    assert.deepEqual(env, { OTHER: "x" });
  });
});
