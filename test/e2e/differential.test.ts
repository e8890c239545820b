import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { Alert } from '../../src/alerts/alert';
import { AlertCodec } from '../../src/alerts/codec';
import { ensureTopics } from '../../src/ingest/topics';
import { sendChunked } from '../../src/ingest/send-chunked';
import { KeyBuilder } from '../../src/state/keys';
import { GeneratedEvent, generateAuditStream, planAttacks } from '../helpers/audit-generator';
import { canonicalKade, canonicalOracle, diffAlerts } from '../helpers/compare-alerts';
import { oracleAlerts } from '../helpers/esql-oracle';
import { deleteTopics, isolatedConfig, testKafka, uniqueName, waitFor } from '../helpers/kafka';
import { freePort, scrapeCounter, spawnKade } from '../helpers/kade-process';
import { deleteByPrefix } from '../helpers/redis';

const EVENTS = Number(process.env.KADE_E2E_EVENTS ?? 200_000);
const ATTACKS = 60;
const W = 360_000;
const P = 60_000;

/** Data records (not transaction markers) on a topic, read_committed. */
async function countKeyed(kafka: ReturnType<typeof testKafka>, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  let n = 0;
  const done = new Set<number>();
  const consumer = kafka.consumer({ groupId: uniqueName('count'), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      n += batch.messages.length;
      if (Number(batch.lastOffset()) >= Number(batch.highWatermark) - 1) done.add(batch.partition);
    },
  });
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    if (Number(e.payload.lastOffset) >= Number(e.payload.highWatermark) - 1) done.add(e.payload.partition);
  });
  await waitFor('the keyed topic read to its end', async () => ends.every((e) => Number(e.high) === 0 || done.has(e.partition)), 60_000);
  await consumer.disconnect();
  return n;
}

