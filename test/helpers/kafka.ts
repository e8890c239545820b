import { randomBytes } from 'node:crypto';
import { Kafka, KafkaMessage, Producer, logLevel } from 'kafkajs';
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

/**
 * Interleaved transactions of two producers on partition 0, aborted in the reverse of the order
 * they began (what a dead router's open transactions look like once the new owner fences them):
 *   0 A1  1 B1  2 A2  3 B2  4 abort(B)  5 abort(A)  6 C1  7 commit(C)
 * The broker lists B's aborted transaction before A's. kafkajs 2.2.4's own filter hands a reader
 * from offset 0 A1, and a reader from offset 2 A2. Records have key 'k'.
 */
export async function writeInterleavedAborts(kafka: Kafka, topic: string): Promise<void> {
  const producers: Producer[] = [];
  const txProducer = async (id: string): Promise<Producer> => {
    const p = kafka.producer({ transactionalId: `${topic}-${id}`, idempotent: true, maxInFlightRequests: 1 });
    await p.connect();
    producers.push(p);
    return p;
  };
  try {
    const a = await (await txProducer('a')).transaction();
    const b = await (await txProducer('b')).transaction();
    const send = (tx: typeof a, value: string) => tx.send({ topic, messages: [{ key: 'k', value, partition: 0 }] });
    await send(a, 'A1');
    await send(b, 'B1');
    await send(a, 'A2');
    await send(b, 'B2');
    await b.abort();
    await a.abort();
    const c = await (await txProducer('c')).transaction();
    await send(c, 'C1');
    await c.commit();
  } finally {
    await Promise.all(producers.map((p) => p.disconnect()));
  }
}
