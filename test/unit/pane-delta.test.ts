import assert from 'node:assert/strict';
import {
  GROUP_KEY_CODE, PaneDelta, buildEvalWindowsArgs, buildUpdatePanesArgs, decodeEntries, encodeEntries, needsHll, parseCountsReply, parseUpdateReply, parseValuesReply,
} from '../../src/state/pane-delta';

const keys = { record: (d: PaneDelta) => `r.${d.gid}`, hll: (d: PaneDelta, f: number) => `hll${f}.${d.gid}`, active: (pane: number) => `a.${pane}` };

function delta(count: number): PaneDelta {
  return {
    gid: 'g', groupKeyJson: '["alice",null]', pane: 60_000, count, minOffset: 10, maxOffset: 12, offsets: [10, 12],
    members: new Map([[0, new Set(['allow', 'forbid'])], [1, new Set(['get'])]]),
  };
}

function decodeAll(buf: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  decodeEntries(buf, 0, (c, v) => out.push([c, v]));
  return out;
}

describe('Lua argument builders and the pane record encoding', () => {
  it('encodes entries as code, length, UTF-8 bytes (two length bytes from 128 bytes on)', () => {
    const long = 'x'.repeat(127) + 'é'; // 129 bytes
    const buf = encodeEntries(new Map([[3, new Set(['ab', long, ''])]]), '["k"]');
    assert.deepEqual([...buf.subarray(0, 2)], [GROUP_KEY_CODE, 5]);
    assert.deepEqual([...buf.subarray(7, 11)], [3, 2, 0x61, 0x62]);
    assert.deepEqual([...buf.subarray(11, 14)], [3, 128, 129]);
    assert.equal(buf.length, 7 + 4 + 3 + 129 + 2);
    assert.deepEqual(decodeAll(buf), [[GROUP_KEY_CODE, '["k"]'], [3, 'ab'], [3, long], [3, '']]);
  });

  it('round-trips values up to the entry bound and rejects longer ones', () => {
    const max = 'y'.repeat(0x7fff);
    assert.deepEqual(decodeAll(encodeEntries([[7, [max, '日本']]], null)), [[7, max], [7, '日本']]);
    assert.throws(() => encodeEntries([[7, ['z'.repeat(0x8000)]]], null), /at most 32767/);
    assert.throws(() => encodeEntries([[255, ['a']]], null), /does not fit/);
    assert.throws(() => decodeEntries(Buffer.from([1, 5, 0x61]), 0, () => undefined), /truncated/);
  });

  it('builds updatePanes KEYS (the panes\' active-group lists, then per delta its record and, on a retry, its HyperLogLog keys) and seven args per delta', () => {
    const other = { ...delta(3), gid: 'h', minOffset: 20, maxOffset: 22 };
    const later = { ...delta(1), gid: 'h', pane: 120_000, minOffset: 23, maxOffset: 23 };
    const params = { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [0] };
    const { keys: k, args } = buildUpdatePanesArgs(keys, [delta(2), other, later], params, false);
    assert.deepEqual(k, ['a.60000', 'a.120000', 'r.g', 'r.h', 'r.h']);
    assert.deepEqual(args.slice(0, 3), [600, 75, 3000]);
    assert.deepEqual([...(args[3] as Buffer)], [0]);
    assert.deepEqual(args.slice(4, 6), [3, 2]);
    assert.deepEqual(args.slice(6, 9), [2, 10, 12]);
    assert.deepEqual(decodeAll(args[9] as Buffer), [[GROUP_KEY_CODE, '["alice",null]'], [0, 'allow'], [0, 'forbid'], [1, 'get']]);
    assert.deepEqual(args.slice(10, 13), ['', 0, 1]);
    assert.deepEqual(args.slice(13, 16), [3, 20, 22]);
    assert.equal(args[19], 1);
    assert.equal(args[26], 2, 'the third delta lists its group in the second pane\'s list');
    assert.equal(args.length, 27);
    const retry = buildUpdatePanesArgs(keys, [delta(2), other], params, true);
    assert.deepEqual(retry.keys, ['a.60000', 'r.g', 'hll0.g', 'r.h', 'hll0.h']);
    assert.deepEqual(retry.args.slice(10, 13), ['10,12', 1, 1]);
  });

  it('sends no entries for a delta that alone reaches the prune bound', () => {
    const { args } = buildUpdatePanesArgs(keys, [delta(75)], { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [] }, false);
    assert.equal((args[9] as Buffer).length, 0);
  });

  it('parses updatePanes replies per delta and refuses a reply of another length', () => {
    assert.deepEqual(parseUpdateReply([1, 4, 0, 2, -1, 0], 3), [[1, 4], [0, 2], [-1, 0]]);
    assert.throws(() => parseUpdateReply([1, 4], 2), /unexpected reply/);
  });

  it('builds evalWindows KEYS window by window: panes, then (counts, with HyperLogLogs) HyperLogLogs per field; the scratch key last', () => {
    const k = { record: (w: number, p: number) => `r${w}.${p}`, hll: (w: number, p: number, f: number) => `l${w}.${f}.${p}`, scratch: 'tmp' };
    const plain = buildEvalWindowsArgs(k, [[1, 2], [2, 3]], [3], [3, 4], 'c');
    assert.deepEqual(plain.keys, ['r0.1', 'r0.2', 'r1.2', 'r1.3', 'tmp']);
    assert.deepEqual(plain.args.slice(0, 2), [2, 'c']);
    assert.deepEqual([...(plain.args[2] as Buffer)], [3]);
    assert.deepEqual([...(plain.args[3] as Buffer)], [3, 4]);
    assert.deepEqual(plain.args.slice(4), [2, '00']);
    const c = buildEvalWindowsArgs(k, [[1, 2], [2, 3]], [3], [3, 4], 'c', true);
    assert.deepEqual(c.keys, ['r0.1', 'r0.2', 'l0.3.1', 'l0.3.2', 'r1.2', 'r1.3', 'l1.3.2', 'l1.3.3', 'tmp']);
    assert.deepEqual(c.args.slice(4), [2, '11']);
    assert.deepEqual(buildEvalWindowsArgs(k, [[1, 2]], [3], [3, 4], 'v').keys, ['r0.1', 'r0.2']);
    assert.throws(() => buildEvalWindowsArgs(k, [[1, 2], [3]], [3], [3, 4], 'c'), /as many panes/);
    assert.equal(needsHll([-2]), true);
    assert.equal(needsHll([3, 0]), false);
  });

  it('parses the replies; values are the union over the pane records', () => {
    const c = parseCountsReply([40, 0, 0, 2, 3, 7]);
    assert.equal(c.count, 40);
    assert.equal(c.pruned, false);
    assert.deepEqual([...c.distinct], [[0, 2], [3, 7]]);
    const rec = (head: string, members: Array<[number, string[]]>, key: string | null): Buffer =>
      Buffer.concat([Buffer.from(`${head}\n`), encodeEntries(members, key)]);
    const v = parseValuesReply([
      null,
      rec('3 17', [[0, ['allow']], [2, ['/api/v1:x']]], '["bob","::1"]'),
      rec('2 19', [[0, ['forbid', 'allow']]], '["bob","::1"]'),
    ]);
    assert.deepEqual(v.groupKey, ['bob', '::1']);
    assert.deepEqual(v.members.get(0), ['allow', 'forbid']);
    assert.deepEqual(v.members.get(2), ['/api/v1:x']);
    assert.equal(parseValuesReply([null, rec('80 3 x', [], null)]).groupKey, null, 'a pruned pane has no group key');
    assert.throws(() => parseCountsReply('nope'), /unexpected reply/);
    assert.throws(() => parseValuesReply(['12 3\n']), /not a buffer/);
  });
});
