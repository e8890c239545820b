import assert from 'node:assert/strict';
import path from 'node:path';
import Redis from 'ioredis';
import { Alert } from '../../src/alerts/alert';
import { Detector, DetectorRecord } from '../../src/detect/detector';
import { normalizeEvent } from '../../src/ingest/normalize';
import { loadRuleFile } from '../../src/rules/load-rules';
import { KeyBuilder } from '../../src/state/keys';
import { RedisState } from '../../src/state/redis-state';
import { packageRoot } from '../../src/util/package-root';
import { MemoryKeyedRecords } from '../helpers/keyed-records';
import { REDIS_URL, deleteByPrefix, keysByPrefix, uniquePrefix } from '../helpers/redis';

describe('hostile values never reach Redis as they are (real Redis)', function () {
  this.timeout(60_000);
  let redis: Redis;
  let prefix: string;
  before(() => { redis = new Redis(REDIS_URL); });
  after(async () => { await redis.quit(); });
  beforeEach(() => { prefix = uniquePrefix('hostile'); });
  afterEach(async () => { await deleteByPrefix(redis, prefix); });

  it('caps 1 MB request URIs, user agents and usernames; distinct counts stay exact; memory stays bounded', async () => {
    const plan = loadRuleFile(path.join(packageRoot(), 'rules', 'endpoint-permission-enumeration.rule.json'));
    const alerts: Alert[] = [];
    let wall = Date.UTC(2030, 0, 1);
    const records: DetectorRecord[] = [];
    const detector = new Detector(plan, new RedisState(redis, new KeyBuilder(prefix, plan.plan.stateKey), plan, 600), {
      publish: async (a) => { alerts.push(...a); },
    }, { latenessMs: 0, idleTimeoutMs: 1, suppressionMs: 360_000, now: () => wall, keyedRecords: new MemoryKeyedRecords(plan.id, () => records) });
    const huge = (c: string, n: number): string => c.repeat(n);
    const user = `attacker-${huge('u', 100_000)}`;
    const resources = ['pods', 'secrets', 'configmaps', 'nodes', 'services'];
    for (let i = 0; i < 12; i++) {
      const ev = {
        kind: 'Event', stage: 'ResponseComplete', verb: 'get', user: { username: user, groups: ['g'] }, sourceIPs: ['198.51.100.7'],
        // 1 MB URIs that differ only at the very end: distinct values must stay distinct
        requestURI: `/api/${huge('x', 1_048_576)}${i % 8}`, userAgent: huge('ua', 250_000),
        objectRef: { resource: resources[i % 5] }, responseStatus: { code: i % 2 ? 403 : 200 },
        annotations: { 'authorization.k8s.io/decision': i % 2 ? 'forbid' : 'allow' },
        requestReceivedTimestamp: `2026-01-05T10:00:${String(10 + i).padStart(2, '0')}Z`,
      };
      const { record, eventTime } = normalizeEvent(ev, { timeField: 'requestReceivedTimestamp', namespace: 'c' });
      for (const group of plan.groupsOf(record)) records.push({ offset: i, eventTime, group, record: plan.project(record) });
    }
    await detector.onBatch(0, records, records.length);
    wall += 10;
    await detector.onTick();
    assert.equal(alerts.length, 1, 'the attack still alerts');
    const esql = alerts[0].esql;
    assert.equal(esql.kubernetes_audit_requestURI_count_distinct, 8, 'distinct 1 MB URIs stay distinct');
    for (const v of esql.kubernetes_audit_requestURI_values as string[]) {
      assert.ok(v.length < 400, `a value of ${v.length} chars reached the alert`);
      assert.match(v, /…\[1048582 chars, sha1:[0-9a-f]{16}\]$/);
    }
    assert.ok(String(alerts[0].groupValues[0]).length < 400, 'the group key is capped too');
    let total = 0;
    for (const key of await keysByPrefix(redis, prefix)) {
      const bytes = Number(await redis.memory('USAGE', key));
      total += bytes;
      assert.ok(bytes < 16 * 1024, `${key.slice(0, 80)} uses ${bytes} bytes`);
    }
    assert.ok(total < 64 * 1024, `all of kade's keys use ${total} bytes for 12 events of ~1.3 MB each`);
  });
});
