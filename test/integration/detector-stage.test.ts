import assert from 'node:assert/strict';
import { Kafka } from 'kafkajs';
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
});
