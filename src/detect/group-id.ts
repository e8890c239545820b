import { createHash } from 'node:crypto';
import { GroupKey } from './compiled-plan';

/** The Kafka key of a group on the keyed topic (readable, deterministic, null-safe). */
export function groupKafkaKey(key: GroupKey): string {
  return JSON.stringify(key);
}

/** Short stable id of a group inside Redis keys (96 bits of SHA-1 of its Kafka key). */
export function groupId(kafkaKey: string): string {
  return createHash('sha1').update(kafkaKey).digest('base64url').slice(0, 16);
}
