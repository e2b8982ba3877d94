import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ReportReader } from "../helpers/member-report.js";

const REPORT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../helpers/member-report.js");

describe("member reports (what group member processes tell the multi-process specs)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "goulette-member-report-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("every line reported before a kill -9 is read, though nobody read while it was written", async () => {
    const file = path.join(dir, "killed.jsonl");
    writeFileSync(file, "");
    const script = [
      `import { openReportWriter } from ${JSON.stringify(pathToFileURL(REPORT).href)};`,
      `const report = openReportWriter(${JSON.stringify(file)});`,
      // About 500 KB: several times what a pipe holds.
      `for (let i = 0; i < 5000; i++) report(JSON.stringify({ i, pad: "x".repeat(80) }));`,
      `process.kill(process.pid, "SIGKILL");`,
    ].join("\n");
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "inherit" });
    const signal = await new Promise((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
    assert.equal(signal, "SIGKILL");
    const lines = new ReportReader(file).read().map((l) => (JSON.parse(l) as { i: number }).i);
    assert.deepEqual(
      lines,
      Array.from({ length: 5000 }, (_, i) => i),
    );
  });

  it("hands out whole lines only, a character cut between two reads included", () => {
    const file = path.join(dir, "partial.jsonl");
    writeFileSync(file, "");
    const reader = new ReportReader(file);
    const line = Buffer.from('{"v":"é"}\n');
    const cut = line.indexOf(0xa9); // the second byte of "é"
    appendFileSync(file, line.subarray(0, cut));
    assert.deepEqual(reader.read(), []);
    appendFileSync(file, Buffer.concat([line.subarray(cut), Buffer.from('{"v":2}\n{"v":')]));
    assert.deepEqual(reader.read(), ['{"v":"é"}', '{"v":2}']);
    appendFileSync(file, "3}\n");
    assert.deepEqual(reader.read(), ['{"v":3}']);
    reader.close();
  });
});
