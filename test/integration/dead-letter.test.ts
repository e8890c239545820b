import assert from 'node:assert/strict';
import { createLogger } from '../../src/ops/logger';
import { Metrics } from '../../src/ops/metrics';
import { RouterStage } from '../../src/ingest/router-stage';
import { ensureTopics } from '../../src/ingest/topics';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { loadRules } from '../../src/rules/load-rules';
import { deleteTopics, isolatedConfig, readTopic, testKafka } from '../helpers/kafka';

const good = {
  kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: 'ok-1', stage: 'ResponseComplete',
  requestURI: '/api/v1/namespaces/default/pods', verb: 'list', user: { username: 'alice', groups: ['dev'] },
  sourceIPs: ['10.1.2.3', '10.1.2.3', '2001:db8::7'], objectRef: { resource: 'pods', namespace: 'default', apiVersion: 'v1' },
  responseStatus: { metadata: {}, code: 200 }, requestReceivedTimestamp: '2026-01-05T10:00:01.123456Z',
  stageTimestamp: '2026-01-05T10:00:01.125Z', annotations: { 'authorization.k8s.io/decision': 'allow' },
};

describe('router dead letters on a real broker', function () {
  this.timeout(90_000);

  it('sends every bad record to <raw>.dlq with its original key, bytes and headers, and routes the good one', async () => {
    const config = isolatedConfig('dlq');
    const kafka = testKafka();
    await ensureTopics(kafka, config);
    const metrics = new Metrics();
    const router = new RouterStage(kafka, config, loadRules(''), createLogger('silent'), metrics);
    const bad: Array<{ key: string; value: Buffer; reason: string }> = [
      { key: 'garbage', value: Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80]), reason: 'invalid-utf8' },
      { key: 'json', value: Buffer.from('{"kind":"Event", "verb": '), reason: 'invalid-json' },
      { key: 'types', value: Buffer.from(JSON.stringify({ ...good, verb: 7 })), reason: 'wrong-type' },
      { key: 'missing', value: Buffer.from(JSON.stringify({ kind: 'Event', verb: 'get', stage: 'ResponseComplete' })), reason: 'missing-event-time' },
      { key: 'other', value: Buffer.from(JSON.stringify({ hello: 'world' })), reason: 'not-an-audit-event' },
    ];
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({
        topic: config.topics.raw,
        messages: [
          ...bad.map((b) => ({ key: b.key, value: b.value, headers: { origin: `test-${b.key}` }, partition: 0 })),
          { key: 'good', value: JSON.stringify(good), headers: { 'kade.namespace': 'cluster-a' }, partition: 0 },
        ],
      });
      await router.start();
      const dead = await readTopic(kafka, `${config.topics.raw}.dlq`, bad.length);
      assert.equal(dead.length, bad.length);
      for (const b of bad) {
        const m = dead.find((d) => d.key?.toString() === b.key);
        assert.ok(m, `dead letter for ${b.key}`);
        assert.deepEqual(m.value, b.value, 'original bytes');
        assert.equal(m.headers?.origin?.toString(), `test-${b.key}`, 'original headers kept');
        assert.equal(m.headers?.['kade.error.reason']?.toString(), b.reason);
        assert.equal(m.headers?.['kade.error.class']?.toString(), 'BadInputError');
        assert.ok((m.headers?.['kade.error.message']?.toString() ?? '').length > 0);
        assert.equal(m.headers?.['kade.source.topic']?.toString(), config.topics.raw);
        assert.equal(m.headers?.['kade.source.partition']?.toString(), '0');
        assert.match(m.headers?.['kade.source.offset']?.toString() ?? '', /^\d+$/);
      }
      // the good event fans out to its two distinct IPs
      const keyed = await readTopic(kafka, config.topics.keyed, 2);
      const codec = new KeyedCodec();
      const groups = keyed.map((k) => codec.decode(k.value as Buffer)).map((v) => [v.group, v.record.dataStreamNamespace]);
      assert.deepEqual(groups.map((g) => JSON.stringify(g)).sort(), [
        JSON.stringify([['alice', '10.1.2.3'], 'cluster-a']),
        JSON.stringify([['alice', '2001:db8::7'], 'cluster-a']),
      ]);
      const counted = await metrics.registry.getSingleMetric('kade_events_total')?.get();
      const value = (o: string): number => counted?.values.find((v) => v.labels.outcome === o)?.value ?? 0;
      assert.equal(value('dead_lettered'), bad.length);
      assert.equal(value('routed'), 1);
    } finally {
      await producer.disconnect();
      await router.close();
      await deleteTopics(kafka, config);
    }
  });
});
