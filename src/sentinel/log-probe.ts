import type { Logger } from "../observability/logger.js";
import type { OperationLog } from "../oplog/operation-log.js";

/**
 * Reads the log head every second: keeps the head fresh (replay lag is visible even when the watch
 * stalls) and says whether the log's store answers (/readyz, goulette_sentinel_etcd_up).
 */
export class LogProbe {
  readonly #log: Pick<OperationLog, "readHead">;
  readonly #logger: Logger;
  readonly #onProbe: (head: number | undefined) => void;
  #reachable = false;
  #timer: NodeJS.Timeout | undefined;

  /** `onProbe` runs after every probe, with the head it read (undefined when the read failed). */
  constructor(
    log: Pick<OperationLog, "readHead">,
    logger: Logger,
    onProbe: (head: number | undefined) => void,
  ) {
    this.#log = log;
    this.#logger = logger;
    this.#onProbe = onProbe;
  }

  get reachable(): boolean {
    return this.#reachable;
  }

  /** Sets the verdict without a probe (a recovery that read the log, or failed to). */
  set reachable(value: boolean) {
    this.#reachable = value;
  }

  start(): void {
    let inFlight = false;
    this.#timer = setInterval(() => {
      if (inFlight) return;
      inFlight = true;
      let head: number | undefined;
      this.#log
        .readHead({ timeoutMs: 1_500 })
        .then(
          (answer) => {
            head = answer.head;
            if (!this.#reachable) this.#logger.info("etcd answers again");
            this.#reachable = true;
          },
          (err: unknown) => {
            if (this.#reachable) this.#logger.warn({ err: err }, "etcd does not answer");
            this.#reachable = false;
          },
        )
        .finally(() => {
          inFlight = false;
          this.#onProbe(head);
        });
    }, 1_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
