import assert from 'node:assert/strict';
import {
  GROUP_KEY_CODE, OFFSETS_CODE, PaneDelta, decodeOffsets, encodeOffsets, buildEvalWindowsArgs, buildUpdatePanesArgs, decodeEntries, encodeEntries, needsHll, parseCountsReply, parseUpdateReply, parseValuesReply,
} from '../../src/state/pane-delta';

const keys = { hash: (pane: number) => `q.${pane}`, hll: (d: PaneDelta, f: number) => `hll${f}.${d.gid}` };

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

  it('builds updatePanes KEYS (the call\'s pane hashes, then on a retry each delta\'s HyperLogLog keys) and eight args per delta', () => {
    const other = { ...delta(3), gid: 'h', minOffset: 20, maxOffset: 22 };
    const later = { ...delta(1), gid: 'h', pane: 120_000, minOffset: 23, maxOffset: 23 };
    const params = { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [0] };
    const { keys: k, args } = buildUpdatePanesArgs(keys, [delta(2), other, later], params, false);
    assert.deepEqual(k, ['q.60000', 'q.120000']);
    assert.deepEqual(args.slice(0, 3), [600, 75, 3000]);
    assert.deepEqual([...(args[3] as Buffer)], [0]);
    assert.deepEqual(args.slice(4, 6), [3, 2]);
    assert.deepEqual(args.slice(6, 9), [2, 10, 12]);
    assert.deepEqual(decodeAll(args[9] as Buffer), [[GROUP_KEY_CODE, '["alice",null]'], [0, 'allow'], [0, 'forbid'], [1, 'get']]);
    assert.deepEqual(args.slice(10, 14), ['', 0, 1, 'g']);
    assert.deepEqual(args.slice(14, 17), [3, 20, 22]);
    assert.deepEqual(args.slice(20, 22), [1, 'h']);
    assert.deepEqual(args.slice(28, 30), [2, 'h'], 'the third delta goes to the second pane\'s hash');
    assert.equal(args.length, 30);
    const retry = buildUpdatePanesArgs(keys, [delta(2), other], params, true);
    assert.deepEqual(retry.keys, ['q.60000', 'hll0.g', 'hll0.h']);
    assert.deepEqual(retry.args.slice(10, 14), ['10,12', 1, 1, 'g']);
  });

  it('keepOffsets: a delta\'s record offsets as one entry (base 36, gaps), no group key entry', () => {
    const d = { ...delta(3), offsets: [1_000_000, 1_000_001, 1_000_040] };
    const params = { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [0], keepOffsets: true };
    const { args } = buildUpdatePanesArgs(keys, [d], params, false);
    const entries = decodeAll(args[9] as Buffer);
    assert.deepEqual(entries, [[0, 'allow'], [0, 'forbid'], [1, 'get'], [OFFSETS_CODE, `${(1_000_000).toString(36)},1,13`]]);
    assert.deepEqual(decodeOffsets([entries[3][1]]), [1_000_000, 1_000_001, 1_000_040]);
    // Unsorted or repeated offsets (a replay cut into other batches) come back once each, sorted.
    assert.equal(encodeOffsets([7, 3, 3, 5]), '3,2,2');
    assert.deepEqual(decodeOffsets(['3,2,2', '5,2,a', '0']), [0, 3, 5, 7, 17]);
    assert.deepEqual(decodeOffsets([]), []);
    assert.throws(() => decodeOffsets(['3,,2']), /bad offsets entry/);
    assert.throws(() => decodeOffsets(['-3']), /bad offsets entry/);
    // A pruning delta keeps nothing, offsets included.
    assert.equal((buildUpdatePanesArgs(keys, [delta(75)], params, false).args[9] as Buffer).length, 0);
  });

  it('sends no entries for a delta that alone reaches the prune bound', () => {
    const { args } = buildUpdatePanesArgs(keys, [delta(75)], { ttlSeconds: 600, pruneAt: 75, exactThreshold: 3000, switchable: [] }, false);
    assert.equal((args[9] as Buffer).length, 0);
  });

  it('parses updatePanes replies per delta and refuses a reply of another length', () => {
    assert.deepEqual(parseUpdateReply([1, 4, 0, 2, -1, 0], 3), [[1, 4], [0, 2], [-1, 0]]);
    assert.throws(() => parseUpdateReply([1, 4], 2), /unexpected reply/);
  });

  it('builds evalWindows KEYS: each pane hash once, then (counts, with HyperLogLogs) each window\'s HyperLogLogs per field; the scratch key last', () => {
    const k = { hash: (p: number) => `q.${p}`, hll: (w: number, p: number, f: number) => `l${w}.${f}.${p}`, scratch: 'tmp' };
    const windows = [{ gid: 'g', panes: [1, 2] }, { gid: 'h', panes: [2, 3] }];
    const plain = buildEvalWindowsArgs(k, windows, [3], [3, 4], 'c');
    assert.deepEqual(plain.keys, ['q.1', 'q.2', 'q.3', 'tmp']);
    assert.deepEqual(plain.args.slice(0, 2), [2, 'c']);
    assert.deepEqual([...(plain.args[2] as Buffer)], [3]);
    assert.deepEqual([...(plain.args[3] as Buffer)], [3, 4]);
    assert.deepEqual(plain.args.slice(4), [2, '00', 3, 'g', 1, 2, 'h', 2, 3]);
    const c = buildEvalWindowsArgs(k, windows, [3], [3, 4], 'c', true);
    assert.deepEqual(c.keys, ['q.1', 'q.2', 'q.3', 'l0.3.1', 'l0.3.2', 'l1.3.2', 'l1.3.3', 'tmp']);
    assert.deepEqual(c.args.slice(4, 7), [2, '11', 3]);
    assert.deepEqual(buildEvalWindowsArgs(k, [windows[0]], [3], [3, 4], 'v').keys, ['q.1', 'q.2']);
    assert.throws(() => buildEvalWindowsArgs(k, [windows[0], { gid: 'x', panes: [3] }], [3], [3, 4], 'c'), /as many panes/);
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
