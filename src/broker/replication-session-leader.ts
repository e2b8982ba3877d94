import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { InvalidArgumentError, toConnectError } from "../errors.js";
import { validateBrokerId, validateTopicName } from "../fsm/validation.js";
import {
  ReplicateSessionResponseSchema,
  SessionPartitionAnswerSchema,
  type ReplicateSessionRequest,
  type ReplicateSessionResponse,
  type SessionFetch,
  type SessionPartitionAnswer,
} from "../gen/goulette/v1/broker_pb.js";
import type { EncodedResponses } from "../server/encoded-responses.js";
import type { Partition } from "./partition.js";
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_RECORDS,
  acceptsFrames,
  firstCut,
  readAnswer,
  type ShippedEncoding,
} from "./replication-leader.js";
import {
  NewsQueue,
  ResponseBudget,
  acknowledge,
  departure,
  newEntry,
  newsOf,
  sending,
  truncation,
  type Departure,
  type LeaderPartitionView,
  type SessionEntry,
} from "./replication-session-state.js";
import { encodeSessionEnvelope } from "./session-encoding.js";

export interface SessionLeaderOptions {
  lookup: (topic: string, partition: number) => Partition | undefined;
  /** With no news for this long, an empty answer goes out anyway (the follower's answer shows it lives). */
  idleResponseMs: number;
  /**
   * Idle partitions count as fetched again on a follower message at most this often (ms; default
   * idleResponseMs / 2). Well below --replica-lag-max, or idle followers would leave the ISR.
   */
  idleRefreshMs?: number;
  /** Records per partition per answer. */
  maxRecords?: number;
  /** Bytes of records per partition per answer (at least one record is always sent). */
  maxPartitionBytes?: number;
  /** Bytes of records per answer, over every partition in it. */
  maxResponseBytes?: number;
  /** Answer followers that accept them with frames (default true; false: records, as before frames). */
  frames?: boolean;
  /** Records shipped, by encoding (the goulette_broker_replicated_records_total counter). */
  onShipped?: (encoding: ShippedEncoding, records: number) => void;
  /** Sessions served now (the goulette_broker_replication_sessions gauge). */
  onOpen?: () => void;
  onClose?: () => void;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** Partitions a session may carry (a follower holds at most this many from one leader). */
const MAX_SESSION_PARTITIONS = 100_000;

/** A ReplicateSessionResponse that serializes to nothing: the placeholder of a pre-encoded one. */
const PLACEHOLDER: ReplicateSessionResponse = {
  $typeName: "goulette.v1.ReplicateSessionResponse",
  partitions: [],
};

/**
 * The leader's side of ReplicateSession: one stream carries every partition one follower follows from
 * this broker. Per partition it is Replicate (serveReplicate) spread over the stream: the follower's
 * `start` fetch opens the partition (epoch histories compared, maybe `truncate_to` first), each later
 * fetch acknowledges the previous answer and names the next position, and an answer is sent only when
 * the partition has news and its previous answer was acknowledged. Partitions wake the session through
 * their signals (one wake-up per session, not one waiter per partition); with no news for
 * `idleResponseMs` an empty answer goes out, and the follower's reply to it counts as a fetch at the
 * unchanged positions of its idle partitions (that keeps caught-up idle followers in sync, as a
 * Replicate follower's periodic fetch does, and lets a silent follower drop out).
 * With `encoded` (a binary protocol without compression) each answer is encoded here, its frames copied
 * once (session-encoding.ts), and a placeholder is yielded in its place (encoded-responses.ts).
 */
export async function* serveReplicateSession(
  options: SessionLeaderOptions,
  requests: AsyncIterable<ReplicateSessionRequest>,
  abort: AbortSignal,
  encoded?: EncodedResponses,
): AsyncGenerator<ReplicateSessionResponse> {
  const session = new LeaderSession(options, abort, encoded);
  options.onOpen?.();
  try {
    yield* session.run(requests);
  } finally {
    session.close();
    options.onClose?.();
  }
}

interface Held {
  entry: SessionEntry;
  p: Partition;
  unsubscribe: () => void;
}

class LeaderSession {
  #followerId: string | undefined;
  /** The follower stores frames as they are (it said so in its first message). */
  #frames = false;
  readonly #held = new Map<string, Held>();
  /** Partitions whose start is waiting for leadership set-up, by key → attempt number. */
  readonly #starting = new Map<string, number>();
  #attempts = 0;
  readonly #news = new NewsQueue();
  #departures: SessionPartitionAnswer[] = [];
  #wake: (() => void) | undefined;
  /** Something happened since the last #collect (so the loop must not sleep). */
  #stirred = false;
  #failure: { error: unknown } | undefined;
  #inputDone = false;
  #lastRefresh = 0;

