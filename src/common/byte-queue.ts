/**
 * Chunks in arrival order. A message that lies within the first chunk is taken as a view of it; one
 * that spans chunks costs one copy of its own bytes only, the chunks after it staying as they are (a
 * replication answer of a megabyte arrives in dozens of chunks, often with the next one's start behind
 * it, which joining every queued chunk copied twice).
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  size = 0;

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.size += chunk.byteLength;
  }

  /** The first `n` bytes (fewer when fewer are queued), left in the queue. */
  peek(n: number): Buffer {
    const first = this.#chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(Math.min(n, this.size));
    let filled = 0;
    for (const chunk of this.#chunks) {
      if (filled === out.length) break;
      filled += chunk.copy(out, filled, 0, Math.min(chunk.length, out.length - filled));
    }
    return out;
  }

  /** Removes and returns the first `n` bytes (`n` ≤ size). */
  take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first === undefined || n === 0) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.size -= n;
      return first.subarray(0, n);
    }
    const taken = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0] as Buffer;
      const wanted = n - filled;
      if (chunk.length <= wanted) {
        filled += chunk.copy(taken, filled);
        this.#chunks.shift();
      } else {
        filled += chunk.copy(taken, filled, 0, wanted);
        this.#chunks[0] = chunk.subarray(wanted);
      }
    }
    this.size -= n;
    return taken;
  }
}
