import { closeSync, openSync, readSync, writeSync } from "node:fs";

/**
 * The file a group member process reports through, one JSON line per record it processed and per
 * event. A file, not stdout: a line written to a regular file is in the page cache when writeSync
 * returns, so it survives a kill -9 the moment after, and the writer never waits for its reader. (A
 * pipe does neither: Node queues what a non-blocking pipe cannot take, and a killed process loses the
 * queue; a blocking pipe stalls the member, heartbeats included, whenever the test is slow to read.)
 */
export function openReportWriter(path: string): (line: string) => void {
  const fd = openSync(path, "a");
  return (line) => {
    const bytes = Buffer.from(`${line}\n`);
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done);
  };
}

/** Reads what a report file gained since the last call, as whole lines (a partial last line waits). */
export class ReportReader {
  readonly #fd: number;
  #position = 0;
  #partial: Buffer = Buffer.alloc(0);
  readonly #buffer = Buffer.alloc(256 * 1024);

  constructor(path: string) {
    this.#fd = openSync(path, "r");
  }

  /** The complete lines appended since the last read. */
  read(): string[] {
    const chunks = [this.#partial];
    for (;;) {
      const n = readSync(this.#fd, this.#buffer, 0, this.#buffer.length, this.#position);
      if (n === 0) break;
      this.#position += n;
      chunks.push(Buffer.from(this.#buffer.subarray(0, n)));
    }
    const bytes = Buffer.concat(chunks);
    // Split on the last newline in bytes, so that a character cut between two reads is not garbled.
    const end = bytes.lastIndexOf(0x0a);
    this.#partial = bytes.subarray(end + 1);
    if (end < 0) return [];
    return bytes
      .toString("utf8", 0, end)
      .split("\n")
      .filter((row) => row !== "");
  }

  close(): void {
    closeSync(this.#fd);
  }
}
