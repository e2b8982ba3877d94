import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { GOULETTE_BIN } from "../helpers/goulette-process.js";

/** `goulette completion <shell>` from the real binary. */
function completion(shell: string) {
  return spawnSync(process.execPath, [GOULETTE_BIN, "completion", shell], { encoding: "utf8" });
}

const dir = mkdtempSync(path.join(tmpdir(), "goulette-completion-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What bash completes for these words (the last one being typed), with the generated script loaded. */
function complete(script: string, words: string[]): string[] {
  const file = path.join(dir, "goulette.bash");
  writeFileSync(file, script);
  const array = words.map((w) => `'${w}'`).join(" ");
  const run = spawnSync(
    "bash",
    [
      "-c",
      `source "$0"; COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _goulette; printf '%s\\n' "\${COMPREPLY[@]}"`,
      file,
    ],
    { encoding: "utf8" },
  );
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.split("\n").filter((line) => line !== "");
}

describe("goulette completion", () => {
  const bash = completion("bash");

  it("prints a bash script that completes flags, short flags, commands and choices from the option schemas", () => {
    assert.equal(bash.status, 0, bash.stderr);
    assert.deepEqual(complete(bash.stdout, ["goulette", "produce", "--ke"]), ["--key", "--key-separator"]);
    assert.deepEqual(complete(bash.stdout, ["goulette", "consume", "--sentinel"]), ["--sentinels"]);
    assert.ok(complete(bash.stdout, ["goulette", "consume", "-"]).includes("-G"));
    assert.deepEqual(complete(bash.stdout, ["goulette", "dev", "--sentinel-"]), [
      "--sentinel-count",
      "--sentinel-port",
    ]);
    assert.deepEqual(complete(bash.stdout, ["goulette", "pro"]), ["produce"]);
    assert.deepEqual(complete(bash.stdout, ["goulette", "admin", "re"]), ["reset-offsets"]);
    assert.deepEqual(complete(bash.stdout, ["goulette", "produce", "--acks", ""]), ["all", "leader"]);
    assert.deepEqual(complete(bash.stdout, ["goulette", "consume", "-o", "ea"]), ["earliest"]);
  });

  it("prints a zsh script that loads the same function through bashcompinit", () => {
    const zsh = completion("zsh");
    assert.equal(zsh.status, 0, zsh.stderr);
    assert.match(zsh.stdout, /bashcompinit/);
    const body = zsh.stdout.slice(zsh.stdout.indexOf("_goulette() {"));
    assert.equal(body, bash.stdout.slice(bash.stdout.indexOf("_goulette() {")));
  });

  it("refuses another shell in one line", () => {
    const fish = completion("fish");
    assert.equal(fish.status, 1);
    assert.match(fish.stderr, /^goulette: completion needs one shell: bash or zsh, got 'fish'\n$/);
  });
});
