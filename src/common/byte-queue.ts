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
    return this.#copyFront(Math.min(n, this.size));
  }

  /** Removes and returns the first `n` bytes (`n` ≤ size). */
  take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first === undefined || n === 0) return Buffer.alloc(0);
    const taken = first.length >= n ? first.subarray(0, n) : this.#copyFront(n);
    this.#drop(n);
    return taken;
  }

  /** A copy of the first `n` bytes (`n` ≤ size), gathered across chunks. */
  #copyFront(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const chunk of this.#chunks) {
      if (filled === n) break;
      filled += chunk.copy(out, filled, 0, Math.min(chunk.length, n - filled));
    }
    return out;
  }

  /** Forgets the first `n` bytes (`n` ≤ size); a chunk cut in two keeps its rest as a view. */
  #drop(n: number): void {
    this.size -= n;
    while (n > 0) {
      const chunk = this.#chunks[0] as Buffer;
      if (chunk.length <= n) {
        n -= chunk.length;
        this.#chunks.shift();
      } else {
        this.#chunks[0] = chunk.subarray(n);
        n = 0;
      }
    }
  }
}
