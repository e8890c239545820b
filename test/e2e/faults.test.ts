import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { startKafkaInstance } from '../helpers/kafka-instance';
import { RedisInstance, startRedisInstance } from '../helpers/redis-instance';
import { freePort, scrapeCounter } from '../helpers/kade-process';
import { Alert } from '../../src/alerts/alert';
import { AlertCodec } from '../../src/alerts/codec';
import { KadeConfig } from '../../src/config/load';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { routeRecords } from '../../src/ingest/route';
import { sendChunked } from '../../src/ingest/send-chunked';
import { ensureTopics } from '../../src/ingest/topics';
import { loadRules } from '../../src/rules/load-rules';
import { KeyBuilder } from '../../src/state/keys';
import { groupId, groupKafkaKey } from '../../src/detect/group-id';
import { keyPartition } from '../../src/ingest/partitioner';
import { GeneratedEvent, generateAuditStream } from '../helpers/audit-generator';
import { alertKey, canonicalKade, canonicalOracle, diffAlerts } from '../helpers/compare-alerts';
import { oracleAlerts } from '../helpers/esql-oracle';
import { deleteTopics, isolatedConfig, readTopic, testKafka, uniqueName, waitFor } from '../helpers/kafka';
import { spawnKade } from '../helpers/kade-process';
import { deleteByPrefix } from '../helpers/redis';

const EVENTS = Number(process.env.KADE_FAULT_EVENTS ?? 40_000);
const W = 360_000;
const P = 60_000;

interface Prepared {
  config: KadeConfig;
  events: GeneratedEvent[];
  raw: Array<{ key: string; value: string; headers: Record<string, string> }>;
  maxTime: number;
}

async function prepare(tag: string, seed: number, brokers?: string[], redisUrl?: string): Promise<Prepared> {
  const config = isolatedConfig(tag, {
    'detector.latenessMs': 600_000, 'detector.idleTimeoutMs': 4000, 'topics.rawPartitions': 3, 'topics.keyedPartitions': 4,
    ...(brokers === undefined ? {} : { 'kafka.brokers': brokers }),
    ...(redisUrl === undefined ? {} : { 'redis.url': redisUrl }),
  });
  const kafka = kafkaOf(config);
  await ensureTopics(kafka, config);
  const events = [...generateAuditStream({ seed, events: EVENTS, attacks: 20 })];
  let maxTime = 0;
  const raw = events.map((ev) => {
    const e = ev.event as { user?: { username?: string }; sourceIPs?: string[]; requestReceivedTimestamp: string };
    maxTime = Math.max(maxTime, Date.parse(e.requestReceivedTimestamp));
    return { key: `${e.user?.username ?? ''}|${e.sourceIPs?.[0] ?? ''}`, value: JSON.stringify(ev.event), headers: { 'kade.namespace': ev.cluster } };
  });
  const producer = kafka.producer();
  await producer.connect();
  await sendChunked(producer, [{ topic: config.topics.raw, messages: raw }], { acks: -1 });
  await producer.disconnect();
  return { config, events, raw, maxTime };
}

