import assert from 'node:assert/strict';
import path from 'node:path';
import Redis from 'ioredis';
import { CompiledPlan } from '../../src/detect/compiled-plan';
import { loadRuleFile } from '../../src/rules/load-rules';
import { KeyBuilder } from '../../src/state/keys';
import { OFFSETS_CODE, PaneDelta, decodeOffsets } from '../../src/state/pane-delta';
import { DELTAS_PER_CALL, RedisState, WINDOWS_PER_CALL } from '../../src/state/redis-state';
import { packageRoot } from '../../src/util/package-root';
import { REDIS_URL, deleteByPrefix, keysByPrefix, uniquePrefix } from '../helpers/redis';

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const seed = (): CompiledPlan => loadRuleFile(path.join(packageRoot(), 'rules', 'endpoint-permission-enumeration.rule.json'));
/** The seed rule without its bound on count(): values() stay in Redis (not read back from the keyed topic). */
const unbounded = (): CompiledPlan => {
  const p = seed().plan;
  return new CompiledPlan({ ...p, condition: p.condition.filter((c) => c.aggregate !== 'Esql.document_count') });
};

function fieldIndex(plan: CompiledPlan, name: string): number {
  const f = plan.fields.find((x) => x.accessor.name === name);
  if (f === undefined) throw new Error(`no tracked field ${name}`);
  return f.index;
}