  constructor(
    private readonly options: SessionLeaderOptions,
    private readonly abort: AbortSignal,
    private readonly encoded: EncodedResponses | undefined,
  ) {}

  async *run(requests: AsyncIterable<ReplicateSessionRequest>): AsyncGenerator<ReplicateSessionResponse> {
    void this.#consume(requests);
    const idle = this.options.idleResponseMs;
    let lastSent = Date.now();
    for (;;) {
      if (this.#failure) throw this.#failure.error;
      if (this.abort.aborted || this.#inputDone) return;
      this.#stirred = false;
      const answers = this.#followerId === undefined ? [] : await this.#collect();
      const now = Date.now();
      if (answers.length > 0 || now - lastSent >= idle) {
        yield this.#response(answers);
        lastSent = Date.now();
        continue;
      }
      if (!this.#stirred) await this.#sleep(lastSent + idle - now);
    }
  }

  #response(answers: SessionPartitionAnswer[]): ReplicateSessionResponse {
    if (this.encoded === undefined) return create(ReplicateSessionResponseSchema, { partitions: answers });
    this.encoded.push(encodeSessionEnvelope(answers));
    return PLACEHOLDER;
  }

  close(): void {
    for (const held of this.#held.values()) held.unsubscribe();
    this.#held.clear();
    this.#starting.clear();
    this.#notify();
  }

  // ---- the follower's messages ---------------------------------------------------------------------

  async #consume(requests: AsyncIterable<ReplicateSessionRequest>): Promise<void> {
    try {
      for await (const req of requests) {
        if (this.#followerId === undefined) {
          validateBrokerId(req.followerId);
          this.#followerId = req.followerId;
          this.#frames = this.options.frames !== false && acceptsFrames(req.frameFormat);
        }
        for (const ref of req.removed) this.#drop(`${ref.topic}#${ref.partition}`);
        for (const fetch of req.fetches) {
          if (fetch.start) this.#start(fetch, this.#followerId);
          else this.#acknowledged(fetch, this.#followerId);
        }
        this.#refreshIdle(this.#followerId);
        this.#notify();
      }
      this.#inputDone = true;
    } catch (err) {
      this.#failure = { error: err };
    }
    this.#notify();
  }

  /** A partition (re)joins the session: set up as the first request of a Replicate stream is. */
  #start(fetch: SessionFetch, followerId: string): void {
    validateTopicName(fetch.topic);
    const key = `${fetch.topic}#${fetch.partition}`;
    this.#drop(key);
    if (this.#held.size + this.#starting.size >= MAX_SESSION_PARTITIONS) {
      throw new InvalidArgumentError(
        `a replication session carries at most ${MAX_SESSION_PARTITIONS} partitions`,
      );
    }
    const p = this.options.lookup(fetch.topic, fetch.partition);
    if (p === undefined) {
      this.#depart(fetch.topic, fetch.partition, {
        code: Code.NotFound,
        message: `partition ${fetch.partition} of topic ${fetch.topic} is not on this broker`,
      });
      return;
    }
    const attempt = ++this.#attempts;
    this.#starting.set(key, attempt);
    p.leaderReady().then(
      (generation) => {
        if (this.#starting.get(key) !== attempt) return;
        this.#starting.delete(key);
        this.#open(p, fetch, followerId, generation);
        this.#notify();
      },
      (err: unknown) => {
        if (this.#starting.get(key) !== attempt) return;
        this.#starting.delete(key);
        this.#departWithError(fetch.topic, fetch.partition, err);
        this.#notify();
      },
    );
  }

  #open(p: Partition, fetch: SessionFetch, followerId: string, generation: number): void {
    if (!p.hasFollower(followerId)) {
      this.#depart(p.topic, p.partition, {
        code: Code.Unavailable,
        message: `${followerId} is not a follower of ${p.key} in epoch ${p.epoch} here`,
      });
      return;
    }
    if (Number(fetch.epoch) > p.epoch) {
      this.#depart(p.topic, p.partition, {
        code: Code.Unavailable,
        message: `follower ${followerId} has epoch ${fetch.epoch} of ${p.key}, newer than this leader's ${p.epoch}`,
      });
      return;
    }
    const fetchOffset = Number(fetch.fetchOffset);
    const truncateTo = firstCut(p, fetch.leaderEpochs, fetchOffset);
    if (truncateTo === undefined && fetchOffset > p.log.logEndOffset) {
      this.#depart(p.topic, p.partition, {
        code: Code.FailedPrecondition,
        message: `fetch offset ${fetchOffset} is past the log end ${p.log.logEndOffset} of ${p.key}`,
      });
      return;
    }
    const entry = newEntry({
      key: p.key,
      topic: p.topic,
      partition: p.partition,
      stream: p.openStream(followerId),
      generation,
      fetchOffset,
      logStart: reportedLogStart(fetch),
      truncateTo,
    });
    const wake = () => this.#notify(entry.key);
    const offData = p.dataSignal.subscribe(wake);
    const offHw = p.hwSignal.subscribe(wake);
    this.#held.set(entry.key, {
      entry,
      p,
      unsubscribe: () => {
        offData();
        offHw();
      },
    });
    if (truncateTo === undefined) this.#fetched(entry, p, followerId);
    this.#news.add(entry.key);
  }

  /** The follower stored the last answer of a partition and fetches on from `fetch_offset`. */
  #acknowledged(fetch: SessionFetch, followerId: string): void {
    const key = `${fetch.topic}#${fetch.partition}`;
    const held = this.#held.get(key);
    if (held === undefined) return; // departed meanwhile; the follower was told
    const { entry, p } = held;
    const departure = acknowledge(
      entry,
      Number(fetch.fetchOffset),
      Number(fetch.offsetsVersion),
      reportedLogStart(fetch),
      p.log,
    );
    if (departure !== undefined) {
      this.#drop(key);
      this.#depart(entry.topic, entry.partition, departure);
      return;
    }
    if (entry.truncateTo === undefined) this.#fetched(entry, p, followerId);
    this.#news.add(key);
  }

  /**
   * Any message from the follower shows it is alive: each idle partition counts as fetched again at its
   * position (at most every idleRefreshMs, so a session does not walk every partition per message).
   */
  #refreshIdle(followerId: string): void {
    const now = Date.now();
    if (now - this.#lastRefresh < (this.options.idleRefreshMs ?? this.options.idleResponseMs / 2)) return;
    this.#lastRefresh = now;
    for (const { entry, p } of this.#held.values()) {
      if (!entry.awaitingAck && entry.truncateTo === undefined) this.#fetched(entry, p, followerId);
    }
  }

  #fetched(entry: SessionEntry, p: Partition, followerId: string): void {
    // A fetch of an older leadership says nothing about this one (stream numbers restart with it).
    if (p.role !== "leader" || p.generation !== entry.generation) return;
    p.onFetch(followerId, entry.stream, entry.fetchOffset, entry.ackedVersion, entry.logStart);
  }

  // ---- answers -------------------------------------------------------------------------------------

  /** The answers to send now: departures, then partitions with news in queue order, within budget. */
  async #collect(): Promise<SessionPartitionAnswer[]> {
    const followerId = this.#followerId as string;
    const answers = this.#departures;
    this.#departures = [];
    const budget = new ResponseBudget(
      this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      this.options.maxPartitionBytes ?? DEFAULT_MAX_BYTES,
    );
    for (const key of this.#news.snapshot()) {
      const held = this.#held.get(key);
      if (held === undefined || held.entry.awaitingAck) {
        this.#news.delete(key); // queued again when acknowledged
        continue;
      }
      const { entry, p } = held;
      const news = newsOf(entry, viewOf(p, followerId), followerId);
      if (news.kind === "none") {
        this.#news.delete(key);
      } else if (news.kind === "depart") {
        this.#drop(key);
        answers.push(departure(entry.topic, entry.partition, news.departure));
      } else if (news.kind === "truncate") {
        this.#news.delete(key);
        entry.awaitingAck = true;
        answers.push(truncation(entry, news.to, p.highWatermark, p.epoch));
      } else {
        const maxBytes = budget.next();
        if (maxBytes === undefined) break; // the rest keep their place for the next answer
        let answer;
        try {
          answer = await readAnswer(p, entry.fetchOffset, entry.sentVersion, {
            maxRecords: this.options.maxRecords ?? DEFAULT_MAX_RECORDS,
            maxBytes,
            frames: this.#frames,
          });
        } catch (err) {
          if (this.#held.get(key) !== held) continue;
          this.#drop(key);
          this.#departWithError(entry.topic, entry.partition, err);
          continue;
        }
        if (this.#held.get(key) !== held) continue; // removed or restarted while reading
        budget.spend(answer.bytes);
        if (answer.count > 0) this.options.onShipped?.(answer.encoding, answer.count);
        this.#news.delete(key);
        answer.response.logStartMoved = sending(entry, answer.response, answer.sentVersion);
        if (p.generation === entry.generation) p.onResponse(followerId, entry.stream, answer.shippableEnd);
        answers.push(
          create(SessionPartitionAnswerSchema, {
            topic: entry.topic,
            partition: entry.partition,
            data: answer.response,
          }),
        );
      }
    }
    return answers;
  }

  #drop(key: string): void {
    this.#starting.delete(key);
    const held = this.#held.get(key);
    if (held === undefined) return;
    held.unsubscribe();
    this.#held.delete(key);
    this.#news.delete(key);
  }

  #depart(topic: string, partition: number, why: Departure): void {
    this.#departures.push(departure(topic, partition, why));
  }

  #departWithError(topic: string, partition: number, err: unknown): void {
    const connectError = toConnectError(err);
    this.#depart(topic, partition, { code: connectError.code, message: connectError.rawMessage });
  }

  // ---- wake-ups ------------------------------------------------------------------------------------

  #notify(key?: string): void {
    if (key !== undefined) this.#news.add(key);
    this.#stirred = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.abort.removeEventListener("abort", done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.abort.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }
}

/** The log start a follower reports with a fetch; undefined from followers older than the field. */
function reportedLogStart(fetch: SessionFetch): number | undefined {
  return fetch.logStartOffset === undefined ? undefined : Number(fetch.logStartOffset);
}

function viewOf(p: Partition, followerId: string): LeaderPartitionView {
  return {
    generation: p.role === "leader" && !p.closed ? p.generation : undefined,
    hasFollower: p.hasFollower(followerId),
    logStartOffset: p.log.logStartOffset,
    logEndOffset: p.log.logEndOffset,
    shippableEnd: p.shippableEnd,
    highWatermark: p.highWatermark,
    offsetsVersion: p.offsets.version,
  };
}
