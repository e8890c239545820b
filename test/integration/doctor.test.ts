import assert from 'node:assert/strict';
import { ConfigResourceTypes } from 'kafkajs';
import { ensureTopics } from '../../src/ingest/topics';
import { runDoctor } from '../../src/ops/doctor';
import { KadeConfig } from '../../src/config/load';
import { deleteTopics, isolatedConfig, testKafka } from '../helpers/kafka';
import { startRedisInstance } from '../helpers/redis-instance';

async function doctor(config: KadeConfig): Promise<{ code: number; lines: string[]; ms: number }> {
  const lines: string[] = [];
  const t0 = Date.now();
  const code = await runDoctor(config, (l) => lines.push(l));
  return { code, lines, ms: Date.now() - t0 };
}

const line = (lines: string[], re: RegExp): string => {
  const hit = lines.find((l) => re.test(l));
  assert.ok(hit !== undefined, `no line matches ${re}:\n${lines.join('\n')}`);
  return hit;
};

describe('kade doctor (real broker and Redis)', function () {
  this.timeout(60_000);

  it('returns 0 when Kafka, the topics, Redis and the rules are all fine', async () => {
    const config = isolatedConfig('doctor-ok');
    await ensureTopics(testKafka(), config, true);
    try {
      const { code, lines } = await doctor(config);
      assert.equal(code, 0, lines.join('\n'));
      assert.ok(lines.every((l) => !l.startsWith('PROBLEM')), lines.join('\n'));
      assert.match(line(lines, /^OK +Kafka: reachable/), /1 broker/);
      for (const t of [config.topics.raw, `${config.topics.raw}.dlq`, config.topics.keyed, config.topics.alerts]) {
        line(lines, new RegExp(`^OK +topic ${t.replace(/\./g, '\\.')} .*exists with \\d+ partition`));
      }
      line(lines, /^OK +topic .*\.dlq .*max\.message\.bytes=16777216/);
      line(lines, /^OK +topic .*\(keyed topic\) keeps records .*\(retention\.ms=/);
      line(lines, /^OK +Redis: reachable/);
      line(lines, /^OK +Redis: version \d+\.\d+/);
      line(lines, /^OK +Redis: maxmemory-policy is noeviction, .*used_memory .*maxmemory/);
      line(lines, /^OK +rules: 1 loaded/);
      assert.match(lines[lines.length - 1], /^doctor: all \d+ checks passed$/);
    } finally {
      await deleteTopics(testKafka(), config);
    }
  });

  it('names each missing topic and `kade topics` as the fix', async () => {
    const config = isolatedConfig('doctor-missing');
    const { code, lines } = await doctor(config);
    assert.equal(code, 1, lines.join('\n'));
    for (const t of [config.topics.raw, config.topics.keyed, config.topics.alerts]) {
      const l = line(lines, new RegExp(`^PROBLEM +topic ${t.replace(/\./g, '\\.')} .*does not exist`));
      assert.match(l, /Fix: run `kade topics`/);
    }
    assert.match(lines[lines.length - 1], /^doctor: 4 problems found/);
  });

  it('says the keyed topic caps detector parallelism when it has fewer partitions than configured', async () => {
    const config = isolatedConfig('doctor-parts');
    try {
      await ensureTopics(testKafka(), { ...config, topics: { ...config.topics, keyedPartitions: 2 } }, true);
      const { code, lines } = await doctor(config); // configured: 6
      assert.equal(code, 1, lines.join('\n'));
      assert.match(line(lines, /^PROBLEM +topic .*keyed topic/), /has 2 partition\(s\) but topics\.keyedPartitions is 6: at most 2 detectors/);
      const more = await doctor({ ...config, topics: { ...config.topics, keyedPartitions: 1 } });
      assert.equal(more.code, 0, more.lines.join('\n'));
      assert.match(line(more.lines, /^OK +topic .*keyed topic/), /more than topics\.keyedPartitions \(1\): fine/);
    } finally {
      await deleteTopics(testKafka(), config);
    }
  });

  it('flags a keyed topic that keeps records for less than detector.stateTtlSeconds', async () => {
    const config = isolatedConfig('doctor-retention');
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(kafka, config, true);
      await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: config.topics.keyed, configEntries: [{ name: 'retention.ms', value: '600000' }] }] });
      const { code, lines } = await doctor(config);
      assert.equal(code, 1, lines.join('\n'));
      assert.match(line(lines, /^PROBLEM +topic .*keyed topic.*retention/), /keeps records 0\.17 h \(retention\.ms=600000\), less than detector\.stateTtlSeconds \(1 h\).*Fix: kafka-configs\.sh --alter .*retention\.ms=86400000/);
      // A shorter state TTL asks for less.
      const short = await doctor({ ...config, detector: { ...config.detector, stateTtlSeconds: 300 } });
      assert.equal(short.code, 0, short.lines.join('\n'));
      line(short.lines, /^OK +topic .*keyed topic\) keeps records 0\.17 h/);
    } finally {
      await admin.disconnect();
      await deleteTopics(kafka, config);
    }
  });

  it('reports an unreachable Kafka and an unreachable Redis quickly and in plain words', async () => {
    const config = isolatedConfig('doctor-down', { 'kafka.brokers': ['127.0.0.1:1'], 'redis.url': 'redis://kade:hunter2@127.0.0.1:1' });
    const { code, lines, ms } = await doctor(config);
    assert.equal(code, 1, lines.join('\n'));
    assert.ok(ms < 15_000, `took ${ms} ms`);
    assert.match(line(lines, /^PROBLEM +Kafka: cannot reach the brokers 127\.0\.0\.1:1/), /ECONNREFUSED.*Fix: check kafka\.brokers \(KADE_KAFKA_BROKERS/);
    line(lines, /^SKIP +topics: not checked because Kafka is unreachable/);
    assert.match(line(lines, /^PROBLEM +Redis: cannot reach redis:\/\/127\.0\.0\.1:1/), /ECONNREFUSED.*Fix: check redis\.url \(KADE_REDIS_URL/);
    assert.ok(lines.every((l) => !l.includes('hunter2')), 'the Redis password is never printed');
    line(lines, /^OK +rules:/);
  });

  it('flags an eviction policy that can evict kade\'s keys (volatile-* too, since every kade key has a TTL)', async () => {
    const r = await startRedisInstance({ extraArgs: ['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru'] });
    const config = isolatedConfig('doctor-evict', { 'redis.url': r.url });
    await ensureTopics(testKafka(), config, true);
    try {
      const { code, lines } = await doctor(config);
      assert.equal(code, 1, lines.join('\n'));
      const l = line(lines, /^PROBLEM +Redis: maxmemory-policy is volatile-lru/);
      assert.match(l, /every key kade writes has a TTL/);
      assert.match(l, /Only noeviction is safe/);
      assert.match(l, /maxmemory 64\.0 MiB/);
      assert.match(l, /Fix: set maxmemory-policy noeviction/);
      assert.match(lines[lines.length - 1], /^doctor: 1 problem found/);
    } finally {
      await r.stop();
      await deleteTopics(testKafka(), config);
    }
  });

  it('points at rules.dir when the rules do not load', async () => {
    const config = isolatedConfig('doctor-rules', { 'rules.dir': '/nonexistent/kade-rules', 'kafka.brokers': ['127.0.0.1:1'], 'redis.url': 'redis://127.0.0.1:1' });
    const { lines } = await doctor(config);
    assert.match(line(lines, /^PROBLEM +rules:/), /\/nonexistent\/kade-rules does not exist.*Fix: point rules\.dir \(KADE_RULES_DIR\)/);
  });
});