describe('Redis state and its Lua scripts (real Redis)', function () {
  let redis: Redis;
  let prefix: string;
  let plan: CompiledPlan;
  let state: RedisState;
  let DEC: number;
  let URI: number;

  before(() => { redis = new Redis(REDIS_URL); });
  after(async () => { await redis.quit(); });
  beforeEach(() => {
    prefix = uniquePrefix('state');
    plan = seed();
    state = new RedisState(redis, new KeyBuilder(prefix, plan.plan.stateKey), plan, 600);
    DEC = fieldIndex(plan, 'kubernetes.audit.annotations.authorization_k8s_io/decision');
    URI = fieldIndex(plan, 'kubernetes.audit.requestURI');
  });
  afterEach(async () => { await deleteByPrefix(redis, prefix); });

  const delta = (over: Partial<PaneDelta> & { uris?: string[]; decisions?: string[] }): PaneDelta => ({
    gid: over.gid ?? 'g1',
    groupKeyJson: over.groupKeyJson ?? '["mallory","203.0.113.9"]',
    pane: over.pane ?? T0,
    count: over.count ?? over.offsets?.length ?? 1,
    minOffset: over.minOffset ?? Math.min(...(over.offsets ?? [0])),
    maxOffset: over.maxOffset ?? Math.max(...(over.offsets ?? [0])),
    offsets: over.offsets ?? [0],
    members: new Map([[DEC, new Set(over.decisions ?? ['allow'])], [URI, new Set(over.uris ?? ['/a'])]]),
  });

  it('updatePane: a replayed batch does not count twice', async () => {
    const d = delta({ offsets: [10, 11, 12], uris: ['/a', '/b'] });
    await state.applyBatch(0, [d], T0);
    const again = await state.applyBatch(0, [d], T0);
    assert.equal(again.replayed, 1);
    const [agg] = await state.evalCounts(0, [{ gid: 'g1', end: T0 + MIN }]);
    assert.equal(agg.count, 3);
    assert.equal(agg.distinct.get(URI), 2);
  });

  it('updatePane: a replay whose batch overlaps an applied one counts only the new records', async () => {
    await state.applyBatch(0, [delta({ offsets: [10, 11, 12] })], null);
    // After a crash the batch comes back longer: 10..15, of which 13..15 are new.
    const res = await state.applyBatch(0, [delta({ offsets: [10, 11, 12, 13, 14, 15], uris: ['/a', '/z'] })], null);
    assert.equal(res.replayed, 1);
    const [agg] = await state.evalCounts(0, [{ gid: 'g1', end: T0 + MIN }]);
    assert.equal(agg.count, 6);
    assert.equal(agg.distinct.get(URI), 2);
  });

  for (const mode of ['values in Redis', 'values read back'] as const) {
    it(`evalWindow (${mode}): unions panes; counts add, distinct values merge`, async () => {
      if (mode === 'values in Redis') {
        plan = unbounded();
        state = new RedisState(redis, new KeyBuilder(prefix, plan.plan.stateKey), plan, 600);
      }
      assert.equal(plan.valuesFromTopic, mode === 'values read back');
      await state.applyBatch(0, [
        delta({ pane: T0, offsets: [1, 2], uris: ['/a', '/b'], decisions: ['allow'] }),
        delta({ pane: T0 + 5 * MIN, offsets: [3], uris: ['/b', '/c'], decisions: ['forbid'] }),
        delta({ pane: T0 + 6 * MIN, offsets: [4], uris: ['/d'] }),
      ], null);
      const [w6, w7] = await state.evalCounts(0, [{ gid: 'g1', end: T0 + 6 * MIN }, { gid: 'g1', end: T0 + 7 * MIN }]);
      assert.equal(w6.count, 3);
      assert.equal(w6.distinct.get(URI), 3);
      assert.equal(w6.distinct.get(DEC), 2);
      // window [T0+1m, T0+7m) has lost pane T0 and gained pane T0+6m
      assert.equal(w7.count, 2);
      assert.equal(w7.distinct.get(URI), 3);
      assert.equal(w7.distinct.get(DEC), 2);
      const [vals] = await state.evalValues(0, [{ gid: 'g1', end: T0 + 6 * MIN }]);
      if (mode === 'values in Redis') {
        assert.deepEqual(vals.groupKey, ['mallory', '203.0.113.9']);
        assert.equal(vals.members.get(OFFSETS_CODE), undefined);
      } else {
        // No group key; the offsets of the window's records, for reading them back.
        assert.equal(vals.groupKey, null);
        assert.deepEqual(decodeOffsets(vals.members.get(OFFSETS_CODE) ?? []), [1, 2, 3]);
      }
      assert.deepEqual([...(vals.members.get(URI) ?? [])].sort(), ['/a', '/b', '/c']);
    });
  }

  it('updatePanes: many groups of a partition in calls of DELTAS_PER_CALL, each counted and read back in order', async () => {
    plan = unbounded();
    state = new RedisState(redis, new KeyBuilder(prefix, plan.plan.stateKey), plan, 600);
    const n = 2 * DELTAS_PER_CALL + 37;
    const gids = Array.from({ length: n }, (_, i) => `g${i}`);
    const deltas = gids.map((gid, i) => delta({
      gid, groupKeyJson: JSON.stringify([`u${i}`, '10.0.0.1']), offsets: Array.from({ length: 1 + (i % 5) }, (_, k) => 10 * i + k),
      uris: Array.from({ length: 1 + (i % 7) }, (_, k) => `/u${i}/${k}`),
    }));
    await state.applyBatch(1, deltas, T0);
    // One group replays a batch that overlaps the applied one, amid new groups: only its new records count.
    const again = await state.applyBatch(1, [
      delta({ gid: 'g3', groupKeyJson: '["u3","10.0.0.1"]', offsets: [30, 31, 32, 33, 34, 35], uris: ['/u3/0', '/new'] }),
      delta({ gid: 'fresh', offsets: [7] }),
    ], null);
    assert.equal(again.replayed, 1);
    const windows = [...gids, 'fresh'].map((gid) => ({ gid, end: T0 + MIN }));
    assert.ok(windows.length > WINDOWS_PER_CALL);
    const aggs = await state.evalCounts(1, windows);
    aggs.slice(0, n).forEach((agg, i) => {
      assert.equal(agg.count, i === 3 ? 6 : 1 + (i % 5), `count of g${i}`);
      assert.equal(agg.distinct.get(URI), (i === 3 ? 1 : 0) + 1 + (i % 7), `distinct URIs of g${i}`);
    });
    assert.equal(aggs[n].count, 1);
    const vals = await state.evalValues(1, windows.slice(0, 3 * WINDOWS_PER_CALL / 2));
    vals.forEach((v, i) => assert.deepEqual(v.groupKey, [`u${i}`, '10.0.0.1']));
    // The same group on another partition is another group's state: nothing there.
    const [other] = await state.evalCounts(2, [{ gid: 'g1', end: T0 + MIN }]);
    assert.equal(other.count, 0);
  });

  it('updatePane: a pane reaching the count bound drops its sets and poisons its windows', async () => {
    await state.applyBatch(0, [delta({ offsets: Array.from({ length: 74 }, (_, i) => i), uris: ['/a', '/b'] })], null);
    const [before] = await state.evalCounts(0, [{ gid: 'g1', end: T0 + MIN }]);
    assert.equal(before.pruned, false);
    assert.equal(before.count, 74);
    await state.applyBatch(0, [delta({ offsets: [100] })], null);
    const [agg] = await state.evalCounts(0, [{ gid: 'g1', end: T0 + MIN }]);
    assert.equal(agg.pruned, true);
    assert.equal(agg.count, 75);
    const keys = new KeyBuilder(prefix, plan.plan.stateKey);
    const rec = await redis.hgetBuffer(keys.paneHash(0, T0), 'g1');
    assert.equal(rec?.toString(), '75 100 x\n', 'only the header of the pruned pane is left');
    assert.equal(plan.matches(agg), false);
  });

  it('updatePane: a count_distinct-only field switches to a HyperLogLog above the exact threshold', async () => {
    const small = new CompiledPlan({ ...plan.plan, distinctExactThreshold: 3, condition: plan.plan.condition.filter((c) => c.aggregate !== 'Esql.document_count') });
    assert.equal(small.pruneAt, 0);
    const s = new RedisState(redis, new KeyBuilder(prefix, 'small'), small, 600);
    const decisions = Array.from({ length: 50 }, (_, i) => `d${i}`);
    await s.applyBatch(0, [delta({ offsets: [1], decisions: decisions.slice(0, 3) })], null);
    const [exact] = await s.evalCounts(0, [{ gid: 'g1', end: T0 + MIN }]);
    assert.equal(exact.distinct.get(DEC), 3);
    assert.equal(await redis.exists(new KeyBuilder(prefix, 'small').paneHll(0, 'g1', T0, DEC)), 0, 'still exact at the threshold');
    await s.applyBatch(0, [delta({ offsets: [2], decisions })], null);
    await s.applyBatch(0, [delta({ pane: T0 + MIN, offsets: [3], decisions: ['d0', 'x1'] })], null);
    assert.equal(await redis.exists(new KeyBuilder(prefix, 'small').paneHll(0, 'g1', T0, DEC)), 1, 'switched');
    const [approx] = await s.evalCounts(0, [{ gid: 'g1', end: T0 + 2 * MIN }]);
    // HyperLogLog of 51 values: Redis' sparse encoding is exact at this size.
    assert.equal(approx.distinct.get(DEC), 51);
    // the URI field is also read by values(): it never switches
    assert.equal(approx.distinct.get(URI), 1);
    // A switched pane takes more values (sent again with its HyperLogLog keys), and among many windows
    // only those holding it need them.
    await s.applyBatch(0, [delta({ offsets: [4], decisions: ['d99'] }), delta({ gid: 'g2', offsets: [5], decisions: ['a', 'b'] })], null);
    const [more, plain] = await s.evalCounts(0, [{ gid: 'g1', end: T0 + 2 * MIN }, { gid: 'g2', end: T0 + MIN }]);
    assert.equal(more.distinct.get(DEC), 52);
    assert.equal(more.count, 4);
    assert.equal(plain.distinct.get(DEC), 2);
  });

  it('every key written has a TTL', async () => {
    await state.applyBatch(3, [delta({ offsets: [1, 2] })], T0 + 1);
    await state.commit(3, {
      clock: { streamTime: T0 + 1, lastClosed: T0 + MIN, idleWatermark: null },
      matched: [{ gid: 'g1', end: T0 + MIN }], alerted: [{ gid: 'g1', end: T0 + MIN }], retiredPanes: [],
    });
    const keys = await keysByPrefix(redis, prefix);
    const names = keys.map((k) => k.slice(k.indexOf('}:') + 2).replace(/^q:.*/, 'q')).sort();
    assert.deepEqual(names, ['anchors', 'ckpt', 'panes', 'q', 'recent'], `the pane hash, partition and suppression keys: ${keys.join(' ')}`);
    for (const k of keys) {
      const ttl = await redis.ttl(k);
      assert.ok(ttl > 0 && ttl <= 600, `${k} has TTL ${ttl}`);
    }
  });

  it('commit and loadPartition round-trip the checkpoint, active panes and recent matches', async () => {
    await state.applyBatch(2, [delta({ offsets: [1] }), delta({ gid: 'g2', pane: T0 + MIN, offsets: [2] })], T0 + 90_000);
    await state.commit(2, {
      clock: { streamTime: T0 + 90_000, lastClosed: T0 + MIN, idleWatermark: null },
      matched: [{ gid: 'g1', end: T0 + MIN }], alerted: [], retiredPanes: [T0],
    });
    const snap = await state.loadPartition(2);
    assert.deepEqual(snap.clock, { streamTime: T0 + 90_000, lastClosed: T0 + MIN, idleWatermark: null });
    assert.deepEqual(snap.panes, [T0 + MIN]);
    assert.deepEqual([...snap.recent], [['g1', T0 + MIN]]);
    const active = await state.activeGroups(2, [T0, T0 + MIN]);
    assert.deepEqual(active.get(T0), [], 'retired pane forgotten');
    assert.deepEqual(active.get(T0 + MIN), ['g2']);
  });
});
