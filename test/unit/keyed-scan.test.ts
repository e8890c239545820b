import assert from 'node:assert/strict';
import { BadInputError } from '../../src/ingest/errors';
import { KeyedAuditRecord, KeyedCodec } from '../../src/ingest/keyed-codec';
import { CollectedValues, KeyedScanner } from '../../src/ingest/keyed-scan';
import { emptyAuditRecord } from '../../src/ingest/audit-record';
import { routeRecords } from '../../src/ingest/route';
import { loadRules } from '../../src/rules/load-rules';
import { CompiledPlan } from '../../src/detect/compiled-plan';
import { capValue } from '../../src/detect/cap-value';
import { storedFormOf } from '../../src/detect/value-hash';
import { generateAuditStream } from '../helpers/audit-generator';

const plans = loadRules('');
const plan = plans[0];
const codec = new KeyedCodec();

/**
 * What the object path (avsc decode + FieldAccessor.readRaw + capValue, then the stored form of
 * hashed fields) reads: "field\tvalue" sorted. every: all tracked fields as they are (the scanner
 * of a rule that keeps values() in Redis); else the plan's stored fields.
 */
function expected(v: KeyedAuditRecord, p: CompiledPlan, every = false): string[] {
  const out: string[] = [];
  for (const f of every ? p.fields : p.storedFields) {
    const raw = f.accessor.readRaw(v.record);
    if (raw === null || raw === undefined) continue;
    for (const x of Array.isArray(raw) ? raw : [raw]) {
      const s = typeof x === 'string' ? capValue(x) : String(x);
      out.push(`${f.index}\t${f.hashed && !every ? storedFormOf(s) : s}`);
    }
  }
  return out.sort();
}

/** The scanner of a rule whose pane records keep every tracked field as it is. */
function everyFieldScanner(p: CompiledPlan): KeyedScanner {
  return new KeyedScanner([{ id: p.id, fields: p.fields.map((f) => ({ index: f.index, path: f.accessor.path })) }]);
}

function scanned(c: CollectedValues, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(`${c.fields[i]}\t${c.values[i]}`);
  return out.sort();
}

function keyedValues(events: number): Buffer[] {
  const raw = [];
  for (const ev of generateAuditStream({ seed: 7, events, attacks: 5, actorsScale: 1 })) {
    raw.push({ topic: 'raw', partition: 0, offset: String(raw.length), key: null, value: Buffer.from(JSON.stringify(ev.event)), headers: { 'kade.namespace': Buffer.from(ev.cluster) } });
  }
  const r = routeRecords(raw, { plans, codec, timeField: 'requestReceivedTimestamp', namespaceHeader: 'kade.namespace', defaultNamespace: 'default', maxMessageBytes: 1 << 20 });
  return r.keyed.map((m) => m.value as Buffer);
}

function throwsInvalid(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof BadInputError && e.reason === 'invalid-avro');
}

