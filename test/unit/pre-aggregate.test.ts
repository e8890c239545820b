import assert from 'node:assert/strict';
import path from 'node:path';
import { DetectorRecord, PreAggregator } from '../../src/detect/pre-aggregate';
import { groupId, groupKafkaKey } from '../../src/detect/group-id';
import { MAX_VALUE_CHARS, capValue } from '../../src/detect/cap-value';
import { storedFormOf } from '../../src/detect/value-hash';
import { emptyAuditRecord } from '../../src/ingest/audit-record';
import { loadRuleFile } from '../../src/rules/load-rules';
import { packageRoot } from '../../src/util/package-root';
import { PartitionClock } from '../../src/window/partition-clock';

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const plan = loadRuleFile(path.join(packageRoot(), 'rules', 'endpoint-permission-enumeration.rule.json'));
const URI = plan.fields.find((f) => f.accessor.name === 'kubernetes.audit.requestURI')!.index;

function rec(offset: number, t: number, user: string, uri: string, withKey = true): DetectorRecord {
  const record = emptyAuditRecord('default');
  record.requestURI = uri;
  record.user.username = user;
  const group = [user, '10.0.0.1'];
  return { offset, eventTime: t, group, record, kafkaKey: withKey ? groupKafkaKey(group) : undefined };
}

describe('pre-aggregation of a detector batch', () => {
  it('folds records into one delta per (group, pane) with distinct values and offsets', () => {
    const clock = new PartitionClock(plan.plan.window, 30_000, 10_000, { streamTime: null, lastClosed: null, idleWatermark: null }, 0);
    const agg = new PreAggregator(plan.fields, plan.plan.window.hopMs);
    const { deltas, late } = agg.run([
      rec(5, T0 + 1000, 'alice', '/a'),
      rec(6, T0 + 2000, 'bob', '/a', false),
      rec(7, T0 + 3000, 'alice', '/a'),
      rec(8, T0 + MIN + 1, 'alice', '/b'),
      rec(9, T0 + 4000, 'alice', '/c'),
    ], clock, 0);
    assert.equal(late, 0);
    assert.equal(clock.snapshot().streamTime, T0 + MIN + 1);
    const alice = groupKafkaKey(['alice', '10.0.0.1']);
    assert.deepEqual(deltas.map((d) => [d.groupKeyJson, d.pane, d.count, d.minOffset, d.maxOffset, d.offsets]), [
      [alice, T0, 3, 5, 9, [5, 7, 9]],
      [groupKafkaKey(['bob', '10.0.0.1']), T0, 1, 6, 6, [6]],
      [alice, T0 + MIN, 1, 8, 8, [8]],
    ]);
    assert.equal(deltas[0].gid, groupId(alice));
    // Up to 8 bytes a value is stored as itself.
    assert.deepEqual([...(deltas[0].members.get(URI) ?? [])], ['/a', '/c']);
    assert.equal(deltas[1].gid, groupId(groupKafkaKey(['bob', '10.0.0.1'])));
  });

  it('drops late records and caps long values', () => {
    const clock = new PartitionClock(plan.plan.window, 30_000, 10_000, { streamTime: T0 + 20 * MIN, lastClosed: T0 + 10 * MIN, idleWatermark: null }, 0);
    const agg = new PreAggregator(plan.fields, plan.plan.window.hopMs);
    const long = `/x${'y'.repeat(MAX_VALUE_CHARS)}`;
    const { deltas, late } = agg.run([rec(1, T0, 'alice', '/a'), rec(2, T0 + 15 * MIN, 'alice', long)], clock, 0);
    assert.equal(late, 1);
    assert.equal(deltas.length, 1);
    const [v] = [...(deltas[0].members.get(URI) ?? [])];
    // Capped as values() shows it, then stored in short form (the seed rule re-reads values()).
    assert.ok(capValue(long).length < 400 && capValue(long).includes('sha1:'));
    assert.equal(v, storedFormOf(capValue(long)));
    assert.equal(v.length, 11);
  });
});
