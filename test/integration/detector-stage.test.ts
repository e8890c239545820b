import assert from 'node:assert/strict';
import { Kafka } from 'kafkajs';
import Redis from 'ioredis';
import { dlqTopic } from '../../src/config/load';
import { DetectorStage } from '../../src/detect/detector-stage';
import { groupKafkaKey } from '../../src/detect/group-id';
import { emptyAuditRecord } from '../../src/ingest/audit-record';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { ensureTopics } from '../../src/ingest/topics';
import { createRedis } from '../../src/main';
import { createLogger } from '../../src/ops/logger';
import { Metrics } from '../../src/ops/metrics';
import { loadRules } from '../../src/rules/load-rules';
import { startRedisInstance } from '../helpers/redis-instance';
import { deleteTopics, isolatedConfig, readTopic, testKafka, uniqueName, waitFor } from '../helpers/kafka';

/** The group's committed offset and the end offset of one partition. */
async function positions(kafka: Kafka, groupId: string, topic: string, partition: number): Promise<{ committed: number; end: number }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    return {
      committed: Number(t.partitions.find((p) => p.partition === partition)?.offset ?? -1),
      end: Number(ends.find((p) => p.partition === partition)?.high ?? -1),
    };
  } finally {
    await admin.disconnect();
  }
}