describe('end to end: kade over Kafka equals a plain re-computation of the query', function () {
  this.timeout(600_000);

  it(`alerts exactly as the ES|QL oracle on ${EVENTS} generated multi-cluster events`, async () => {
    // Raw partitions are consumed in parallel, so keyed partitions see events up to one fetch
    // span out of order: the lateness must cover it for the comparison to be exact.
    const config = isolatedConfig('e2e', { 'detector.latenessMs': 600_000, 'detector.idleTimeoutMs': 5000, 'topics.rawPartitions': 3, 'topics.keyedPartitions': 4 });
    const kafka = testKafka();
    const redis = new Redis(config.redis.url);
    await ensureTopics(kafka, config);
    const attacks = planAttacks({ seed: 1, events: EVENTS, attacks: ATTACKS });
    if (EVENTS >= 200_000) assert.ok(attacks.length >= 50, `at least 50 attacks, got ${attacks.length}`);
    const events: GeneratedEvent[] = [];
    let maxTime = 0;
    const producer = kafka.producer();
    await producer.connect();
    let batch = [];
    for (const ev of generateAuditStream({ seed: 1, events: EVENTS, attacks: ATTACKS })) {
      events.push(ev);
      const e = ev.event as { user?: { username?: string }; sourceIPs?: string[]; requestReceivedTimestamp: string };
      maxTime = Math.max(maxTime, Date.parse(e.requestReceivedTimestamp));
      batch.push({ key: `${e.user?.username ?? ''}|${e.sourceIPs?.[0] ?? ''}`, value: JSON.stringify(ev.event), headers: { 'kade.namespace': ev.cluster } });
      if (batch.length === 5000) {
        await sendChunked(producer, [{ topic: config.topics.raw, messages: batch }], { acks: -1 });
        batch = [];
      }
    }
    await sendChunked(producer, [{ topic: config.topics.raw, messages: batch }], { acks: -1 });
    await producer.disconnect();
    const oracle = oracleAlerts(events, { windowMs: W, hopMs: P, suppressMs: config.alerts.suppressionMs });
    assert.ok(oracle.alerts.length >= 20, `the stream should produce many alerts, oracle found ${oracle.alerts.length}`);

    const started = Date.now();
    const routerPort = await freePort();
    const detectorPort = await freePort();
    const router = spawnKade(['run', '--role', 'router'], config, 'e2e-router', { KADE_HTTP_PORT: String(routerPort) });
    const detector = spawnKade(['run', '--role', 'detector'], config, 'e2e-detector', { KADE_HTTP_PORT: String(detectorPort) });
    const received: Alert[] = [];
    const codec = new AlertCodec();
    const reader = kafka.consumer({ groupId: uniqueName('alerts') });
    await reader.connect();
    await reader.subscribe({ topic: config.topics.alerts, fromBeginning: true });
    await reader.run({ eachMessage: async ({ message }) => { received.push(codec.decode(message.value as Buffer, undefined).alert as Alert); } });
    const keys = new KeyBuilder(config.redis.keyPrefix, 'epe2');
    const lastEnd = Math.floor(maxTime / P) * P + W;
    try {
      await waitFor('every window to close', async () => {
        if (router.child.exitCode !== null || detector.child.exitCode !== null) throw new Error(`kade exited early; logs in ${router.logFile} ${detector.logFile}`);
        for (let p = 0; p < config.topics.keyedPartitions; p++) {
          const c = await redis.hgetall(keys.checkpoint(p));
          if (c.streamTime === undefined || c.streamTime === '') return false;
          if (c.lastClosed === undefined || c.lastClosed === '' || Number(c.lastClosed) < lastEnd) return false;
        }
        return true;
      }, 480_000, 500);
      const admin = kafka.admin();
      await admin.connect();
      const end = await admin.fetchTopicOffsets(config.topics.alerts);
      await admin.disconnect();
      const total = end.reduce((s, e) => s + Number(e.high), 0);
      await waitFor(`${total} alerts read`, async () => received.length >= total, 30_000);
      // Accounting: every produced event ends as exactly one outcome, and every keyed record too.
      const outcome = (port: number, o: string): Promise<number> => scrapeCounter(port, 'kade_events_total', { outcome: o });
      const [routed, filtered, dead] = await Promise.all(['routed', 'filtered', 'dead_lettered'].map((o) => outcome(routerPort, o)));
      assert.equal(routed + filtered + dead, EVENTS, `router outcomes ${routed} + ${filtered} + ${dead} = events produced`);
      const keyedTotal = (await (async () => {
        const a = kafka.admin();
        await a.connect();
        try {
          return (await a.fetchTopicOffsets(config.topics.keyed)).reduce((s, e) => s + Number(e.high), 0);
        } finally {
          await a.disconnect();
        }
      })());
      const [applied, late] = await Promise.all(['applied', 'late'].map((o) => outcome(detectorPort, o)));
      assert.equal(late, 0, 'no late event');
      // the keyed topic also holds one commit marker per transaction and partition
      assert.ok(applied > 0 && applied <= keyedTotal, `detector applied ${applied} of ${keyedTotal} keyed offsets`);
      assert.equal(applied, await countKeyed(kafka, config.topics.keyed), 'every keyed record applied exactly once');
      const seconds = (Date.now() - started) / 1000;
      process.stdout.write(`      ${EVENTS} events through router and detector in ${seconds.toFixed(1)} s; ${received.length} alerts, oracle ${oracle.alerts.length} (${oracle.suppressed} suppressed)\n`);
    } finally {
      await reader.disconnect();
      assert.equal(await router.stop(), 0, `router exits 0 on SIGTERM (log ${router.logFile})`);
      assert.equal(await detector.stop(), 0, `detector exits 0 on SIGTERM (log ${detector.logFile})`);
    }
    const ids = received.map((a) => a.id);
    assert.equal(new Set(ids).size, ids.length, 'each alert id delivered once');
    const diff = diffAlerts(received.map(canonicalKade), oracle.alerts.map(canonicalOracle), 20);
    assert.deepEqual(diff, [], diff.join('\n'));
    await deleteTopics(kafka, config);
    await deleteByPrefix(redis, config.redis.keyPrefix);
    await redis.quit();
  });
});
