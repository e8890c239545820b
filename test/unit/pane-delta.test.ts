import assert from 'node:assert/strict';
import { buildEvalWindowArgs, buildUpdatePaneArgs, parseCountsReply, parseValuesReply, PaneDelta } from '../../src/state/pane-delta';

const keys = { hash: 'h', set: 's', hll: (f: number) => `hll${f}` };

function delta(count: number): PaneDelta {
  return {
    gid: 'g', groupKey: ['alice', null], pane: 60_000, count, minOffset: 10, maxOffset: 12, offsets: [10, 12],
    members: new Map([[0, new Set(['allow', 'forbid'])], [1, new Set(['get'])]]),
  };
}

describe('Lua argument builders', () => {
  it('builds updatePane KEYS with one HyperLogLog key per switchable field', () => {
    const { keys: k, args } = buildUpdatePaneArgs(keys, delta(2), { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [0] }, false);
    assert.deepEqual(k, ['h', 's', 'hll0']);
    assert.deepEqual(args, [2, 10, 12, 600, 75, 3000, '["alice",null]', 0, 2, 0, 3, 2, '0:allow', '0:forbid', 1, 0, 1, '1:get']);
  });

  it('sends the offsets only when resolving a partial replay', () => {
    const { args } = buildUpdatePaneArgs(keys, delta(2), { ttlSeconds: 600, pruneAt: 0, exactThreshold: 3000, switchable: [] }, true);
    assert.deepEqual(args.slice(7, 10), [2, 10, 12]);
  });

  it('sends no members for a delta that alone reaches the prune bound', () => {
    const { args } = buildUpdatePaneArgs(keys, delta(75), { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [] }, false);
    assert.equal(args[args.length - 1], 0);
    assert.equal(args.length, 9);
  });

  it('builds evalWindow KEYS pane by pane, then HyperLogLogs per field, then the scratch key', () => {
    const { keys: k, args } = buildEvalWindowArgs({
      hash: (p) => `h${p}`, set: (p) => `s${p}`, hll: (p, f) => `l${f}.${p}`, scratch: 'tmp',
    }, [1, 2], [3], 'c');
    assert.deepEqual(k, ['h1', 's1', 'h2', 's2', 'l3.1', 'l3.2', 'tmp']);
    assert.deepEqual(args, [2, 'c', 1, 3]);
  });

  it('parses the replies', () => {
    const c = parseCountsReply([40, 0, 0, 2, 3, 7]);
    assert.equal(c.count, 40);
    assert.equal(c.pruned, false);
    assert.deepEqual([...c.distinct], [[0, 2], [3, 7]]);
    const v = parseValuesReply(['["bob","::1"]', '0:allow', '2:/api/v1:x', '0:forbid']);
    assert.deepEqual(v.groupKey, ['bob', '::1']);
    assert.deepEqual(v.members.get(0), ['allow', 'forbid']);
    assert.deepEqual(v.members.get(2), ['/api/v1:x'], 'only the first colon separates the field index');
    assert.throws(() => parseCountsReply('nope'), /unexpected reply/);
  });
});
