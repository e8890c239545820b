import assert from 'node:assert/strict';
import { KeyedCodec } from '../../src/ingest/keyed-codec';
import { routeRecords, RouteOptions } from '../../src/ingest/route';
import { SourceRecord } from '../../src/ingest/dead-letter';
import { loadRules } from '../../src/rules/load-rules';
import { mulberry32 } from '../helpers/audit-generator';

const REASONS = new Set([
  'empty', 'too-large', 'invalid-utf8', 'invalid-json', 'too-deep', 'not-an-object', 'not-an-audit-event',
  'unsupported-format', 'wrong-type', 'invalid-field', 'missing-event-time', 'invalid-timestamp', 'empty-list', 'unencodable',
]);

const GOOD = {
  kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: 'f-1', stage: 'ResponseComplete',
  requestURI: '/api/v1/namespaces/default/pods', verb: 'list', user: { username: 'alice', groups: ['dev'] },
  sourceIPs: ['10.0.0.1'], userAgent: 'kubectl', objectRef: { resource: 'pods', namespace: 'default' },
  responseStatus: { code: 403, message: 'forbidden' }, requestReceivedTimestamp: '2026-01-05T10:00:00.000001Z',
  stageTimestamp: '2026-01-05T10:00:00.1Z', annotations: { 'authorization.k8s.io/decision': 'forbid' },
};

type Maker = (rnd: () => number) => { value: Buffer; malformed: boolean };

const pick = <T>(rnd: () => number, xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
const WEIRD: unknown[] = [null, 0, -1, 1.5, 2 ** 40, true, '', 'x', [], [1, 'a'], {}, { a: { b: [] } }, '\u0000', '\ud800'];
const PATHS: string[][] = [
  ['kind'], ['verb'], ['stage'], ['requestURI'], ['user'], ['user', 'username'], ['user', 'groups'], ['sourceIPs'],
  ['objectRef'], ['objectRef', 'resource'], ['responseStatus'], ['responseStatus', 'code'], ['annotations'],
  ['requestReceivedTimestamp'], ['stageTimestamp'], ['userAgent'], ['auditID'],
];

function mutate(rnd: () => number): Record<string, unknown> {
  const doc = JSON.parse(JSON.stringify(GOOD)) as Record<string, unknown>;
  const path = pick(rnd, PATHS);
  let node = doc;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string, unknown>;
  node[path[path.length - 1]] = pick(rnd, WEIRD);
  return doc;
}

const MAKERS: Array<[string, Maker]> = [
  ['truncated JSON', (rnd) => {
    const text = JSON.stringify(GOOD);
    return { value: Buffer.from(text.slice(0, Math.floor(rnd() * (text.length - 1)))), malformed: true };
  }],
  ['wrong types', (rnd) => ({ value: Buffer.from(JSON.stringify(mutate(rnd))), malformed: false })],
  ['huge strings', (rnd) => {
    const size = pick(rnd, [100_000, 600_000, 1_100_000]);
    const field = pick(rnd, ['requestURI', 'userAgent', 'verb', 'auditID']);
    return { value: Buffer.from(JSON.stringify({ ...GOOD, [field]: 'A'.repeat(size) })), malformed: size > 1_048_000 };
  }],
  ['deep nesting', (rnd) => {
    const d = 65 + Math.floor(rnd() * 5000);
    return { value: Buffer.from(`{"kind":"Event","x":${'['.repeat(d)}${']'.repeat(d)}}`), malformed: true };
  }],
  ['invalid UTF-8', (rnd) => {
    const good = Buffer.from(JSON.stringify(GOOD));
    const at = Math.floor(rnd() * good.length);
    return { value: Buffer.concat([good.subarray(0, at), Buffer.from([pick(rnd, [0xc3, 0xff, 0xed, 0xf8])]), good.subarray(at)]), malformed: true };
  }],
  ['binary', (rnd) => {
    const b = Buffer.alloc(1 + Math.floor(rnd() * 512));
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
    b[0] = 0x80 | b[0]; // never starts like ASCII JSON
    return { value: b, malformed: true };
  }],
  ['JSON that is not an audit event', (rnd) => ({
    value: Buffer.from(JSON.stringify(pick(rnd, [{ hello: 'world' }, [1, 2, 3], 'Event', 42, { kind: 'Pod' }, { kind: 'EventList', items: 'no' }, { records: [{}] }]))),
    malformed: true,
  })],
];

describe('fuzz: 10,000 generated malformed inputs through the router step', function () {
  this.timeout(120_000);

  it('never throws, accounts for every input, and dead-letters each bad one with a reason', () => {
    const opts: RouteOptions = {
      plans: loadRules(''), codec: new KeyedCodec(), timeField: 'requestReceivedTimestamp',
      namespaceHeader: 'kade.namespace', defaultNamespace: 'default', maxMessageBytes: 1_048_576,
    };
    const rnd = mulberry32(4242);
    const perKind = new Map<string, { inputs: number; dead: number }>();
    for (let i = 0; i < 10_000; i++) {
      const [kind, make] = MAKERS[i % MAKERS.length];
      const { value, malformed } = make(rnd);
      const src: SourceRecord = { topic: 'raw', partition: 0, offset: String(i), key: Buffer.from(`k${i}`), value, headers: { h: 'v' } };
      let res;
      try {
        res = routeRecords([src], opts);
      } catch (err) {
        assert.fail(`${kind} #${i} threw ${(err as Error).stack}`);
      }
      // every event ends as exactly one outcome: one per input, or one per element of a JSON array
      let items = 1;
      try {
        const doc = JSON.parse(value.toString('utf8')) as unknown;
        if (Array.isArray(doc) && doc.length > 0) items = doc.length;
      } catch {
        // not JSON: one input, one outcome
      }
      assert.equal(res.routed + res.filtered + res.deadLettered, items, `${kind} #${i} accounted once`);
      if (malformed) assert.equal(res.deadLettered, items, `${kind} #${i} must be dead-lettered`);
      for (const d of res.dlq) {
        const reason = d.headers?.['kade.error.reason']?.toString() ?? '';
        assert.ok(REASONS.has(reason), `${kind} #${i}: unknown reason "${reason}"`);
        assert.ok(Buffer.isBuffer(d.value) && d.value.equals(value), 'original bytes kept');
        assert.equal(d.key?.toString(), `k${i}`);
      }
      for (const k of res.keyed) assert.ok((k.value as Buffer).length < 64 * 1024 || kind === 'huge strings', `${kind}: keyed record size`);
      const stat = perKind.get(kind) ?? { inputs: 0, dead: 0 };
      stat.inputs++;
      stat.dead += res.deadLettered;
      perKind.set(kind, stat);
    }
    assert.equal([...perKind.values()].reduce((s, k) => s + k.inputs, 0), 10_000);
    // the wrong-type mutations hit fields that must be strings/arrays/objects: most are bad input
    const wrong = perKind.get('wrong types');
    assert.ok(wrong !== undefined && wrong.dead > wrong.inputs / 3, `wrong types mostly dead-lettered (${wrong?.dead}/${wrong?.inputs})`);
  });
});
