import assert from 'node:assert/strict';
import path from 'node:path';
import Redis from 'ioredis';
import { Detector, DetectorRecord } from '../../src/detect/detector';
import { Alert } from '../../src/alerts/alert';
import { loadRuleFile } from '../../src/rules/load-rules';
import { KeyBuilder } from '../../src/state/keys';
import { RedisState } from '../../src/state/redis-state';
import { MemoryKeyedRecords } from '../helpers/keyed-records';
import { packageRoot } from '../../src/util/package-root';
import { auditRecord } from '../helpers/audit-records';
import { RedisInstance, startRedisInstance } from '../helpers/redis-instance';

/** The commands kade needs, for a least-privilege Redis ACL user (also documented in README). */
export const KADE_REDIS_COMMANDS = [
  'ping', 'info', 'eval', 'evalsha', 'script|load', 'hset', 'hsetnx', 'hget', 'hgetall', 'hkeys', 'hdel', 'expire', 'del', 'unlink',
  'zadd', 'zrange', 'zrem', 'zremrangebyscore', 'pfadd', 'pfmerge', 'pfcount', 'scan',
];

describe('Redis ACL: kade runs as a user limited to its commands and keys', function () {
  this.timeout(60_000);
  let store: RedisInstance;
  before(async () => {
    store = await startRedisInstance();
    const admin = new Redis(store.url);
    await admin.call('ACL', 'SETUSER', 'kade', 'on', '>s3cret-test', 'resetkeys', '~kadeacl:*', '-@all', ...KADE_REDIS_COMMANDS.map((c) => `+${c}`));
    await admin.quit();
  });
  after(async () => { await store.stop(); });

  it('detects an attack with only the listed commands on its own key prefix', async () => {
    const url = `redis://kade:s3cret-test@127.0.0.1:${store.port}`;
    const redis = new Redis(url);
    try {
      await assert.rejects(redis.flushall(), /NOPERM/, 'FLUSHALL is not granted');
      await assert.rejects(redis.set('other:key', '1'), /NOPERM/, 'keys outside the prefix are not granted');
      const plan = loadRuleFile(path.join(packageRoot(), 'rules', 'endpoint-permission-enumeration.rule.json'));
      const alerts: Alert[] = [];
      let wall = Date.UTC(2030, 0, 1);
      let records: DetectorRecord[] = [];
      const detector = new Detector(plan, new RedisState(redis, new KeyBuilder('kadeacl', plan.plan.stateKey), plan, 600),
        { publish: async (a) => { alerts.push(...a); } },
        { latenessMs: 0, idleTimeoutMs: 1, suppressionMs: 360_000, now: () => wall, keyedRecords: new MemoryKeyedRecords(plan.id, () => records) });
      const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
      const resources = ['pods', 'secrets', 'configmaps', 'nodes'];
      records = Array.from({ length: 10 }, (_, i) => ({
        offset: i, eventTime: T0 + i * 1000, group: ['mallory', '203.0.113.9'],
        record: auditRecord({ uri: `/api/v1/${resources[i % 4]}/${i}`, resource: resources[i % 4], decision: i % 2 ? 'forbid' : 'allow', code: i % 2 ? 403 : 200 }),
      }));
      await detector.onBatch(0, records, 10);
      wall += 10;
      await detector.onTick();
      assert.equal(alerts.length, 1);
      assert.equal(alerts[0].esql.document_count, 10);
    } finally {
      redis.disconnect();
    }
  });
});