function kafkaOf(config: KadeConfig): Kafka {
  return new Kafka({ clientId: 'kade-test', brokers: config.kafka.brokers, logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

async function groupCaughtUp(config: KadeConfig, groupId: string, topic: string): Promise<boolean> {
  const admin = kafkaOf(config).admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return ends.every((e) => {
      const c = committed.partitions.find((p) => p.partition === e.partition);
      return Number(e.high) === 0 || (c !== undefined && Number(c.offset) >= Number(e.high) - 1);
    });
  } finally {
    await admin.disconnect();
  }
}

async function windowsClosed(redis: Redis, config: KadeConfig, maxTime: number): Promise<boolean> {
  const keys = new KeyBuilder(config.redis.keyPrefix, 'epe2');
  const lastEnd = Math.floor(maxTime / P) * P + W;
  for (let p = 0; p < config.topics.keyedPartitions; p++) {
    const c = await redis.hgetall(keys.checkpoint(p));
    if (c.lastClosed === undefined || c.lastClosed === '' || Number(c.lastClosed) < lastEnd) return false;
  }
  return true;
}

/** Waits until the collector has read every record on the alerts topic (no fixed sleep). */
async function everyAlertRead(config: KadeConfig, alerts: Alert[]): Promise<void> {
  const admin = kafkaOf(config).admin();
  await admin.connect();
  try {
    // The alert sink is idempotent, not transactional: offsets count records.
    const total = (await admin.fetchTopicOffsets(config.topics.alerts)).reduce((n, o) => n + Number(o.high), 0);
    await waitFor(`the collector to read all ${total} alert records`, async () => alerts.length >= total, 60_000, 100);
  } finally {
    await admin.disconnect();
  }
}

async function collectAlerts(config: KadeConfig): Promise<{ alerts: Alert[]; stop: () => Promise<void> }> {
  const alerts: Alert[] = [];
  const codec = new AlertCodec();
  const reader = kafkaOf(config).consumer({ groupId: uniqueName('alerts') });
  await reader.connect();
  await reader.subscribe({ topic: config.topics.alerts, fromBeginning: true });
  await reader.run({ eachMessage: async ({ message }) => { alerts.push(codec.decode(message.value as Buffer, undefined).alert as Alert); } });
  return { alerts, stop: () => reader.disconnect() };
}

/**
 * The alerts equal the oracle's. `resends` allows that many records to repeat an id already
 * delivered (the same alert re-sent: an idempotent upsert downstream), for double faults where a
 * detector dies between publishing and committing and Redis loses the mark too.
 */
function assertLikeOracle(alerts: Alert[], events: GeneratedEvent[], suppressMs: number, resends = 0): void {
  const ids = alerts.map((a) => a.id);
  const unique = [...new Map(alerts.map((a) => [a.id, a])).values()];
  assert.ok(ids.length - unique.length <= resends,
    `each alert id delivered exactly once${resends > 0 ? ` (up to ${resends} re-sent)` : ''} (${ids.length} records, ${unique.length} ids)`);
  const oracle = oracleAlerts(events, { windowMs: W, hopMs: P, suppressMs });
  assert.ok(oracle.alerts.length >= 10, `the stream holds attacks (${oracle.alerts.length})`);
  const diff = diffAlerts(unique.map(canonicalKade), oracle.alerts.map(canonicalOracle), 20);
  assert.deepEqual(diff, [], diff.join('\n'));
}

/** Waits (on a fresh connection to a private Redis) for every window to close, then checks the alerts. */
async function closedLikeOracle(redisUrl: string, config: KadeConfig, maxTime: number, alerts: Alert[], events: GeneratedEvent[], resends = 0): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    await waitFor('every window to close', () => windowsClosed(redis, config, maxTime), 400_000, 500);
  } finally {
    await redis.quit();
  }
  await everyAlertRead(config, alerts);
  try {
    assertLikeOracle(alerts, events, config.alerts.suppressionMs, resends);
  } catch (err) {
    (err as Error).message += `\n${await paneDiagnostics(redisUrl, config, alerts, events)}`;
    throw err;
  }
}

/**
 * For an alert the oracle has and kade has not: the header (count, last applied offset) of each
 * of its window's pane records, and its partition's checkpoint, so a rare failure can be read.
 */
async function paneDiagnostics(redisUrl: string, config: KadeConfig, alerts: Alert[], events: GeneratedEvent[]): Promise<string> {
  const redis = new Redis(redisUrl);
  const keys = new KeyBuilder(config.redis.keyPrefix, 'epe2');
  const have = new Set(alerts.map((a) => alertKey(canonicalKade(a))));
  const out: string[] = ['pane diagnostics:'];
  try {
    for (const o of oracleAlerts(events, { windowMs: W, hopMs: P, suppressMs: config.alerts.suppressionMs }).alerts) {
      if (have.has(alertKey(canonicalOracle(o)))) continue;
      const kafkaKey = groupKafkaKey([o.username, o.sourceIp]);
      const partition = keyPartition(kafkaKey, config.topics.keyedPartitions);
      const gid = groupId(kafkaKey);
      const panes: string[] = [];
      for (let q = o.windowEnd - W; q < o.windowEnd; q += P) {
        const rec = await redis.hgetBuffer(keys.paneHash(partition, q), gid);
        if (rec !== null) panes.push(`${q}: ${rec.subarray(0, Math.max(0, rec.indexOf(10))).toString()}`);
      }
      out.push(`${kafkaKey} ${o.windowEnd} partition ${partition}: panes [${panes.join('; ')}] checkpoint ${JSON.stringify(await redis.hgetall(keys.checkpoint(partition)))}`);
      if (out.length > 5) break;
    }
  } catch (e) {
    out.push(`(failed: ${(e as Error).message})`);
  } finally {
    redis.disconnect();
  }
  return out.join('\n');
}

interface PrivateRedisRun {
  store: RedisInstance;
  config: KadeConfig;
  events: GeneratedEvent[];
  maxTime: number;
  /** A free port for the detector's HTTP probes and metrics. */
  port: number;
  collector: { alerts: Alert[] };
}

/**
 * A run against a private Redis that the test may stop, kill or restart: the stream loaded, an
 * alert collector and a router running; the body starts and stops its detector(s).
 */
