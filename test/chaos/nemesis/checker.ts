/**
 * The nemesis's checker: a pure function of the run's history (every send with its outcome, every
 * record the consumer group handed out, every leader the sentinels named, every fault) → the anomalies.
 * Values are unique per send ("<producer>/<key>/<seq>"), so a read names the send it came from.
 */

export interface SendRecord {
  producer: string;
  idempotent: boolean;
  key: string;
  /** Unique over the run. */
  value: string;
  /** Per producer, in invocation order. */
  seq: number;
  invokedAt: number;
  /** Requests that carried it (a non-idempotent producer retries by sending it again). */
  attempts: number;
  /** "ok": acknowledged; "fail": the producer gave up (it may still have been written); "pending": unanswered at the end. */
  outcome: "ok" | "fail" | "pending";
  completedAt?: number;
  partition?: number;
  /** The acknowledged offset (-1: a duplicate whose offset the broker no longer knew). */
  offset?: number;
}

export interface ReadRecord {
  member: string;
  partition: number;
  offset: number;
  value: string;
  at: number;
}

/** A partition's leader and epoch as one sentinel answered GetBrokers. */
export interface LeaderObservation {
  sentinel: string;
  partition: number;
  epoch: string;
  leader: string;
  at: number;
}

export interface FaultEvent {
  kind: string;
  target: string;
  startAt: number;
  /** When the fault was healed (absent: never, the run ended first). */
  healAt?: number;
  detail?: string;
}

export interface History {
  partitions: number;
  sends: SendRecord[];
  reads: ReadRecord[];
  leaders: LeaderObservation[];
  faults: FaultEvent[];
}

export interface CheckResult {
  acknowledged: number;
  /** Sends the producers gave up on or that were unanswered (indeterminate: they may be in the log). */
  indeterminate: number;
  /** Distinct values the group read. */
  read: number;
  /** Acknowledged values the group never read, or whose acknowledged offset holds another value. */
  lost: string[];
  /** Values read that no producer ever sent. */
  phantoms: string[];
  /** Extra stored copies (a value read at more than one offset), by cause. */
  duplicates: { retry: number; other: number; examples: string[] };
  /** The same offset handed out again (at-least-once after a rebalance or an uncommitted offset). */
  redeliveries: number;
  /** One offset read with two different values: a record the group saw was later replaced. */
  offsetConflicts: string[];
  /** Two acknowledged sends of a key, the later one stored before the earlier one. */
  orderViolations: string[];
  /** Two leaders named for one partition epoch. */
  leaderConflicts: string[];
  /** Per fault (same order as history.faults): from its heal to an acknowledgement on every partition, of a send made after the heal. */
  recoveryMs: (number | undefined)[];
}

const EXAMPLES = 5;

