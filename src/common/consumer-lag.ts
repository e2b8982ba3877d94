/**
 * A group's lag on one partition: the records it has still to read, from its committed offset up to
 * the high watermark. A commit below the log start reads from the log start (the records below it were
 * deleted, by retention or DeleteRecords, and will never be read); never below 0. Shared by the
 * broker's lag gauges and the Admin client's describeGroup, so both count the same.
 */
export function consumerLag(committed: number, logStartOffset: number, highWatermark: number): number {
  return Math.max(0, highWatermark - Math.max(committed, logStartOffset));
}
