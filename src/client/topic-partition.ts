/** One partition of one topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/**
 * A partition a group gave this consumer: `epoch` is the group generation at which it became this
 * member's (its commits carry it, so the partition leader can refuse them once it moved on). 0 outside
 * a group (static `partitions`/`member`, or no group).
 */
export interface AssignedPartition extends TopicPartition {
  epoch: number;
}

/** "topic/partition": unambiguous, since topic names cannot contain "/". */
export function partitionKey(tp: TopicPartition): string {
  return `${tp.topic}/${tp.partition}`;
}

/** Topic, then partition order. */
export function comparePartitions(a: TopicPartition, b: TopicPartition): number {
  if (a.topic !== b.topic) return a.topic < b.topic ? -1 : 1;
  return a.partition - b.partition;
}

/** `list` sorted (topic, partition), as plain {topic, partition} objects. */
export function sortedPartitions(list: Iterable<TopicPartition>): TopicPartition[] {
  return [...list].map((tp) => ({ topic: tp.topic, partition: tp.partition })).sort(comparePartitions);
}
