/**
 * The etcd keyspace (a contract; docs/architecture.md): everything lives under one prefix, `/goulette` by default.
 *
 *   <prefix>/operations/<id, 20 digits>   one operation (JSON)
 *   <prefix>/increment/operation          id of the newest operation
 *   <prefix>/topics/<topic>               the topic's TopicReplicaInfo (JSON)
 *   <prefix>/brokers/<broker_id>          heartbeat: id, address, status (bound to a lease)
 *   <prefix>/election/leader/<lease>      the leader candidates: {"id","url"} JSON (a bare URL from older sentinels) (etcd3 Election)
 *   <prefix>/snapshot/meta                the newest snapshot: id, chunk count, sha256
 *   <prefix>/snapshot/chunks/<id>/<n>     the snapshot's chunks
 *   <prefix>/groups/<group>/members/<id>  a consumer-group member (bound to its session lease)
 *   <prefix>/groups/<group>/state         the group's generation, targets and owners (leader-written)
 */
export interface Keyspace {
  readonly prefix: string;
  readonly operationsPrefix: string;
  operation(id: number): string;
  /** Parses the id out of an operation key; undefined for anything else. */
  operationId(key: string): number | undefined;
  readonly head: string;
  readonly topicsPrefix: string;
  topic(topic: string): string;
  readonly brokersPrefix: string;
  broker(brokerId: string): string;
  /** The namespace handed to etcd3's Election (it appends "election/<name>/"). */
  readonly electionNamespace: string;
  readonly electionName: string;
  readonly electionPrefix: string;
  readonly snapshotMeta: string;
  snapshotChunksPrefix(snapshotId: number): string;
  snapshotChunk(snapshotId: number, index: number): string;
  readonly snapshotChunksRoot: string;
  readonly groupsPrefix: string;
  groupMember(group: string, memberId: string): string;
  groupMembersPrefix(group: string): string;
  groupState(group: string): string;
}

export const OPERATION_ID_DIGITS = 20;

export function createKeyspace(prefix = "/goulette"): Keyspace {
  const root = prefix.replace(/\/+$/, "");
  const operationsPrefix = `${root}/operations/`;
  return {
    prefix: root,
    operationsPrefix,
    operation: (id) => operationsPrefix + String(id).padStart(OPERATION_ID_DIGITS, "0"),
    operationId(key) {
      if (!key.startsWith(operationsPrefix)) return undefined;
      const digits = key.slice(operationsPrefix.length);
      return /^\d+$/.test(digits) ? Number(digits) : undefined;
    },
    head: `${root}/increment/operation`,
    topicsPrefix: `${root}/topics/`,
    topic: (topic) => `${root}/topics/${topic}`,
    brokersPrefix: `${root}/brokers/`,
    broker: (brokerId) => `${root}/brokers/${brokerId}`,
    electionNamespace: `${root}/`,
    electionName: "leader",
    electionPrefix: `${root}/election/leader/`,
    snapshotMeta: `${root}/snapshot/meta`,
    snapshotChunksRoot: `${root}/snapshot/chunks/`,
    groupsPrefix: `${root}/groups/`,
    groupMember: (group, memberId) => `${root}/groups/${group}/members/${memberId}`,
    groupMembersPrefix: (group) => `${root}/groups/${group}/members/`,
    groupState: (group) => `${root}/groups/${group}/state`,
    snapshotChunksPrefix: (id) => `${root}/snapshot/chunks/${String(id).padStart(OPERATION_ID_DIGITS, "0")}/`,
    snapshotChunk: (id, index) =>
      `${root}/snapshot/chunks/${String(id).padStart(OPERATION_ID_DIGITS, "0")}/${String(index).padStart(6, "0")}`,
  };
}
