import { ICustomPartitioner, PartitionerArgs } from 'kafkajs';

/**
 * Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) on 32-bit integers. kafkajs'
 * DefaultPartitioner computes the same hash with a 64-bit Long class, allocating several objects
 * per byte group; Math.imul keeps it in int32 registers and gives the same bits.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[length4 + 2] << 16;
    if (rest >= 2) h ^= data[length4 + 1] << 8;
    h ^= data[length4];
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}

/** The partition the Java client (and kafkajs' DefaultPartitioner) picks for a key. */
export function keyPartition(key: Buffer | string, numPartitions: number): number {
  const bytes = typeof key === 'string' ? Buffer.from(key) : key;
  return (murmur2(bytes) & 0x7fffffff) % numPartitions;
}

/**
 * A drop-in for kafkajs' DefaultPartitioner: an explicit partition wins, a key is hashed with
 * murmur2 over the topic's current partition count (kafkajs refreshes the metadata, so a topic that
 * grew is seen), and a record without key goes round-robin over the partitions that have a leader.
 * Same partitions as the Java client, several times cheaper per record.
 */
export const FastDefaultPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const numPartitions = partitionMetadata.length;
    if (message.key !== null && message.key !== undefined) return keyPartition(message.key, numPartitions);
    const n = ((counters.get(topic) ?? Math.floor(Math.random() * 0x7fffffff)) + 1) & 0x7fffffff;
    counters.set(topic, n);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    return available.length > 0 ? available[n % available.length].partitionId : n % numPartitions;
  };
};
