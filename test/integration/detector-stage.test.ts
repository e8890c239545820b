import assert from 'node:assert/strict';
import { Kafka } from 'kafkajs';
import Redis from 'ioredis';
import { dlqTopic } from '../../src/config/load';
import { CompiledPlan } from '../../src/detect/compiled-plan';
import { DetectorStage } from '../../src/detect/detector-stage';
import { groupId, groupKafkaKey } from '../../src/detect/group-id';
import { emptyAuditRecord } from '../../src/ingest/audit-record';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { ensureTopics } from '../../src/ingest/topics';
import { createRedis } from '../../src/main';
import { createLogger } from '../../src/ops/logger';
import { OFFSETS_CODE, decodeEntries, decodeOffsets } from '../../src/state/pane-delta';
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
  it('two rules whose rebuilds start at different offsets of one partition: each replays all it lost', async () => {
    // A 6-minute and a 2-minute window over the same records: after Redis loses everything, the
    // next owner's rebuilds start at the first record of each rule's oldest live pane, which
    // differ. Both seeks must come down to the earlier one, or the other rule's rebuild starts
    // too late and its older live panes come back short.
    const MIN = 60_000;
    const store = await startRedisInstance();
    const config = isolatedConfig('det2rules', {
      'redis.url': store.url, 'detector.upstreamGroupId': 'none', 'detector.idleTimeoutMs': 600_000, 'detector.tickMs': 100,
    });
    const kafka = testKafka();
    await ensureTopics(kafka, config);
    const seed = loadRules('')[0];
    const plans = [new CompiledPlan({ ...seed.plan }), new CompiledPlan({ ...seed.plan, id: `${seed.plan.id}-short`, stateKey: 'short', window: { sizeMs: 2 * MIN, hopMs: MIN } })];
    const codec = new KeyedCodec();
    const t0 = Math.floor((Date.now() - 3_600_000) / MIN) * MIN;
    const keyed = (plan: CompiledPlan, i: number, user = `user${i % 3}`) => {
      const record = emptyAuditRecord('default');
      record.verb = i % 2 === 0 ? 'get' : 'list';
      record.requestURI = `/api/v1/namespaces/ns${i % 4}/pods/p${i}`;
      record.user.username = user;
      const group = [user, '10.0.0.1'];
      return { key: groupKafkaKey(group), value: codec.encode({ rule: plan.id, group, eventTime: t0 + i * 10_000, record }), partition: 0 };
    };
    const producer = kafka.producer({ transactionalId: uniqueName('tx'), maxInFlightRequests: 1, idempotent: true });
    await producer.connect();
    const send = async (messages: ReturnType<typeof keyed>[]) => {
      const tx = await producer.transaction();
      await tx.send({ topic: config.topics.keyed, messages });
      await tx.commit();
    };
    const admin = new Redis(store.url);
    const log = createLogger('silent');
    const redis = createRedis(config, log);
    const committedToEnd = async () => {
      const q = await positions(kafka, config.detector.groupId, config.topics.keyed, 0);
      return q.committed === q.end && q.end > 0;
    };
    /** Every pane hash of both rules: key -> group id -> count, last offset and the set of entries. */
    const paneState = async (): Promise<Map<string, Map<string, string>>> => {
      const out = new Map<string, Map<string, string>>();
      for (const key of (await admin.keys(`${config.redis.keyPrefix}:*:q:*`)).sort()) {
        const fields = new Map<string, string>();
        for (const [gid, rec] of Object.entries(await admin.hgetallBuffer(key))) {
          const nl = rec.indexOf(10);
          const entries: string[] = [];
          const offsets: string[] = [];
          // The offsets entries follow the batches, which a replay cuts differently: their union counts.
          decodeEntries(rec, nl + 1, (code, value) => (code === OFFSETS_CODE ? offsets.push(value) : entries.push(`${code}=${value}`)));
          if (offsets.length > 0) entries.push(`offsets=${decodeOffsets(offsets).join(',')}`);
          fields.set(gid, `${rec.toString('latin1', 0, nl)} | ${entries.sort().join(' ')}`);
        }
        out.set(key, fields);
      }
      return out;
    };
    const stages: DetectorStage[] = [];
    const running: Array<Promise<void>> = [];
    const startStage = (metrics: Metrics) => {
      const stage = new DetectorStage(kafka, redis, config, plans, log, metrics);
      stages.push(stage);
      running.push(stage.start());
      return stage;
    };
    try {
      // 20 minutes of event time, one record per rule every 10 s, in 12 transactions.
      for (let b = 0; b < 12; b++) await send(Array.from({ length: 10 }, (_, k) => plans.map((p) => keyed(p, b * 10 + k))).flat());
      const first = startStage(new Metrics());
      await waitFor('the first detector to commit the whole partition', committedToEnd, 60_000, 200);
      await first.close();
      const before = await paneState();
      const count = (stateKey: string) => [...before.keys()].filter((k) => k.includes(`{${stateKey}:`)).length;
      assert.ok(count(seed.plan.stateKey) >= 6 && count('short') >= 2 && count(seed.plan.stateKey) > count('short'),
        `both rules have live panes, the longer window more (${[...before.keys()].join(' ')})`);
      await admin.flushall();
      const metrics = new Metrics();
      startStage(metrics);
      // A record of a new group after the loss: the group commits past it only once both
      // rebuilds are done (nothing is committed mid-rebuild).
      await send(plans.map((p) => keyed(p, 119, 'late-comer')));
      await waitFor('the second detector to rebuild and commit past the new record', committedToEnd, 60_000, 200);
      const rebuilds = (await metrics.rebuilds.get()).values.reduce((n, v) => n + v.value, 0);
      assert.equal(rebuilds, 2, 'one rebuild per rule');
      const after = await paneState();
      const newGroup = groupId(groupKafkaKey(['late-comer', '10.0.0.1']));
      for (const [key, fields] of before) {
        const now = after.get(key);
        assert.ok(now !== undefined, `pane ${key} is back`);
        for (const [gid, rec] of fields) assert.equal(now.get(gid), rec, `${key} ${gid}: the same count, last offset and values as before the loss`);
        assert.equal([...now.keys()].filter((gid) => gid !== newGroup).length, fields.size, `${key}: no other group`);
      }
    } finally {
      await producer.disconnect();
      for (const stage of stages) await stage.close().catch(() => undefined);
      await Promise.all(running.map((r) => r.catch(() => undefined)));
      redis.disconnect();
      admin.disconnect();
      await deleteTopics(kafka, config);
      await store.stop();
    }
  });
});