describe('detector stage on a real broker and Redis', function () {
  this.timeout(90_000);

  it('dead-letters a malformed keyed record, and commits past an aborted transaction and its markers', async () => {
    const config = isolatedConfig('detstage', { 'detector.upstreamGroupId': 'none', 'detector.idleTimeoutMs': 500, 'detector.tickMs': 50 });
    const kafka = testKafka();
    await ensureTopics(kafka, config);
    const plans = loadRules('');
    const codec = new KeyedCodec();
    const t0 = Date.now() - 60_000;
    const keyed = (i: number) => {
      const record = emptyAuditRecord('default');
      record.verb = 'get';
      record.requestURI = `/api/v1/pods/p${i}`;
      record.user.username = 'alice';
      const group = ['alice', '10.0.0.1'];
      return { key: groupKafkaKey(group), value: codec.encode({ rule: plans[0].id, group, eventTime: t0 + i, record }), partition: 0 };
    };
    const metrics = new Metrics();
    const log = createLogger('silent');
    const redis = createRedis(config, log);
    const stage = new DetectorStage(kafka, redis, config, plans, log, metrics);
    const started = stage.start();
    const producer = kafka.producer({ transactionalId: uniqueName('tx'), maxInFlightRequests: 1, idempotent: true });
    await producer.connect();
    const garbage = Buffer.from([0x48, 0x01, 0x02, 0xff, 0xfe]);
    const caughtUp = (end: number) => waitFor(`the detector group committed offset ${end} of partition 0`, async () => {
      const q = await positions(kafka, config.detector.groupId, config.topics.keyed, 0);
      return q.committed === end && q.end === end ? q : undefined;
    }, 30_000, 200);
    try {
      // Committed: 4 records and a malformed one, then the commit marker (offsets 0-5).
      let tx = await producer.transaction();
      await tx.send({ topic: config.topics.keyed, messages: [keyed(1), keyed(2), { key: 'bad', value: garbage, partition: 0 }, keyed(3), keyed(4)] });
      await tx.commit();
      const dead = await readTopic(kafka, dlqTopic(config), 1);
      assert.deepEqual(dead[0].value, garbage, 'original bytes');
      assert.equal(dead[0].headers?.['kade.error.reason']?.toString(), 'invalid-avro');
      await caughtUp(6);
      // Aborted, once the detector is past the first: 3 records and the abort marker (6-9) reach
      // it as a batch of filtered records only, which eachBatch never sees.
      tx = await producer.transaction();
      await tx.send({ topic: config.topics.keyed, messages: [keyed(5), keyed(6), keyed(7)] });
      await tx.abort();
      await caughtUp(10);
    } finally {
      await producer.disconnect();
      await stage.close();
      await started.catch(() => undefined);
      redis.disconnect();
      await deleteTopics(kafka, config);
    }
  });

  it('a stall longer than the idle timeout is not idleness: records written during it are not late', async () => {
    // The fault test "Redis unreachable mid-stream" once lost 300-1,100 records per partition as
    // late: a batch hung on Redis, the idle timer's ticks queued behind it, and when it returned
    // they judged the partition caught up against the high watermark of the fetch before the
    // stall, and moved its watermark to the wall clock. Here the records are an hour old, so a
    // wall-clock watermark makes every record after the stall late.
    const store = await startRedisInstance();
    const config = isolatedConfig('detstall', {
      'redis.url': store.url, 'detector.upstreamGroupId': 'none', 'detector.idleTimeoutMs': 2000, 'detector.tickMs': 50,
    });
    const kafka = testKafka();
    await ensureTopics(kafka, config);
    const plans = loadRules('');
    const codec = new KeyedCodec();
    const t0 = Date.now() - 3_600_000;
    const keyed = (i: number, partition: number) => {
      const record = emptyAuditRecord('default');
      record.verb = 'get';
      record.requestURI = `/api/v1/pods/p${i}`;
      record.user.username = `user${partition}`;
      const group = [record.user.username, '10.0.0.1'];
      return { key: groupKafkaKey(group), value: codec.encode({ rule: plans[0].id, group, eventTime: t0 + i * 1000, record }), partition };
    };
    const metrics = new Metrics();
    const log = createLogger('silent');
    const redis = createRedis(config, log);
    const admin = new Redis(store.url);
    const stage = new DetectorStage(kafka, redis, config, plans, log, metrics);
    const started = stage.start();
    const producer = kafka.producer({ transactionalId: uniqueName('tx'), maxInFlightRequests: 1, idempotent: true });
    await producer.connect();
    const send = async (partition: number, from: number, to: number) => {
      const tx = await producer.transaction();
      await tx.send({ topic: config.topics.keyed, messages: Array.from({ length: to - from }, (_, k) => keyed(from + k, partition)) });
      await tx.commit();
    };
    const outcome = async (name: string) => (await metrics.outcomes.get()).values
      .filter((v) => v.labels.stage === 'detector' && v.labels.outcome === name).reduce((s, v) => s + v.value, 0);
    try {
      await waitFor('the detector to join', async () => stage.isReady(), 60_000, 100);
      // Partition 0 is read to its end (10 records and the commit marker) ...
      await send(0, 0, 10);
      await waitFor('partition 0 committed to its end', async () =>
        (await positions(kafka, config.detector.groupId, config.topics.keyed, 0)).committed === 11, 10_000, 20);
      // ... then, well within the idle timeout, Redis stalls for 6 s (3 x the idle timeout) under
      // partition 1's batch, and with it the consumer (no fetch while eachBatch runs) and the
      // timer's ticks, queued behind it. Partition 0 gets more records meanwhile.
      await admin.client('PAUSE', 6000, 'ALL');
      await send(1, 0, 10);
      await new Promise((r) => setTimeout(r, 1000));
      await send(0, 10, 40);
      await waitFor('every record to be processed', async () => (await outcome('applied')) + (await outcome('late')) >= 50, 60_000, 100);
      assert.equal(await outcome('late'), 0, 'no record written during the stall is late');
      const wm = stage.progress().get(plans[0].id)?.get(0)?.watermark ?? null;
      assert.ok(wm !== null && wm < t0 + 60_000, `the watermark follows the records, not the wall clock (${wm === null ? 'none' : new Date(wm).toISOString()})`);
    } finally {
      await producer.disconnect();
      await stage.close();
      await started.catch(() => undefined);
      redis.disconnect();
      admin.disconnect();
      await deleteTopics(kafka, config);
      await store.stop();
    }
  });
});
