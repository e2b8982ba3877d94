import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ReportReader } from "./member-report.js";

/**
 * A consumer-group member as a real process (test/fixtures/group-consumer.ts), for the specs that kill,
 * freeze or stop members: it reads the JSON lines the member writes to its report file (one per
 * processed record, and one per assigned/revoked/lost/joined/rejoined event; see member-report.ts), up
 * to the file's end whenever it is asked, and keeps what it owns, according to its own reports.
 *
 *   const a = spawnGroupMember("a", { sentinels, topic, group, sessionTimeoutMs: 3_000 });
 *   await waitFor(() => a.owned.size > 0);
 *   const at = Date.now();
 *   a.child.kill("SIGKILL");
 *   await a.exited;
 *   a.died(at);
 */

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/group-consumer.js");

/** One line a member reported. */
export interface MemberLine {
  /** "msg", "assigned", "revoked", "lost", "joined", "rejoined", "reset". */
  e: string;
  /** Date.now() in the member when it wrote the line. */
  t: number;
  /** A record's partition and offset. */
  p?: number;
  o?: number;
  k?: string;
  v?: string;
  /** The partitions of an event, as "topic/partition". */
  parts?: string[];
  reason?: string;
  gen?: number;
  /** An offset reset's jump. */
  from?: number;
  to?: number;
}

export interface GroupMemberOptions {
  sentinels: string[];
  topic: string;
  group: string;
  sessionTimeoutMs: number;
  /** Static membership (the fixture's optional instance id). */
  instanceId?: string;
}

export class GroupMember {
  readonly #lines: MemberLine[] = [];
  readonly #owned = new Set<string>();
  readonly #intervals = new Map<string, [number, number][]>();
  readonly exited: Promise<number | null>;
  #report: ReportReader | undefined;

  /** `report` is the file the member writes (it exists before the process starts). */
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    report: string,
  ) {
    this.#report = new ReportReader(report);
    child.stderr?.on("data", (chunk: Buffer) => process.stderr.write(`[${name}] ${chunk.toString()}`));
    this.exited = new Promise((resolve) =>
      child.once("exit", (code) => {
        this.#catchUp();
        this.#report?.close();
        this.#report = undefined;
        rmSync(path.dirname(report), { recursive: true, force: true });
        resolve(code);
      }),
    );
  }

  /** Every line it reported so far. */
  get lines(): readonly MemberLine[] {
    this.#catchUp();
    return this.#lines;
  }

  /** What it owns now, as "topic/partition". */
  get owned(): ReadonlySet<string> {
    this.#catchUp();
    return this.#owned;
  }

  /** partition key → [from, to) ms intervals during which this member said it owned it. */
  get intervals(): ReadonlyMap<string, readonly [number, number][]> {
    this.#catchUp();
    return this.#intervals;
  }

  /** Takes in what the member reported since the last look. */
  #catchUp(): void {
    for (const row of this.#report?.read() ?? []) this.#record(JSON.parse(row) as MemberLine);
  }

  /** The process runs (it may be stopped by SIGSTOP). */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  #record(line: MemberLine): void {
    this.#lines.push(line);
    if (line.e === "assigned") {
      for (const key of line.parts ?? []) {
        this.#owned.add(key);
        const list = this.#intervals.get(key) ?? [];
        list.push([line.t, Infinity]);
        this.#intervals.set(key, list);
      }
    } else if (line.e === "revoked" || line.e === "lost") {
      for (const key of line.parts ?? []) this.#end(key, line.t);
    }
  }

  #end(key: string, t: number): void {
    this.#owned.delete(key);
    const open = this.#intervals.get(key)?.find((i) => i[1] === Infinity);
    if (open) open[1] = t;
  }

  /** A killed member owns nothing from the moment it died. */
  died(t: number): void {
    for (const key of [...this.owned]) this.#end(key, t);
  }

  messages(): MemberLine[] {
    return this.lines.filter((l) => l.e === "msg");
  }

  events(kind: string): MemberLine[] {
    return this.lines.filter((l) => l.e === kind);
  }

  /**
   * What this member did with `partition`, in order, for a failure message: its ownership events, offset
   * resets, and the runs of consecutive offsets it processed (`first–last`), times relative to `t0`.
   */
  story(topic: string, partition: number, t0: number): string {
    const key = `${topic}/${partition}`;
    const out: string[] = [];
    let run: { first: number; last: number; t: number } | undefined;
    const flush = () => {
      if (run) out.push(`read ${run.first}–${run.last}@${run.t - t0}ms`);
      run = undefined;
    };
    for (const l of this.lines) {
      if (l.e === "msg" && l.p === partition) {
        const o = l.o as number;
        if (run && o === run.last + 1) run.last = o;
        else {
          flush();
          run = { first: o, last: o, t: l.t };
        }
      } else if (l.e === "reset" && l.p === partition) {
        flush();
        out.push(`reset ${l.from}→${l.to} (${l.reason})@${l.t - t0}ms`);
      } else if (l.parts?.includes(key)) {
        flush();
        out.push(`${l.e}@${l.t - t0}ms`);
      }
    }
    flush();
    return `${this.name}: ${out.join(", ") || "nothing"}`;
  }
}

/**
 * Starts a member process. It is SIGKILLed if the test process exits first (a failing hook that never
 * reaches its cleanup must not leave members behind).
 */
export function spawnGroupMember(name: string, options: GroupMemberOptions): GroupMember {
  const report = path.join(mkdtempSync(path.join(tmpdir(), `goulette-member-${name}-`)), "report.jsonl");
  writeFileSync(report, "");
  const child = spawn(
    process.execPath,
    [
      FIXTURE,
      options.sentinels.join(","),
      options.topic,
      options.group,
      String(options.sessionTimeoutMs),
      ...(options.instanceId ? [options.instanceId] : []),
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, GOULETTE_MEMBER_REPORT: report } },
  );
  const reap = () => void child.kill("SIGKILL");
  process.once("exit", reap);
  child.once("exit", () => process.removeListener("exit", reap));
  return new GroupMember(name, child, report);
}
