import { randomUUID } from 'node:crypto';
import { Kafka } from 'kafkajs';
import { headerString } from '../ingest/dead-letter';
import { Alert } from './alert';
import { AlertCodec } from './codec';

export interface FollowedAlert {
  key: string | null;
  partition: number;
  offset: string;
  alert?: Alert;
  ecs?: Record<string, unknown>;
}

/**
 * Follows the alerts topic with a throw-away consumer group. Returns a stop function; onAlert is
 * called for every alert in topic order per partition.
 */
export async function followAlerts(
  kafka: Kafka,
  topic: string,
  opts: { fromBeginning: boolean; onAlert: (a: FollowedAlert) => void | Promise<void> },
): Promise<{ stop: () => Promise<void>; caughtUp: () => Promise<boolean> }> {
  const codec = new AlertCodec();
  const groupId = `kade-alerts-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: opts.fromBeginning });
  const seen = new Map<number, number>();
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (message.value !== null) {
        const decoded = codec.decode(message.value, headerString(message.headers, 'content-type'));
        await opts.onAlert({ key: message.key?.toString() ?? null, partition, offset: message.offset, alert: decoded.alert, ecs: decoded.ecs });
      }
      seen.set(partition, Number(message.offset) + 1);
    },
  });
  const admin = kafka.admin();
  await admin.connect();
  return {
    /** True when every partition's end offset has been delivered. */
    caughtUp: async () => {
      const ends = await admin.fetchTopicOffsets(topic);
      return ends.every((e) => Number(e.high) === 0 || (seen.get(e.partition) ?? 0) >= Number(e.high));
    },
    stop: async () => {
      await consumer.disconnect();
      try {
        await admin.deleteGroups([groupId]);
      } catch {
        // The group may still be settling; it expires on its own.
      }
      await admin.disconnect();
    },
  };
}