export function checkHistory(history: History): CheckResult {
  const sent = new Map<string, SendRecord>();
  for (const s of history.sends) sent.set(s.value, s);

  // Every (partition, offset) the group read and the values found there; every value's offsets.
  const atOffset = new Map<string, Set<string>>();
  const offsetsOf = new Map<string, Set<string>>();
  let deliveries = 0;
  for (const r of history.reads) {
    deliveries++;
    const where = `${r.partition}/${r.offset}`;
    const values = atOffset.get(where) ?? new Set<string>();
    values.add(r.value);
    atOffset.set(where, values);
    const offsets = offsetsOf.get(r.value) ?? new Set<string>();
    offsets.add(where);
    offsetsOf.set(r.value, offsets);
  }
  let distinctDeliveries = 0;
  for (const values of atOffset.values()) distinctDeliveries += values.size;

  const lost: string[] = [];
  let acknowledged = 0;
  let indeterminate = 0;
  for (const s of history.sends) {
    if (s.outcome !== "ok") {
      indeterminate++;
      continue;
    }
    acknowledged++;
    if (!offsetsOf.has(s.value)) {
      lost.push(`${s.value} (acked at ${s.partition}/${s.offset}, never read)`);
      continue;
    }
    if (s.offset !== undefined && s.offset >= 0) {
      const there = atOffset.get(`${s.partition}/${s.offset}`);
      if (there && !there.has(s.value))
        lost.push(`${s.value} (acked at ${s.partition}/${s.offset}, which holds ${[...there].join(", ")})`);
    }
  }

  const phantoms = [...offsetsOf.keys()].filter((v) => !sent.has(v));

  const duplicates = { retry: 0, other: 0, examples: [] as string[] };
  for (const [value, offsets] of offsetsOf) {
    if (offsets.size < 2) continue;
    const s = sent.get(value);
    const extra = offsets.size - 1;
    if (s && !s.idempotent && s.attempts > 1) duplicates.retry += extra;
    else {
      duplicates.other += extra;
      if (duplicates.examples.length < EXAMPLES)
        duplicates.examples.push(`${value} at ${[...offsets].join(", ")}`);
    }
  }

  const offsetConflicts = [...atOffset]
    .filter(([, values]) => values.size > 1)
    .map(([where, values]) => `${where}: ${[...values].join(" vs ")}`);

  // Per key, acknowledged sends in invocation order must be stored in increasing offsets (each
  // producer keeps a key's sends in order: the idempotent one pipelines them in order, the other one
  // sends one at a time). The offset is the acknowledged one, else the first one read.
  const orderViolations: string[] = [];
  const byKey = new Map<string, SendRecord[]>();
  for (const s of history.sends) {
    if (s.outcome !== "ok") continue;
    const k = `${s.producer}/${s.key}`;
    byKey.set(k, [...(byKey.get(k) ?? []), s]);
  }
  const storedAt = (s: SendRecord): number | undefined => {
    if (s.offset !== undefined && s.offset >= 0) return s.offset;
    const offsets = [...(offsetsOf.get(s.value) ?? [])].map((w) => Number(w.split("/")[1]));
    return offsets.length === 0 ? undefined : Math.min(...offsets);
  };
  for (const [key, list] of byKey) {
    list.sort((a, b) => a.seq - b.seq);
    let previous: { seq: number; offset: number } | undefined;
    for (const s of list) {
      const offset = storedAt(s);
      if (offset === undefined) continue;
      if (previous && offset <= previous.offset)
        orderViolations.push(`${key}: #${s.seq} at ${offset}, after #${previous.seq} at ${previous.offset}`);
      previous = { seq: s.seq, offset };
    }
  }

  const leadersOf = new Map<string, Set<string>>();
  for (const o of history.leaders) {
    const k = `${o.partition}@${o.epoch}`;
    const set = leadersOf.get(k) ?? new Set<string>();
    set.add(o.leader);
    leadersOf.set(k, set);
  }
  const leaderConflicts = [...leadersOf]
    .filter(([, leaders]) => leaders.size > 1)
    .map(([k, leaders]) => `partition ${k.replace("@", " epoch ")}: ${[...leaders].join(", ")}`);

  const recoveryMs = history.faults.map((f) => recoveryOf(f, history));

  return {
    acknowledged,
    indeterminate,
    read: offsetsOf.size,
    lost,
    phantoms,
    duplicates,
    redeliveries: deliveries - distinctDeliveries,
    offsetConflicts,
    orderViolations,
    leaderConflicts,
    recoveryMs,
  };
}

function recoveryOf(fault: FaultEvent, history: History): number | undefined {
  const healAt = fault.healAt;
  if (healAt === undefined) return undefined;
  let worst = 0;
  for (let p = 0; p < history.partitions; p++) {
    let first: number | undefined;
    for (const s of history.sends) {
      if (s.outcome !== "ok" || s.partition !== p || s.invokedAt < healAt || s.completedAt === undefined)
        continue;
      if (first === undefined || s.completedAt < first) first = s.completedAt;
    }
    if (first === undefined) return undefined;
    worst = Math.max(worst, first - healAt);
  }
  return worst;
}

/** The anomalies that break the guarantee (duplicates by retry and redeliveries are documented behaviour). */
export function violations(result: CheckResult): string[] {
  const out: string[] = [];
  const list = (what: string, items: string[]) => {
    if (items.length > 0) out.push(`${items.length} ${what}: ${items.slice(0, EXAMPLES).join("; ")}`);
  };
  list("lost", result.lost);
  list("phantom", result.phantoms);
  if (result.duplicates.other > 0)
    out.push(
      `${result.duplicates.other} duplicates not caused by a non-idempotent retry: ${result.duplicates.examples.join("; ")}`,
    );
  list("offsets read with two values", result.offsetConflicts);
  list("reordered per key", result.orderViolations);
  list("partition epochs with two leaders", result.leaderConflicts);
  return out;
}
