import { randomBytes } from 'node:crypto';
import { Kafka, KafkaMessage, logLevel } from 'kafkajs';
import { KadeConfig, loadConfig } from '../../src/config/load';

export const BROKERS = (process.env.KADE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export function testKafka(clientId = 'kade-test'): Kafka {
  return new Kafka({ clientId, brokers: BROKERS, logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

export function uniqueName(tag: string): string {
  return `kadetest-${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A config whose topics, groups and Redis prefix are unique to one test. */
export function isolatedConfig(tag: string, over: Record<string, unknown> = {}): KadeConfig {
  const n = uniqueName(tag);
  return loadConfig({
    env: {},
    overrides: {
      'kafka.brokers': BROKERS,
      'topics.raw': `${n}.raw`,
      'topics.keyed': `${n}.keyed`,
      'topics.alerts': `${n}.alerts`,
      'router.groupId': `${n}-router`,
      'detector.groupId': `${n}-detector`,
      'redis.keyPrefix': n,
      'redis.url': process.env.KADE_REDIS_URL ?? 'redis://127.0.0.1:6379',
      'log.level': process.env.KADE_TEST_LOG_LEVEL ?? 'silent',
      ...over,
    },
  }).config;
}

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Reads a topic from the beginning until `count` messages arrived (or times out). */
export async function readTopic(kafka: Kafka, topic: string, count: number, timeoutMs = 60_000): Promise<Array<KafkaMessage & { partition: number }>> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), readUncommitted: false });
  const out: Array<KafkaMessage & { partition: number }> = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachMessage: async ({ partition, message }) => { out.push({ ...message, partition }); } });
    await waitFor(`${count} messages on ${topic} (have ${out.length})`, async () => out.length >= count, timeoutMs);
  } finally {
    await consumer.disconnect();
  }
  return out;
}

export async function deleteTopics(kafka: Kafka, config: KadeConfig): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const mine = [config.topics.raw, `${config.topics.raw}.dlq`, config.topics.keyed, config.topics.alerts].filter((t) => existing.has(t));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
  } finally {
    await admin.disconnect();
  }
}
