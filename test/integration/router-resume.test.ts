import assert from 'node:assert/strict';
import { Kafka } from 'kafkajs';
import { createLogger } from '../../src/ops/logger';
import { Metrics } from '../../src/ops/metrics';
import { RouterStage } from '../../src/ingest/router-stage';
import { ensureTopics } from '../../src/ingest/topics';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { loadRules } from '../../src/rules/load-rules';
import { KadeConfig } from '../../src/config/load';
import { deleteTopics, isolatedConfig, readTopic, testKafka, waitFor } from '../helpers/kafka';

/** A routable event (one source IP, so one keyed record) whose auditID names it. */
function event(i: number): string {
  return JSON.stringify({
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: `ev-${i}`, stage: 'ResponseComplete',
    requestURI: `/api/v1/namespaces/default/pods/p-${i}`, verb: 'get', user: { username: 'alice', groups: ['dev'] },
    sourceIPs: ['10.1.2.3'], objectRef: { resource: 'pods', namespace: 'default', apiVersion: 'v1' },
    responseStatus: { metadata: {}, code: 200 }, requestReceivedTimestamp: `2026-01-05T10:00:${String(i % 60).padStart(2, '0')}.000000Z`,
    stageTimestamp: '2026-01-05T10:00:59.000Z', annotations: { 'authorization.k8s.io/decision': 'allow' },
  });
}

async function committedOffset(kafka: Kafka, config: KadeConfig): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId: config.router.groupId, topics: [config.topics.raw] });
    return Number(t.partitions.find((p) => p.partition === 0)?.offset ?? -1);
  } finally {
    await admin.disconnect();
  }
}

describe('router on a real broker: the committed offset is the truth', function () {
  this.timeout(120_000);

  it('skips records another owner committed past its position, after its own transaction was fenced', async () => {
    const config = isolatedConfig('resume', { 'topics.rawPartitions': 1, 'topics.keyedPartitions': 1 });
    const kafka = testKafka();
    await ensureTopics(kafka, config);
    const metrics = new Metrics();
    const router = new RouterStage(kafka, config, loadRules(''), createLogger('silent'), metrics);
    const producer = kafka.producer();
    await producer.connect();
    const send = (from: number, to: number) => producer.send({
      topic: config.topics.raw,
      messages: Array.from({ length: to - from }, (_, k) => ({ key: 'alice', value: event(from + k), partition: 0 })),
    });
    // Another owner of raw partition 0, with the router's transactional id for it.
    const other = kafka.producer({ transactionalId: `${config.router.groupId}-${config.topics.raw}-0`, idempotent: true, maxInFlightRequests: 1 });
    try {
      await send(0, 40);
      await router.start();
      await waitFor('the router to commit offset 40', async () => (await committedOffset(kafka, config)) === 40, 60_000, 100);
      // The other owner fences the router's producer and commits raw offset 60 in a transaction,
      // as an owner that routed 40..59 would; the router's position is still 40.
      await other.connect();
      const tx = await other.transaction();
      await tx.sendOffsets({ consumerGroupId: config.router.groupId, topics: [{ topic: config.topics.raw, partitions: [{ partition: 0, offset: '60' }] }] });
      await tx.commit();
      await send(40, 80);
      await waitFor('the router to commit offset 80', async () => (await committedOffset(kafka, config)) === 80, 60_000, 100);
      const keyed = await readTopic(kafka, config.topics.keyed, 60, 30_000);
      const codec = new KeyedCodec();
      const ids = keyed.map((k) => codec.decode(k.value as Buffer).record.requestURI?.replace(/^.*\/p-/, 'ev-')).sort();
      const want = [...Array.from({ length: 40 }, (_, i) => `ev-${i}`), ...Array.from({ length: 20 }, (_, i) => `ev-${60 + i}`)].sort();
      assert.deepEqual(ids, want, 'records 40..59 are not routed again; 60..79 are, once');
      const counted = await metrics.registry.getSingleMetric('kade_events_total')?.get();
      const value = (o: string): number => counted?.values.find((v) => v.labels.outcome === o)?.value ?? 0;
      assert.equal(value('already_committed'), 20, 'the skipped records are counted');
      assert.equal(value('routed'), 60);
    } finally {
      await other.disconnect();
      await producer.disconnect();
      await router.close();
      await deleteTopics(kafka, config);
    }
  });
});