async function withPrivateRedis(tag: string, seed: number, opts: { appendOnly?: boolean }, body: (run: PrivateRedisRun) => Promise<void>): Promise<void> {
  const store = await startRedisInstance(opts);
  try {
    const { config, events, maxTime } = await prepare(tag, seed, undefined, store.url);
    const port = await freePort();
    const collector = await collectAlerts(config);
    const router = spawnKade(['run', '--role', 'router'], config, `${tag}-router`);
    try {
      await body({ store, config, events, maxTime, port, collector });
    } finally {
      await collector.stop().catch(() => undefined);
      await router.stop();
    }
  } finally {
    await store.stop();
  }
}

describe('fault injection (separate processes, real broker and Redis)', function () {
  this.timeout(600_000);

  it('a router killed with SIGKILL mid-stream and restarted leaves no duplicate and no gap', async () => {
    const { config, events, raw, maxTime } = await prepare('fault-router', 21);
    const redis = new Redis(config.redis.url);
    const kafka = testKafka();
    // What a clean router writes, computed in-process from the same records.
    const expected = routeRecords(raw.map((r, i) => ({
      topic: config.topics.raw, partition: 0, offset: String(i), key: Buffer.from(r.key), value: Buffer.from(r.value),
      headers: r.headers, timestamp: '0',
    })), { plans: loadRules(''), codec: new KeyedCodec(), timeField: 'requestReceivedTimestamp', namespaceHeader: 'kade.namespace', defaultNamespace: 'default', maxMessageBytes: 1 << 20 });
    const collector = await collectAlerts(config);
    let router = spawnKade(['run', '--role', 'router'], config, 'fault-router-1');
    const detector = spawnKade(['run', '--role', 'detector'], config, 'fault-router-det');
    try {
      await waitFor('the router to be mid-stream', async () => {
        const admin = kafka.admin();
        await admin.connect();
        const ends = await admin.fetchTopicOffsets(config.topics.keyed);
        await admin.disconnect();
        return ends.reduce((s, e) => s + Number(e.high), 0) > expected.keyed.length / 4;
      }, 120_000, 50);
      router.child.kill('SIGKILL');
      assert.equal(await router.exited, null, 'killed by a signal');
      router = spawnKade(['run', '--role', 'router'], config, 'fault-router-2');
      await waitFor('the router to finish', () => groupCaughtUp(config, config.router.groupId, config.topics.raw), 240_000, 500);
      const keyed = await readTopic(kafka, config.topics.keyed, expected.keyed.length, 60_000);
      const bag = (items: Array<{ key: unknown; value: unknown }>): string[] => items.map((m) => `${String(m.key)} ${Buffer.from(m.value as Buffer).toString('base64')}`).sort();
      const actual = bag(keyed.map((m) => ({ key: m.key?.toString(), value: m.value })));
      const want = bag(expected.keyed.map((m) => ({ key: m.key, value: m.value })));
      assert.equal(actual.length, want.length, 'as many keyed records as a clean run (read_committed)');
      assert.deepEqual(actual, want, 'the same keyed records: no duplicate, no gap');
      await waitFor('every window to close', () => windowsClosed(redis, config, maxTime), 240_000, 500);
      await everyAlertRead(config, collector.alerts);
      assertLikeOracle(collector.alerts, events, config.alerts.suppressionMs);
    } finally {
      await collector.stop();
      await router.stop();
      await detector.stop();
      await deleteTopics(kafka, config);
      await deleteByPrefix(redis, config.redis.keyPrefix);
      await redis.quit();
    }
  });

  it('a detector killed with SIGKILL while another runs: the group rebalances, same alerts, each once', async () => {
    const { config, events, maxTime } = await prepare('fault-det', 23);
    const redis = new Redis(config.redis.url);
    const kafka = testKafka();
    const collector = await collectAlerts(config);
    const router = spawnKade(['run', '--role', 'router'], config, 'fault-det-router');
    const survivor = spawnKade(['run', '--role', 'detector'], config, 'fault-det-1');
    const victim = spawnKade(['run', '--role', 'detector'], config, 'fault-det-2');
    try {
      await waitFor('alerts to flow', async () => collector.alerts.length >= 3, 240_000, 50);
      victim.child.kill('SIGKILL');
      assert.equal(await victim.exited, null, 'killed by a signal');
      await waitFor('every window to close', () => windowsClosed(redis, config, maxTime), 300_000, 500);
      await everyAlertRead(config, collector.alerts);
      assertLikeOracle(collector.alerts, events, config.alerts.suppressionMs);
    } finally {
      await collector.stop();
      await router.stop();
      await survivor.stop();
      await deleteTopics(kafka, config);
      await deleteByPrefix(redis, config.redis.keyPrefix);
      await redis.quit();
    }
  });

  it('a Kafka broker restarted mid-stream: same alerts, each once', async () => {
    const broker = await startKafkaInstance();
    try {
      const { config, events, maxTime } = await prepare('fault-broker', 25, broker.brokers);
      const redis = new Redis(config.redis.url);
      const collector = await collectAlerts(config);
      const router = spawnKade(['run', '--role', 'router'], config, 'fault-broker-router');
      const detector = spawnKade(['run', '--role', 'detector'], config, 'fault-broker-det');
      try {
        await waitFor('alerts to flow', async () => collector.alerts.length >= 3, 240_000, 50);
        await broker.restart();
        await waitFor('every window to close', () => windowsClosed(redis, config, maxTime), 400_000, 500);
        await everyAlertRead(config, collector.alerts);
        assertLikeOracle(collector.alerts, events, config.alerts.suppressionMs);
        assert.equal(router.child.exitCode, null, 'the router survived the broker restart');
        assert.equal(detector.child.exitCode, null, 'the detector survived the broker restart');
      } finally {
        await collector.stop().catch(() => undefined);
        await router.stop();
        await detector.stop();
        await deleteByPrefix(redis, config.redis.keyPrefix);
        await redis.quit();
      }
    } finally {
      await broker.stop();
    }
  });

  it('Redis unreachable mid-stream: not ready, nothing committed past it, recovery without a restart', async () => {
    // Redis with persistence: this is an outage, not a loss of state.
    await withPrivateRedis('fault-redis-down', 27, { appendOnly: true }, async ({ store, config, events, maxTime, port, collector }) => {
      const redis = new Redis(store.url);
      const detector = spawnKade(['run', '--role', 'detector'], config, 'fault-redis-det', { KADE_HTTP_PORT: String(port) });
      const ready = async (): Promise<number> => (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => null))?.status ?? 0;
      try {
        await waitFor('alerts to flow', async () => collector.alerts.length >= 3, 240_000, 50);
        redis.disconnect();
        // A graceful stop: an outage with the data kept. (Redis losing state is the next tests.)
        await store.shutdown();
        await waitFor('the detector to report not ready', async () => (await ready()) === 503, 30_000, 200);
        await new Promise((r) => setTimeout(r, 3000));
        assert.equal(detector.child.exitCode, null, 'the detector keeps running while Redis is down');
        await store.restart();
        await waitFor('the detector to be ready again', async () => (await ready()) === 200, 60_000, 200);
        await closedLikeOracle(store.url, config, maxTime, collector.alerts, events);
      } finally {
        await detector.stop();
      }
    });
  });

  it('Redis restarted empty under a running detector: rebuilt by replay, same alerts, each once', async () => {
    // No persistence: a restart loses everything, as a cache-configured Redis or a bad failover would.
    await withPrivateRedis('fault-redis-empty', 29, {}, async ({ store, config, events, maxTime, port, collector }) => {
      const detector = spawnKade(['run', '--role', 'detector'], config, 'fault-empty-det', { KADE_HTTP_PORT: String(port) });
      try {
        await waitFor('alerts to flow', async () => collector.alerts.length >= 3, 240_000, 50);
        await store.kill();
        await store.restart();
        await waitFor('a rebuild', async () => (await scrapeCounter(port, 'kade_state_rebuilds_total').catch(() => 0)) > 0, 60_000, 200);
        await closedLikeOracle(store.url, config, maxTime, collector.alerts, events);
        assert.ok(await scrapeCounter(port, 'kade_events_total', { outcome: 'replayed' }) > 0, 'records were replayed');
        assert.equal(detector.child.exitCode, null, 'the detector survived');
      } finally {
        await detector.stop();
      }
    });
  });

  it('Redis restarted empty while the detector was down: the next one rebuilds from the committed checkpoint', async () => {
    await withPrivateRedis('fault-redis-owner', 31, {}, async ({ store, config, events, maxTime, port, collector }) => {
      const first = spawnKade(['run', '--role', 'detector'], config, 'fault-owner-det-1');
      let second: ReturnType<typeof spawnKade> | null = null;
      try {
        await waitFor('alerts to flow', async () => collector.alerts.length >= 3, 240_000, 50);
        first.child.kill('SIGKILL');
        assert.equal(await first.exited, null, 'killed by a signal');
        await store.kill();
        await store.restart();
        second = spawnKade(['run', '--role', 'detector'], config, 'fault-owner-det-2', { KADE_HTTP_PORT: String(port) });
        await waitFor('a rebuild', async () => (await scrapeCounter(port, 'kade_state_rebuilds_total', { cause: 'lost-before-assignment' }).catch(() => 0)) > 0, 120_000, 200);
        // A double fault: the detector may die between publishing an alert and committing, and Redis
        // loses the mark too, so the next owner re-sends that alert (same id). At most a handful.
        await closedLikeOracle(store.url, config, maxTime, collector.alerts, events, 5);
      } finally {
        await first.stop();
        await second?.stop();
      }
    });
  });
});
