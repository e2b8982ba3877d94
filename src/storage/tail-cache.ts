import type { ReadCursor } from "./segment.js";
import type { StoredRecord } from "./record-format.js";

/**
 * The most recently appended records, decoded, bounded by bytes. Consumers and followers that keep up
 * read from here without a pread, a CRC pass or a decode. Records are views into the buffers that were
 * written, so the cache costs about its byte budget.
 */
export class TailCache {
  private records: StoredRecord[] = [];
  private head = 0;
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Adds the next record; a record that does not follow the cached ones restarts the cache. */
  push(record: StoredRecord): void {
    if (this.maxBytes <= 0) return;
    const last = this.records[this.records.length - 1];
    if (this.head < this.records.length && last !== undefined && last.offset + 1 !== record.offset)
      this.clear();
    this.records.push(record);
    this.bytes += record.sizeBytes;
    while (this.bytes > this.maxBytes && this.head < this.records.length) {
      this.bytes -= (this.records[this.head] as StoredRecord).sizeBytes;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.records.length) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Serves the read from the cache when it starts inside it (filling `cursor` like a segment read
   * would) and returns true; returns false when the disk has to serve it.
   */
  serve(cursor: ReadCursor): boolean {
    const first = this.records[this.head];
    if (first === undefined) return false;
    let i = this.head + (cursor.offset - first.offset);
    if (i < this.head || i >= this.records.length) return false;
    while (i < this.records.length && cursor.out.length < cursor.maxRecords) {
      const record = this.records[i] as StoredRecord;
      if (record.offset >= cursor.endOffset) break;
      if (cursor.out.length > 0 && cursor.bytes + record.sizeBytes > cursor.maxBytes) break;
      cursor.out.push(record);
      cursor.bytes += record.sizeBytes;
      cursor.offset = record.offset + 1;
      i++;
    }
    return true;
  }

  /** Forgets the records at or after `offset` (the log was cut there). */
  truncateFrom(offset: number): void {
    while (
      this.records.length > this.head &&
      (this.records[this.records.length - 1] as StoredRecord).offset >= offset
    ) {
      this.bytes -= (this.records.pop() as StoredRecord).sizeBytes;
    }
  }

  clear(): void {
    this.records = [];
    this.head = 0;
    this.bytes = 0;
  }
}
