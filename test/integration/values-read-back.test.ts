import assert from 'node:assert/strict';
import path from 'node:path';
import Redis from 'ioredis';
import { Alert } from '../../src/alerts/alert';
import { Detector, DetectorRecord } from '../../src/detect/detector';
import { loadRuleFile } from '../../src/rules/load-rules';
import { KeyBuilder } from '../../src/state/keys';
import { RedisState } from '../../src/state/redis-state';
import { packageRoot } from '../../src/util/package-root';
import { auditRecord } from '../helpers/audit-records';
import { MemoryKeyedRecords } from '../helpers/keyed-records';
import { REDIS_URL, deleteByPrefix, keysByPrefix, uniquePrefix } from '../helpers/redis';

/**
 * The seed rule bounds count() (< 75): Redis keeps only what count_distinct needs (in short
 * form) and the offsets of the records; a matching window's values() come from its records,
 * read back from the keyed topic.
 */
describe('values() read back from the keyed topic (real Redis)', function () {
  this.timeout(60_000);
  let redis: Redis;
  let prefix: string;
  before(() => { redis = new Redis(REDIS_URL); });
  after(async () => { await redis.quit(); });
  beforeEach(() => { prefix = uniquePrefix('readback'); });
  afterEach(async () => { await deleteByPrefix(redis, prefix); });

  const plan = loadRuleFile(path.join(packageRoot(), 'rules', 'endpoint-permission-enumeration.rule.json'));
  const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
  const resources = ['pods', 'secrets', 'configmaps', 'nodes'];
  /** 10 requests of one attacker over 4 resources and 10 URIs, allowed and forbidden, from offset 100 on. */
  const attack = (): DetectorRecord[] => Array.from({ length: 10 }, (_, i) => {
    const record = auditRecord({
      uri: `/api/v1/namespaces/team-${i}/${resources[i % 4]}`, resource: resources[i % 4], namespace: `team-${i}`,
      decision: i % 2 ? 'forbid' : 'allow', code: i % 2 ? 403 : 200,
    });
    record.userAgent = `enum-tool/${i}`;
    return { offset: 100 + i * 3, eventTime: T0 + i * 1000, group: ['mallory', '203.0.113.9'], record };
  });

  /**
   * memoryDecisionsMax 0: no pane is trusted, so values() are read back from the keyed topic (as
   * after a restart or a rebalance); by default the detector wrote the panes itself and has them.
   */
  async function run(hide: (offset: number) => boolean, memoryDecisionsMax?: number): Promise<{
    alerts: Alert[]; asked: number[]; incomplete: Array<{ missing: number; count: number }>; published: number;
    /** The pane hashes' values once the batch is written (before the windows close and retire them). */
    stored: string;
  }> {
    const records = attack();
    const source = new MemoryKeyedRecords(plan.id, () => records.filter((r) => !hide(r.offset)));
    const alerts: Alert[] = [];
    const incomplete: Array<{ missing: number; count: number }> = [];
    let published = 0;
    let wall = Date.UTC(2030, 0, 1);
    const detector = new Detector(plan, new RedisState(redis, new KeyBuilder(prefix, plan.plan.stateKey), plan, 600),
      { publish: async (a) => { alerts.push(...a); } },
      { latenessMs: 0, idleTimeoutMs: 1, suppressionMs: 360_000, now: () => wall, keyedRecords: source, memoryDecisionsMax },
      { valuesIncomplete: (_p, _g, _e, missing, count) => incomplete.push({ missing, count }), matched: (a) => { published += a; } });
    await detector.onBatch(0, records, records[records.length - 1].offset + 1);
    let stored = '';
    for (const key of await keysByPrefix(redis, prefix)) {
      if (key.includes(':q:')) stored += Object.values(await redis.hgetall(key)).join('\n');
    }
    wall += 10;
    await detector.onTick();
    return { alerts, asked: source.asked, incomplete, published, stored };
  }

  it('an alert\'s values() are its records\' (read back by their offsets); Redis holds no values()-only field', async () => {
    const { alerts, asked, incomplete, published, stored } = await run(() => false, 0);
    assert.equal(alerts.length, 1);
    assert.equal(published, 1);
    assert.deepEqual(incomplete, []);
    // Every window holding the pane matches (content unchanged): one alert, the rest suppressed;
    // the records are asked for once, each offset once.
    assert.deepEqual([...new Set(asked)].sort((a, b) => a - b), attack().map((r) => r.offset));
    const e = alerts[0].esql;
    assert.equal(e.document_count, 10);
    assert.equal(e.kubernetes_audit_requestURI_count_distinct, 10);
    assert.equal(e.kubernetes_audit_objectRef_resource_count_distinct, 4);
    assert.equal(e.kubernetes_audit_annotations_authorization_k8s_io_decision_count_distinct, 2);
    assert.deepEqual([...(e.kubernetes_audit_userAgent_values as string[])].sort(), Array.from({ length: 10 }, (_, i) => `enum-tool/${i}`).sort());
    assert.deepEqual([...(e.kubernetes_audit_requestURI_values as string[])].sort(), attack().map((r) => r.record?.requestURI).sort());
    assert.deepEqual([...(e.kubernetes_audit_responseStatus_code_values as number[])].sort(), [200, 403]);
    assert.deepEqual([...(e.kubernetes_audit_objectRef_namespace_values as string[])].sort(), Array.from({ length: 10 }, (_, i) => `team-${i}`).sort());
    assert.deepEqual(alerts[0].groupValues, ['mallory', '203.0.113.9']);
    // What Redis keeps: short forms of the count_distinct values, no user agent, namespace, group key.
    assert.ok(stored.includes('forbid') && stored.includes('secrets'), 'short values are stored as they are');
    for (const absent of ['enum-tool', 'team-3', 'mallory', '/api/v1/namespaces']) assert.ok(!stored.includes(absent), `${absent} is not in Redis`);
  });

  it('records gone from the keyed topic: the alert lists the values of the others, and the loss is reported', async () => {
    const gone = new Set([100, 103, 106, 109]);
    const { alerts, incomplete, published } = await run((o) => gone.has(o), 0);
    assert.equal(alerts.length, 1);
    assert.equal(published, 1);
    assert.deepEqual(incomplete, [{ missing: 4, count: 10 }]);
    const e = alerts[0].esql;
    // Counts come from Redis; values() from the 6 records found.
    assert.equal(e.document_count, 10);
    assert.equal(e.kubernetes_audit_requestURI_count_distinct, 10);
    assert.equal((e.kubernetes_audit_requestURI_values as string[]).length, 6);
  });

  it('no record left: the alert cannot name its group and is not published, but counted', async () => {
    const { alerts, incomplete, published } = await run(() => true, 0);
    assert.equal(alerts.length, 0);
    assert.equal(published, 0);
    assert.deepEqual(incomplete, [{ missing: 10, count: 10 }]);
  });

  it('panes the detector wrote itself: the same alert from memory, without reading Kafka', async () => {
    const fromKafka = await run(() => false, 0);
    await deleteByPrefix(redis, prefix);
    // Nothing in the keyed topic now: the alert can only come from memory.
    const fromMemory = await run(() => true);
    assert.deepEqual(fromMemory.asked, [], 'no record is read back');
    assert.deepEqual(fromMemory.incomplete, []);
    assert.equal(fromMemory.alerts.length, 1);
    const sorted = (a: Alert): unknown => ({
      ...a, createdAt: 0,
      esql: Object.fromEntries(Object.entries(a.esql).map(([k, v]) => [k, Array.isArray(v) ? [...v].sort() : v])),
    });
    assert.deepEqual(sorted(fromMemory.alerts[0]), sorted(fromKafka.alerts[0]));
  });
});