describe('keyed record scanner (the detector reads values from the Avro bytes)', () => {
  it('reads the same header and tracked values as avsc + the field accessors, on routed generator records', () => {
    const values = keyedValues(3000);
    assert.ok(values.length > 2000, `${values.length} keyed records`);
    const scanner = KeyedScanner.forPlans(plans);
    const c = new CollectedValues();
    let nonEmpty = 0;
    for (const buf of values) {
      const v = codec.decode(buf);
      const from = c.length;
      const h = scanner.read(buf, c);
      assert.equal(h.rule, v.rule);
      assert.equal(h.ruleIndex, 0);
      assert.equal(h.eventTime, v.eventTime);
      assert.deepEqual(scanner.group(buf, h.groupPos), v.group);
      const got = scanned(c, from, c.length);
      assert.deepEqual(got, expected(v, plan));
      if (got.length > 3) nonEmpty++;
    }
    assert.ok(nonEmpty > values.length / 2);
    // The seed rule stores only its count_distinct fields, long values hashed.
    assert.ok(plan.valuesFromTopic);
    assert.deepEqual(plan.storedFields.map((f) => f.accessor.name).sort(), [
      'kubernetes.audit.annotations.authorization_k8s_io/decision', 'kubernetes.audit.objectRef.resource',
      'kubernetes.audit.requestURI', 'kubernetes.audit.verb',
    ]);
    const every = everyFieldScanner(plan);
    const all = new CollectedValues();
    for (const buf of values.slice(0, 500)) {
      const from = all.length;
      every.read(buf, all);
      assert.deepEqual(scanned(all, from, all.length), expected(codec.decode(buf), plan, true));
    }
  });

  it('reads multi-valued, integer, annotation, capped and non-ASCII values like the object path', () => {
    const record = emptyAuditRecord('prod-ü');
    record.verb = 'get';
    record.requestURI = `/api/v1/${'x'.repeat(3000)}`;
    record.user.username = 'ünïcode-用户';
    record.user.groups = ['a', 'b', 'a'];
    record.userAgent = 'é'.repeat(600); // 1,200 bytes but 600 characters: not capped
    record.objectRef = { resource: 'pods', subresource: null, namespace: 'ns', name: null, apiGroup: null, apiVersion: null };
    record.responseStatus = { code: 403, status: null, reason: null, message: 'forbidden' };
    record.annotations = { 'authorization.k8s.io/decision': 'forbid', 'other.io/x': 'y' };
    const v: KeyedAuditRecord = { rule: plan.id, group: ['ünïcode-用户', null], eventTime: -5, record };
    const buf = codec.encode(v);
    const c = new CollectedValues();
    const h = everyFieldScanner(plan).read(buf, c);
    assert.equal(h.eventTime, -5);
    assert.deepEqual(scanned(c, 0, c.length), expected(v, plan, true));
    assert.ok(c.values.includes('403'));
    assert.ok(c.values.includes('forbid'));
    assert.ok(c.values.includes('é'.repeat(600)));
    assert.ok(c.values.some((x) => x.includes('sha1:')), 'the 3,000-character URI is capped');
    // The same record through the seed rule's scanner: stored forms straight from the bytes.
    const short = new CollectedValues();
    KeyedScanner.forPlans(plans).read(buf, short);
    assert.deepEqual(scanned(short, 0, short.length), expected(v, plan));
    assert.ok(short.values.includes('forbid') && short.values.includes('get') && short.values.includes('pods'), 'values of up to 8 bytes are kept as they are');
    assert.ok(short.values.includes(storedFormOf(capValue(record.requestURI as string))), 'the capped URI, hashed');
    assert.ok(!short.values.includes('403'), 'values()-only fields are not collected');
  });

  it('a record of a rule it does not run: header read and validated, nothing collected', () => {
    const record = emptyAuditRecord('default');
    record.verb = 'list';
    const buf = codec.encode({ rule: 'another-rule', group: ['u'], eventTime: 1, record });
    const c = new CollectedValues();
    const h = KeyedScanner.forPlans(plans).read(buf, c);
    assert.equal(h.ruleIndex, -1);
    assert.equal(h.rule, 'another-rule');
    assert.equal(c.length, 0);
  });

  it('throws invalid-avro on every truncation, on trailing bytes and on a bad union index, collecting nothing', () => {
    const [buf] = keyedValues(50);
    const scanner = KeyedScanner.forPlans(plans);
    const c = new CollectedValues();
    scanner.read(buf, c);
    const before = c.length;
    for (let n = 0; n < buf.length; n++) {
      // avsc refuses every one of these too.
      assert.throws(() => codec.decode(buf.subarray(0, n)));
      throwsInvalid(() => scanner.read(buf.subarray(0, n), c));
      assert.equal(c.length, before, `truncated at ${n}: values were left behind`);
    }
    throwsInvalid(() => scanner.read(Buffer.concat([buf, Buffer.from([0])]), c));
    // The first union of AuditRecord (auditID: null | string) given index 5.
    const record = emptyAuditRecord('default');
    const ok = codec.encode({ rule: plan.id, group: ['u'], eventTime: 1, record });
    const bad = Buffer.from(ok);
    // rule (length byte + id), group (count 1, union index 1, "u" as length + byte, end of blocks), eventTime 1.
    const recordStart = (1 + Buffer.byteLength(plan.id)) + (1 + 1 + 2 + 1) + 1;
    assert.equal(ok[recordStart], 0, 'auditID is null (union index 0)');
    bad[recordStart] = 10;
    throwsInvalid(() => scanner.read(bad, c));
    assert.equal(c.length, before);
  });

  it('never throws anything but invalid-avro on corrupted bytes, and reads what avsc reads when avsc accepts them', () => {
    const values = keyedValues(200);
    const scanner = KeyedScanner.forPlans(plans);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const buf = Buffer.from(values[rand(values.length)]);
      for (let k = 0; k <= rand(3); k++) buf[rand(buf.length)] = rand(256);
      let v: KeyedAuditRecord | null = null;
      try {
        v = codec.decode(buf);
      } catch {
        v = null;
      }
      const c = new CollectedValues();
      let ok = true;
      try {
        scanner.read(buf, c);
      } catch (e) {
        assert.ok(e instanceof BadInputError && e.reason === 'invalid-avro', String(e));
        ok = false;
      }
      if (v !== null && ok && v.rule === plan.id) {
        accepted++;
        assert.deepEqual(scanned(c, 0, c.length), expected(v, plan));
      }
    }
    assert.ok(accepted > 100, `${accepted} corrupted values accepted by both`);
  });
});
