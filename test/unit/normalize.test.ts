import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { AuditRecord } from '../../src/ingest/audit-record';
import { BadInputError } from '../../src/ingest/errors';
import {
  DecodedMessage, NormalizeOptions, decodeRawMessage, normalizeEvent, parseTimestampMicros,
} from '../../src/ingest/normalize';
import { packageRoot } from '../../src/util/package-root';

/**
 * Normalization of every JSON audit Event in test/fixtures (see test/fixtures/NOTICE.md), plus
 * the bad inputs the router must turn into dead letters instead of crashing.
 *
 * Expectations are derived from the raw JSON with code that shares nothing with normalize.ts
 * (the timestamp oracle uses Date.UTC on regex-split fields, not Date.parse).
 */

const FIXTURES = path.join(packageRoot(), 'test', 'fixtures');
const OPTS: NormalizeOptions = { timeField: 'requestReceivedTimestamp', namespace: 'default', maxMessageBytes: 4 << 20 };
const DECISION = 'authorization.k8s.io/decision';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One Kafka value built from a fixture file and the raw Events it must normalize into. */
interface Message {
  label: string;
  value: Buffer;
  events: Raw[];
}

function fixture(rel: string): string {
  return readFileSync(path.join(FIXTURES, rel), 'utf8');
}

/** A file holding one JSON document is one message; otherwise it is NDJSON, one message a line. */
function messagesOf(rel: string): Message[] {
  const text = fixture(rel);
  try {
    const doc = JSON.parse(text) as Raw;
    return [{ label: rel, value: Buffer.from(text, 'utf8'), events: [doc] }];
  } catch {
    return text.split('\n').filter((l) => l.trim().length > 0).map((line, i) => ({
      label: `${rel}:${i + 1}`, value: Buffer.from(line, 'utf8'), events: [JSON.parse(line) as Raw],
    }));
  }
}

const isGke = (e: Raw): boolean => e.protoPayload !== undefined;

/** Independent RFC 3339 (UTC 'Z' only, as in the corpus) -> microseconds, through Date.UTC. */
function oracleMicros(text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z$/.exec(text);
  assert.ok(m, `fixture timestamp ${text} is not a UTC RFC 3339 time`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const frac = (m[7] ?? '').padEnd(6, '0').slice(0, 6);
  return Date.UTC(y, mo - 1, d, h, mi, s) * 1000 + Number(frac);
}

/** What normalize.ts must make of a raw Event, written straight from the audit.k8s.io schema. */
function expectedRecord(e: Raw, namespace: string): AuditRecord {
  const user = (u: Raw | undefined) => (u === undefined ? null : {
    username: u.username ?? null, uid: u.uid ?? null, groups: u.groups ?? [],
  });
  const legacy = e.timestamp as string | undefined;
  const rrt = (e.requestReceivedTimestamp as string | undefined) ?? legacy;
  const st = (e.stageTimestamp as string | undefined) ?? legacy;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries((e.annotations ?? {}) as Record<string, string>)) if (v !== '') annotations[k] = v;
  const o = e.objectRef as Raw | undefined;
  const rs = e.responseStatus as Raw | undefined;
  return {
    auditID: e.auditID ?? null,
    apiVersion: e.apiVersion ?? null,
    level: e.level ?? null,
    stage: e.stage ?? null,
    verb: e.verb ?? null,
    requestURI: e.requestURI ?? null,
    user: user(e.user) ?? { username: null, uid: null, groups: [] },
    impersonatedUser: user(e.impersonatedUser),
    sourceIPs: e.sourceIPs ?? [],
    userAgent: e.userAgent ?? null,
    objectRef: o === undefined ? null : {
      resource: o.resource ?? null, subresource: o.subresource ?? null, namespace: o.namespace ?? null,
      name: o.name ?? null, apiGroup: o.apiGroup ?? null, apiVersion: o.apiVersion ?? null,
    },
    responseStatus: rs === undefined ? null : {
      code: rs.code ?? null, status: rs.status ?? null, reason: rs.reason ?? null, message: rs.message ?? null,
    },
    annotations,
    requestReceivedTimestamp: rrt === undefined ? null : oracleMicros(rrt),
    stageTimestamp: st === undefined ? null : oracleMicros(st),
    dataStreamNamespace: namespace,
  };
}

function expectedEventTime(e: Raw, timeField: 'requestReceivedTimestamp' | 'stageTimestamp'): number {
  const other = timeField === 'requestReceivedTimestamp' ? 'stageTimestamp' : 'requestReceivedTimestamp';
  const text = (e[timeField] ?? e[other] ?? e.timestamp ?? e.metadata?.creationTimestamp) as string;
  return Math.floor(oracleMicros(text) / 1000);
}

/** Asserts the fields a reader cares about one by one (clear failures), then the whole record. */
function assertNormalized(label: string, got: AuditRecord, e: Raw, namespace = 'default'): void {
  const want = expectedRecord(e, namespace);
  const at = (f: string) => `${label}: ${f}`;
  assert.equal(got.user.username, e.user?.username ?? null, at('user.username'));
  assert.deepEqual(got.user.groups, e.user?.groups ?? [], at('user.groups'));
  assert.deepEqual(got.sourceIPs, e.sourceIPs ?? [], at('sourceIPs'));
  assert.equal(got.verb, e.verb, at('verb'));
  assert.equal(got.stage, e.stage, at('stage'));
  assert.equal(got.requestURI, e.requestURI, at('requestURI'));
  if (e.objectRef === undefined) assert.equal(got.objectRef, null, at('objectRef absent'));
  else assert.equal(got.objectRef?.resource, e.objectRef.resource ?? null, at('objectRef.resource'));
  assert.equal(got.responseStatus?.code ?? null, e.responseStatus?.code ?? null, at('responseStatus.code'));
  assert.equal(got.annotations[DECISION], e.annotations?.[DECISION], at('decision annotation'));
  assert.deepEqual(got, want, at('whole record'));
}

// ---------------------------------------------------------------------------------------------

const FALCO_DIR = 'falco-k8s-audit-trace-files';
const falcoFiles = readdirSync(path.join(FIXTURES, FALCO_DIR)).filter((f) => f.endsWith('.json')).sort();

/** The AKS envelopes: the Events inside, each properties.log string parsed. */
function aksEvents(doc: Raw): Raw[] {
  const records = (doc.records ?? [doc]) as Raw[];
  return records.map((r) => JSON.parse(r.properties.log as string) as Raw);
}

const CORPUS: Message[] = [
  ...falcoFiles.flatMap((f) => messagesOf(`${FALCO_DIR}/${f}`)),
  ...messagesOf('audit2rbac/demo.log'),
  ...messagesOf('elastic-integrations/test-audit.log'),
  ...messagesOf('sysdiglabs-aks-audit-log/events-extracted.jsonl'),
  ...messagesOf('sysdiglabs-aks-audit-log/event.json').map((m) => ({ ...m, events: aksEvents(m.events[0]) })),
  ...messagesOf('elastic-integrations/test-kube-audit.log').map((m) => ({ ...m, events: aksEvents(m.events[0]) })),
];

describe('normalize: every Event of the fixture corpus', () => {
  it('the corpus is what NOTICE.md says: 46 falco files, 136 Events and 1 GKE entry', () => {
    assert.equal(falcoFiles.length, 46);
    const all = CORPUS.flatMap((m) => m.events);
    assert.equal(all.filter(isGke).length, 1);
    assert.equal(all.filter((e) => !isGke(e)).length, 136);
    // falco 51 + audit2rbac 37 + elastic 3 + extracted 22 + AKS envelope 22 + AKS single record 1
    assert.equal(all.filter((e) => e.apiVersion === 'audit.k8s.io/v1beta1').length, 9);
    assert.equal(all.filter((e) => e.apiVersion === undefined && !isGke(e)).length, 38);
  });

  for (const msg of CORPUS) {
    it(`decodes ${msg.label} (${msg.events.length} event${msg.events.length === 1 ? '' : 's'})`, () => {
      const out = decodeRawMessage(msg.value, OPTS);
      if (msg.events.every(isGke)) {
        // The GKE Cloud Logging LogEntry (protoPayload form) is reported, not dropped or thrown.
        assert.equal(out.events.length, 0);
        assert.equal(out.failures.length, 1);
        assert.equal(out.failures[0].index, 0);
        assert.ok(out.failures[0].error instanceof BadInputError);
        assert.equal(out.failures[0].error.reason, 'unsupported-format');
        return;
      }
      assert.deepEqual(out.failures, [], `${msg.label}: no failures`);
      assert.equal(out.events.length, msg.events.length);
      out.events.forEach((ev, i) => {
        const raw = msg.events[i];
        const label = `${msg.label}#${i}`;
        assertNormalized(label, ev.record, raw);
        assert.equal(ev.eventTime, expectedEventTime(raw, 'requestReceivedTimestamp'), `${label}: eventTime`);
        if (raw.requestReceivedTimestamp !== undefined) {
          // requestReceivedTimestamp wins over the legacy v1beta1 `timestamp` (whole seconds in falco).
          assert.equal(ev.eventTime, Math.floor(oracleMicros(raw.requestReceivedTimestamp) / 1000));
        }
      });
    });
  }

  it('normalizeEvent gives the same record as decodeRawMessage for every Event object', () => {
    let n = 0;
    for (const msg of CORPUS) {
      for (const raw of msg.events.filter((e) => !isGke(e))) {
        const got = normalizeEvent(raw, { timeField: 'requestReceivedTimestamp', namespace: 'ns-x' });
        assertNormalized(msg.label, got.record, raw, 'ns-x');
        n++;
      }
    }
    assert.equal(n, 136);
  });

  it('each AKS Event Hubs record is also accepted alone (single-record form)', () => {
    const doc = JSON.parse(fixture('sysdiglabs-aks-audit-log/event.json')) as Raw;
    const records = doc.records as Raw[];
    assert.equal(records.length, 22);
    records.forEach((r, i) => {
      const out = decodeRawMessage(Buffer.from(JSON.stringify(r)), OPTS);
      assert.equal(out.failures.length, 0);
      assert.equal(out.events.length, 1);
      assertNormalized(`event.json record ${i}`, out.events[0].record, JSON.parse(r.properties.log as string) as Raw);
    });
  });

  it('the AKS envelope and the extracted NDJSON give identical records', () => {
    const envelope = decodeRawMessage(Buffer.from(fixture('sysdiglabs-aks-audit-log/event.json')), OPTS);
    const lines = fixture('sysdiglabs-aks-audit-log/events-extracted.jsonl').split('\n').filter((l) => l.length > 0);
    assert.equal(envelope.events.length, lines.length);
    lines.forEach((l, i) => {
      const single = decodeRawMessage(Buffer.from(l), OPTS).events[0];
      assert.equal(single.index, 0);
      assert.equal(envelope.events[i].index, i, 'position inside the envelope');
      assert.deepEqual({ ...single, index: i }, envelope.events[i]);
    });
  });

  it('an EventList of the 37 audit2rbac Events keeps them all, in order', () => {
    const items = fixture('audit2rbac/demo.log').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Raw);
    const list = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items };
    const out = decodeRawMessage(Buffer.from(JSON.stringify(list)), OPTS);
    assert.equal(out.failures.length, 0);
    assert.equal(out.events.length, 37);
    out.events.forEach((ev, i) => assertNormalized(`EventList item ${i}`, ev.record, items[i]));
  });

  it('the GKE line via normalizeEvent: unsupported-format', () => {
    const gke = fixture('elastic-integrations/test-audit.log').split('\n')[3];
    assert.throws(() => normalizeEvent(JSON.parse(gke), OPTS),
      (err: unknown) => err instanceof BadInputError && err.reason === 'unsupported-format');
  });
});

describe('normalize: specific fields of the fixtures', () => {
  const elastic = fixture('elastic-integrations/test-audit.log').split('\n');

  it('drops empty annotation values ("authorization.k8s.io/reason": "")', () => {
    const raw = JSON.parse(elastic[0]) as Raw;
    assert.equal(raw.annotations['authorization.k8s.io/reason'], '');
    const { record } = decodeRawMessage(Buffer.from(elastic[0]), OPTS).events[0];
    assert.deepEqual(record.annotations, { [DECISION]: 'allow' });
    assert.equal(Object.prototype.hasOwnProperty.call(record.annotations, 'authorization.k8s.io/reason'), false);
  });

  it('keeps a non-empty reason annotation verbatim', () => {
    const { record } = decodeRawMessage(Buffer.from(elastic[1]), OPTS).events[0];
    assert.equal(record.annotations['authorization.k8s.io/reason'],
      'RBAC: allowed by RoleBinding "elastic-agent/kube-system" of Role "elastic-agent" to ServiceAccount "elastic-agent/kube-system"');
  });

  it('keeps microseconds exactly: 2025-03-04T06:22:18.819232Z', () => {
    const { record, eventTime } = decodeRawMessage(Buffer.from(elastic[0]), OPTS).events[0];
    assert.equal(record.requestReceivedTimestamp, 1741069338819232);
    assert.equal(record.stageTimestamp, 1741069338822532);
    assert.equal(eventTime, 1741069338819);
  });

  it('timeField stageTimestamp picks stageTimestamp for every fixture Event', () => {
    let n = 0;
    for (const msg of CORPUS) {
      if (msg.events.every(isGke)) continue;
      const out = decodeRawMessage(msg.value, { ...OPTS, timeField: 'stageTimestamp' });
      out.events.forEach((ev, i) => {
        assert.equal(ev.eventTime, expectedEventTime(msg.events[i], 'stageTimestamp'), msg.label);
        n++;
      });
    }
    assert.equal(n, 136);
    const { eventTime } = decodeRawMessage(Buffer.from(elastic[0]), { ...OPTS, timeField: 'stageTimestamp' }).events[0];
    assert.equal(eventTime, 1741069338822);
  });

  it('audit2rbac (no requestReceivedTimestamp) falls back to the legacy `timestamp`', () => {
    const line = fixture('audit2rbac/demo.log').split('\n')[0];
    const raw = JSON.parse(line) as Raw;
    assert.equal(raw.requestReceivedTimestamp, undefined);
    for (const timeField of ['requestReceivedTimestamp', 'stageTimestamp'] as const) {
      const { record, eventTime } = decodeRawMessage(Buffer.from(line), { ...OPTS, timeField }).events[0];
      assert.equal(eventTime, Date.UTC(2017, 8, 11, 19, 55, 5));
      assert.equal(record.requestReceivedTimestamp, Date.UTC(2017, 8, 11, 19, 55, 5) * 1000);
      assert.equal(record.stageTimestamp, Date.UTC(2017, 8, 11, 19, 55, 5) * 1000);
    }
    const { record } = decodeRawMessage(Buffer.from(line), OPTS).events[0];
    assert.deepEqual(record.impersonatedUser, { username: 'bob', uid: null, groups: ['system:authenticated'] });
    assert.equal(record.responseStatus?.code, 403);
    assert.deepEqual(record.annotations, {});
  });

  it('a non-resource URL (audit2rbac "/api") has no objectRef', () => {
    const line = fixture('audit2rbac/demo.log').split('\n').find((l) => (JSON.parse(l) as Raw).requestURI === '/api');
    assert.ok(line);
    const { record } = decodeRawMessage(Buffer.from(line), OPTS).events[0];
    assert.equal(record.requestURI, '/api');
    assert.equal(record.objectRef, null);
  });

  it('falco v1beta1 Event without apiVersion-v1 is accepted; kind Event alone suffices', () => {
    const v1beta1 = JSON.parse(fixture(`${FALCO_DIR}/anonymous_creates_namespace_foo.json`)) as Raw;
    assert.equal(v1beta1.apiVersion, 'audit.k8s.io/v1beta1');
    assert.equal(normalizeEvent(v1beta1, OPTS).record.apiVersion, 'audit.k8s.io/v1beta1');
    const noVersion = JSON.parse(fixture(`${FALCO_DIR}/create_deployment.json`)) as Raw;
    assert.equal(noVersion.apiVersion, undefined);
    assert.equal(normalizeEvent(noVersion, OPTS).record.apiVersion, null);
  });

  it('the namespace option becomes dataStreamNamespace', () => {
    const out = decodeRawMessage(Buffer.from(elastic[0]), { ...OPTS, namespace: 'prod-eu' });
    assert.equal(out.events[0].record.dataStreamNamespace, 'prod-eu');
  });
});

describe('normalize: parseTimestampMicros', () => {
  const cases: Array<[string, number]> = [
    ['2025-03-04T06:22:18.819232Z', 1741069338819232],
    ['2025-03-04T06:22:18Z', 1741069338000000],
    ['2025-03-04T06:22:18.8Z', 1741069338800000],
    ['2025-03-04T06:22:18.819Z', 1741069338819000],
    ['2025-03-04T06:22:18.000001Z', 1741069338000001],
    // nanoseconds are truncated, never rounded
    ['2025-10-07T16:19:19.647880072Z', 1759853959647880],
    ['2025-03-04T06:22:18.819232999Z', 1741069338819232],
    // offsets: the same instant
    ['2025-03-04T07:22:18.819232+01:00', 1741069338819232],
    ['2025-03-04T01:52:18.819232-04:30', 1741069338819232],
    ['2025-03-04T06:22:18.819232+00:00', 1741069338819232],
    ['2025-03-04T06:22:18.819232-00:00', 1741069338819232],
    ['2025-03-05T05:22:18.819232+23:00', 1741069338819232],
    // lower-case z is RFC 3339
    ['2025-03-04T06:22:18.819232z', 1741069338819232],
    // the epoch, and before it
    ['1970-01-01T00:00:00Z', 0],
    ['1969-12-31T23:59:59.5Z', -500000],
    ['2016-02-29T12:00:00Z', Date.UTC(2016, 1, 29, 12) * 1000],
  ];
  for (const [text, micros] of cases) {
    it(`${text} -> ${micros}`, () => assert.equal(parseTimestampMicros(text), micros));
  }

  const invalid = [
    '', 'garbage', '2025-03-04', '2025-03-04T06:22:18', '2025-03-04 06:22:18Z', '2025-03-04T06:22Z',
    '2025-03-04T06:22:18.Z', '2025-03-04T06:22:18.1234567890Z', '2025-03-04T06:22:18+0100',
    '2025-03-04T06:22:18+01', '2025-13-01T00:00:00Z', '2025-03-04T23:60:00Z', '2025-03-04T06:22:18+24:00',
    ' 2025-03-04T06:22:18Z', '2025-03-04T06:22:18Z ', '1741069338',
  ];
  for (const text of invalid) {
    it(`rejects ${JSON.stringify(text)}`, () => assert.equal(parseTimestampMicros(text), null));
  }

  // KNOWN BUG (see the test report): Date.parse rolls impossible calendar dates over instead of
  // rejecting them, so these "RFC 3339" times are accepted and land on another day.
  it('rejects calendar-impossible dates (2025-02-30, 2025-04-31, 24:00:00)', () => {
    assert.equal(parseTimestampMicros('2025-02-30T00:00:00Z'), null);
    assert.equal(parseTimestampMicros('2025-04-31T12:00:00Z'), null);
    assert.equal(parseTimestampMicros('2025-03-04T24:00:00Z'), null);
  });

  it('boundaries: leap years, month ends, last second, offsets up to 23:59, fractions of 1 to 9 digits', () => {
    const ok: Array<[string, number]> = [
      ['2000-02-29T00:00:00Z', Date.UTC(2000, 1, 29) * 1000],
      ['2024-02-29T23:59:59Z', Date.UTC(2024, 1, 29, 23, 59, 59) * 1000],
      ['2025-12-31T23:59:59.999999Z', Date.UTC(2025, 11, 31, 23, 59, 59) * 1000 + 999999],
      ['2025-04-30T00:00:00Z', Date.UTC(2025, 3, 30) * 1000],
      ['2025-01-31T00:00:00Z', Date.UTC(2025, 0, 31) * 1000],
      ['2025-03-04T06:22:18+23:59', (Date.UTC(2025, 2, 4, 6, 22, 18) - (23 * 60 + 59) * 60_000) * 1000],
      ['2025-03-04T06:22:18-23:59', (Date.UTC(2025, 2, 4, 6, 22, 18) + (23 * 60 + 59) * 60_000) * 1000],
      ['2025-03-04T06:22:18.1Z', Date.UTC(2025, 2, 4, 6, 22, 18) * 1000 + 100000],
      ['2025-03-04T06:22:18.1234567Z', Date.UTC(2025, 2, 4, 6, 22, 18) * 1000 + 123456],
      ['2025-03-04T06:22:18.000000000Z', Date.UTC(2025, 2, 4, 6, 22, 18) * 1000],
      ['0100-01-01T00:00:00Z', Date.UTC(100, 0, 1) * 1000],
      ['1600-03-01T00:00:00Z', Date.UTC(1600, 2, 1) * 1000],
      ['9999-12-31T23:59:59Z', Date.UTC(9999, 11, 31, 23, 59, 59) * 1000],
    ];
    for (const [text, micros] of ok) assert.equal(parseTimestampMicros(text), micros, text);
    const bad = [
      '1900-02-29T00:00:00Z', '2023-02-29T00:00:00Z', '2025-02-30T00:00:00Z', '2025-06-31T00:00:00Z',
      '2025-00-10T00:00:00Z', '2025-01-00T00:00:00Z', '2025-01-32T00:00:00Z', '2025-03-04T23:59:60Z',
      '2025-03-04T06:22:18+23:60', '2025-03-04T06:22:18-24:00', '2025-03-04T06:22:18+1:00',
      '2025-03-04t06:22:18Z', '2025-03-04T06:22:18.+01:00', '2025-03-04T06:22:18.12a4Z', '2025-03-04T06:22:18ZZ',
      '2025-03-04T06:22:18+01:00Z', '2025-03-04T06:22:18-01:0a', '2025-3-04T06:22:18Z', '+02025-03-04T06:22:18Z',
      '２０２５-03-04T06:22:18Z', '2025/03/04T06:22:18Z', '2025-03-04T06-22-18Z', '0099-12-31T23:59:59Z',
    ];
    for (const text of bad) assert.equal(parseTimestampMicros(text), null, text);
  });

  it('agrees with a regex + Date.parse oracle on 20000 mutated timestamps', () => {
    // The former implementation, kept as the oracle of the hand-written parser.
    const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;
    const oracle = (text: string): number | null => {
      const m = RFC3339.exec(text);
      if (m === null) return null;
      const seconds = Date.parse(`${m[1]}${m[3].toUpperCase()}`);
      if (Number.isNaN(seconds)) return null;
      const [y, mo, d, h, mi, se] = m[1].split(/[-T:]/).map(Number);
      const back = new Date(Date.UTC(y, mo - 1, d, h, mi, se));
      if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h) return null;
      return seconds * 1000 + (m[2] === undefined ? 0 : Number(m[2].padEnd(6, '0').slice(0, 6)));
    };
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pad = (v: number, w: number): string => String(v).padStart(w, '0');
    const alphabet = '0123456789-:.TtZz+ x';
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const frac = rnd(3) === 0 ? '' : `.${Array.from({ length: 1 + rnd(10) }, () => rnd(10)).join('')}`;
      const zone = ['Z', 'z', `+${pad(rnd(26), 2)}:${pad(rnd(62), 2)}`, `-${pad(rnd(26), 2)}:${pad(rnd(62), 2)}`][rnd(4)];
      let text = `${pad(rnd(3) === 0 ? rnd(10000) : 1950 + rnd(100), 4)}-${pad(rnd(14), 2)}-${pad(rnd(33), 2)}T`
        + `${pad(rnd(26), 2)}:${pad(rnd(62), 2)}:${pad(rnd(62), 2)}${frac}${zone}`;
      if (rnd(4) === 0) {
        const at = rnd(text.length + 1);
        const op = rnd(3);
        const c = alphabet[rnd(alphabet.length)];
        text = op === 0 ? text.slice(0, at) + c + text.slice(at + 1) : op === 1 ? text.slice(0, at) + c + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
      }
      const want = oracle(text);
      assert.equal(parseTimestampMicros(text), want, text);
      if (want !== null) accepted++;
    }
    assert.ok(accepted > 2000, `only ${accepted} valid timestamps generated`);
  });

  it('eventTime floors toward -infinity before the epoch', () => {
    const e = { kind: 'Event', stage: 'ResponseComplete', requestReceivedTimestamp: '1969-12-31T23:59:59.9995Z' };
    assert.equal(normalizeEvent(e, OPTS).eventTime, -1);
  });

  it('an offset timestamp in an Event gives the UTC event time', () => {
    const e = { kind: 'Event', requestReceivedTimestamp: '2025-03-04T08:22:18.819232+02:00' };
    const { record, eventTime } = normalizeEvent(e, OPTS);
    assert.equal(record.requestReceivedTimestamp, 1741069338819232);
    assert.equal(eventTime, 1741069338819);
  });
});

// ---------------------------------------------------------------------------------------------

const GOOD: Raw = {
  kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: 'a-1', stage: 'ResponseComplete',
  requestURI: '/api/v1/namespaces/default/pods', verb: 'list',
  user: { username: 'alice', groups: ['system:authenticated'] }, sourceIPs: ['10.0.0.1'],
  objectRef: { resource: 'pods', namespace: 'default', apiVersion: 'v1' }, responseStatus: { metadata: {}, code: 200 },
  requestReceivedTimestamp: '2025-03-04T06:22:18.819232Z', stageTimestamp: '2025-03-04T06:22:18.822532Z',
  annotations: { [DECISION]: 'allow' },
};

const buf = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v), 'utf8');

/** decodeRawMessage must throw a BadInputError with this reason (never another error). */
function assertThrowsReason(value: Buffer | null, reason: string, opts: NormalizeOptions = OPTS): void {
  assert.throws(() => decodeRawMessage(value, opts), (err: unknown) => {
    assert.ok(err instanceof BadInputError, `expected BadInputError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.equal(err.retriable, false);
    return true;
  });
}

/** A single Event that decodes but fails with this reason, reported at index 0. */
function assertItemFails(event: unknown, reason: string, messagePart?: string): void {
  const out = decodeRawMessage(buf(event), OPTS);
  assert.equal(out.events.length, 0);
  assert.equal(out.failures.length, 1, JSON.stringify(out.failures.map((f) => f.error.message)));
  assert.equal(out.failures[0].index, 0);
  assert.ok(out.failures[0].error instanceof BadInputError);
  assert.equal(out.failures[0].error.reason, reason, out.failures[0].error.message);
  if (messagePart !== undefined) assert.match(out.failures[0].error.message, new RegExp(messagePart.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  // normalizeEvent on the parsed object agrees
  assert.throws(() => normalizeEvent(event, OPTS), (err: unknown) => err instanceof BadInputError && err.reason === reason);
}

/** Either thrown or reported as an item failure, but always a BadInputError. */
function badInputOutcome(value: Buffer, opts: NormalizeOptions = OPTS): { thrown: BadInputError | null; out: DecodedMessage | null } {
  try {
    return { thrown: null, out: decodeRawMessage(value, opts) };
  } catch (err) {
    assert.ok(err instanceof BadInputError, `expected BadInputError, got ${(err as Error)?.constructor?.name}: ${String(err)}`);
    return { thrown: err, out: null };
  }
}

describe('normalize: bad input', () => {
  it('the GOOD template itself normalizes', () => {
    const out = decodeRawMessage(buf(GOOD), OPTS);
    assert.equal(out.failures.length, 0);
    assertNormalized('GOOD', out.events[0].record, GOOD);
  });

  it('empty or null value -> empty', () => {
    assertThrowsReason(Buffer.alloc(0), 'empty');
    assertThrowsReason(null, 'empty');
  });

  it('invalid UTF-8 -> invalid-utf8', () => {
    assertThrowsReason(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'invalid-utf8');
    // overlong "/" and an encoded surrogate, inside otherwise valid JSON
    assertThrowsReason(Buffer.concat([buf('{"kind":"Event","verb":"'), Buffer.from([0xc0, 0xaf]), buf('"}')]), 'invalid-utf8');
    assertThrowsReason(Buffer.concat([buf('{"kind":"Event","verb":"'), Buffer.from([0xed, 0xa0, 0x80]), buf('"}')]), 'invalid-utf8');
    // a truncated multi-byte sequence at the end
    assertThrowsReason(Buffer.concat([buf(GOOD), Buffer.from([0xe2, 0x82])]), 'invalid-utf8');
  });

  it('a UTF-8 BOM is tolerated', () => {
    const out = decodeRawMessage(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf(GOOD)]), OPTS);
    assert.equal(out.events.length, 1);
  });

  it('invalid JSON -> invalid-json', () => {
    for (const text of ['{', '{"kind":"Event",}', 'not json', '{"kind":"Event"} trailing', "{'kind':'Event'}", 'NaN']) {
      assertThrowsReason(buf(text), 'invalid-json');
    }
  });

  it('JSON nested 100k deep never escapes as RangeError', () => {
    const depth = 100_000;
    const big: NormalizeOptions = { ...OPTS, maxMessageBytes: 16 << 20 };
    const docs = [
      '['.repeat(depth) + ']'.repeat(depth),
      '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
      `{"kind":"Event","requestReceivedTimestamp":"2025-03-04T06:22:18Z","user":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      `{"kind":"EventList","items":[${'['.repeat(depth)}${']'.repeat(depth)}]}`,
      JSON.stringify({ records: [{ properties: { log: '['.repeat(depth) + ']'.repeat(depth) } }] }),
    ];
    for (const doc of docs) {
      const { thrown, out } = badInputOutcome(buf(doc), big);
      if (thrown === null) {
        assert.ok(out !== null);
        assert.equal(out.events.length, 0);
        assert.equal(out.failures.length, 1);
        assert.ok(out.failures[0].error instanceof BadInputError);
      }
    }
    // Nesting is capped (64 levels by default) wherever it is, even in a field kade never reads...
    const withNested = (d: number): Buffer => buf(JSON.stringify({ ...GOOD, requestObject: 0 } as Raw).replace('"requestObject":0', `"requestObject":${'['.repeat(d)}${']'.repeat(d)}`));
    assertThrowsReason(withNested(depth), 'too-deep');
    assertThrowsReason(withNested(64), 'too-deep');
    // ...while ordinary nesting under the cap does not spoil the Event; brackets inside strings do not count.
    assert.equal(decodeRawMessage(withNested(60), big).events.length, 1);
    const inString = JSON.stringify({ ...GOOD, requestURI: `/x?q=${'['.repeat(500)}"\\` });
    assert.equal(decodeRawMessage(buf(inString), big).events.length, 1);
  });

  it('the depth cap holds at its boundary whether or not the text has more brackets than the cap', () => {
    const at = (maxJsonDepth: number): NormalizeOptions => ({ ...OPTS, maxJsonDepth });
    const good = JSON.stringify(GOOD);
    const own = (good.match(/[[{]/g) ?? []).length;
    const depthOf = (text: string): number => {
      let d = 0;
      let max = 0;
      for (const c of text.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
        if (c === '{' || c === '[') max = Math.max(max, ++d);
        else if (c === '}' || c === ']') d--;
      }
      return max;
    };
    const depth = depthOf(good);
    assert.ok(own > depth, 'the template has sibling brackets');
    // exactly at the cap: accepted, with few brackets (cap = count) and with many (cap = depth)
    assert.equal(decodeRawMessage(buf(good), at(own)).events.length, 1);
    assert.equal(decodeRawMessage(buf(good), at(depth)).events.length, 1);
    // one level past the cap: too-deep, both when the brackets are few and when they are many
    assertThrowsReason(buf(good), 'too-deep', at(depth - 1));
    const nested = (d: number): Buffer => buf(JSON.stringify({ ...GOOD, requestObject: 0 } as Raw).replace('"requestObject":0', `"requestObject":${'['.repeat(d)}${']'.repeat(d)}`));
    assertThrowsReason(nested(own), 'too-deep', at(own));
    assert.equal(decodeRawMessage(nested(own - depth), at(own)).events.length, 1);
    // brackets in strings count for the quick check only, never for the depth
    const inString = buf(JSON.stringify({ ...GOOD, userAgent: '{'.repeat(200) }));
    assert.equal(decodeRawMessage(inString, at(depth)).events.length, 1);
  });

  it('JSON that is not an object -> not-an-object', () => {
    for (const text of ['5', '-1.5', 'null', 'true', '"kind: Event"']) assertThrowsReason(buf(text), 'not-an-object');
  });

  it('a top-level array keeps its good events and reports the bad ones by index', () => {
    const arr = [GOOD, 5, { ...GOOD, verb: 5 }, { ...GOOD, auditID: 'a-2' }, { hello: 'world' }, null];
    const out = decodeRawMessage(buf(arr), OPTS);
    assert.deepEqual(out.events.map((e) => e.record.auditID), ['a-1', 'a-2']);
    assert.deepEqual(out.failures.map((f) => [f.index, f.error.reason]), [
      [1, 'not-an-object'], [2, 'wrong-type'], [4, 'not-an-audit-event'], [5, 'not-an-object'],
    ]);
    for (const f of out.failures) assert.ok(f.error instanceof BadInputError);
  });

  it('an EventList keeps its good items and reports the bad ones by index', () => {
    const list = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [{ ...GOOD, requestReceivedTimestamp: 'yesterday' }, GOOD, 'x'] };
    const out = decodeRawMessage(buf(list), OPTS);
    assert.equal(out.events.length, 1);
    assert.deepEqual(out.failures.map((f) => [f.index, f.error.reason]), [[0, 'invalid-timestamp'], [2, 'invalid-json']]);
  });

  it('an EventList whose items is not an array -> invalid-field', () => {
    assertThrowsReason(buf({ kind: 'EventList', items: { a: GOOD } }), 'invalid-field');
  });

  it('an empty EventList decodes to nothing (the router dead-letters it as empty-list)', () => {
    assert.deepEqual(decodeRawMessage(buf({ kind: 'EventList', items: [] }), OPTS), { events: [], failures: [] });
  });

  it('an AKS envelope reports an unreadable log string by index and keeps the rest', () => {
    const env = { records: [
      { properties: { log: JSON.stringify(GOOD) } },
      { properties: { log: '{"kind":"Event",' } },
      { properties: { log: JSON.stringify({ ...GOOD, sourceIPs: 'x' }) } },
      { category: 'kube-audit' },
    ] };
    const out = decodeRawMessage(buf(env), OPTS);
    assert.equal(out.events.length, 1);
    assert.deepEqual(out.failures.map((f) => [f.index, f.error.reason]), [[1, 'invalid-json'], [2, 'wrong-type'], [3, 'not-an-audit-event']]);
  });

  it('wrong types -> wrong-type, naming the field', () => {
    assertItemFails({ ...GOOD, verb: 5 }, 'wrong-type', 'verb');
    assertItemFails({ ...GOOD, sourceIPs: 'x' }, 'wrong-type', 'sourceIPs');
    assertItemFails({ ...GOOD, sourceIPs: ['10.0.0.1', 7] }, 'wrong-type', 'sourceIPs');
    assertItemFails({ ...GOOD, responseStatus: { code: '200' } }, 'wrong-type', 'responseStatus.code');
    assertItemFails({ ...GOOD, responseStatus: { code: 200.5 } }, 'wrong-type', 'responseStatus.code');
    assertItemFails({ ...GOOD, responseStatus: 'OK' }, 'wrong-type', 'responseStatus');
    assertItemFails({ ...GOOD, annotations: { [DECISION]: 1 } }, 'wrong-type', DECISION);
    assertItemFails({ ...GOOD, annotations: { [DECISION]: null } }, 'wrong-type', DECISION);
    assertItemFails({ ...GOOD, annotations: ['allow'] }, 'wrong-type', 'annotations');
    assertItemFails({ ...GOOD, user: 'alice' }, 'wrong-type', 'user');
    assertItemFails({ ...GOOD, user: { username: 42 } }, 'wrong-type', 'user.username');
    assertItemFails({ ...GOOD, user: { username: 'a', groups: 'system:masters' } }, 'wrong-type', 'user.groups');
    assertItemFails({ ...GOOD, objectRef: 'pods' }, 'wrong-type', 'objectRef');
    assertItemFails({ ...GOOD, objectRef: { resource: ['pods'] } }, 'wrong-type', 'objectRef.resource');
    assertItemFails({ ...GOOD, stage: true }, 'wrong-type', 'stage');
    assertItemFails({ ...GOOD, requestURI: {} }, 'wrong-type', 'requestURI');
    assertItemFails({ ...GOOD, requestReceivedTimestamp: 1741069338 }, 'wrong-type', 'requestReceivedTimestamp');
    assertItemFails({ ...GOOD, apiVersion: 1 }, 'wrong-type', 'apiVersion');
  });

  it('an unparseable timestamp -> invalid-timestamp, even in the time field not chosen', () => {
    assertItemFails({ ...GOOD, requestReceivedTimestamp: '2025-03-04 06:22:18' }, 'invalid-timestamp', 'requestReceivedTimestamp');
    assertItemFails({ ...GOOD, stageTimestamp: 'soon' }, 'invalid-timestamp', 'stageTimestamp');
  });

  it('null fields count as absent', () => {
    const e = { ...GOOD, verb: null, objectRef: null, responseStatus: null, annotations: null, sourceIPs: null, user: null };
    const { record } = normalizeEvent(e, OPTS);
    assert.equal(record.verb, null);
    assert.equal(record.objectRef, null);
    assert.equal(record.responseStatus, null);
    assert.deepEqual(record.annotations, {});
    assert.deepEqual(record.sourceIPs, []);
    assert.deepEqual(record.user, { username: null, uid: null, groups: [] });
  });

  it('missing timestamps -> missing-event-time (either time field)', () => {
    const { requestReceivedTimestamp: _a, stageTimestamp: _b, ...noTimes } = GOOD;
    assertItemFails(noTimes, 'missing-event-time');
    const out = decodeRawMessage(buf(noTimes), { ...OPTS, timeField: 'stageTimestamp' });
    assert.equal(out.failures[0].error.reason, 'missing-event-time');
  });

  it('the time-field fallbacks: other field, legacy timestamp, metadata.creationTimestamp', () => {
    const { requestReceivedTimestamp: _a, stageTimestamp: _b, ...noTimes } = GOOD;
    const only = (extra: Raw) => normalizeEvent({ ...noTimes, ...extra }, OPTS).eventTime;
    assert.equal(only({ stageTimestamp: '2025-03-04T06:22:18.822532Z' }), 1741069338822);
    assert.equal(only({ timestamp: '2025-03-04T06:22:19Z' }), 1741069339000);
    assert.equal(only({ metadata: { creationTimestamp: '2025-03-04T06:22:20Z' } }), 1741069340000);
    const onlyRrt = normalizeEvent({ ...noTimes, requestReceivedTimestamp: '2025-03-04T06:22:18.819232Z' },
      { timeField: 'stageTimestamp', namespace: 'default' });
    assert.equal(onlyRrt.eventTime, 1741069338819);
  });

  it('oversize -> too-large (the limit itself is allowed)', () => {
    const value = buf(GOOD);
    assertThrowsReason(value, 'too-large', { ...OPTS, maxMessageBytes: value.length - 1 });
    assert.equal(decodeRawMessage(value, { ...OPTS, maxMessageBytes: value.length }).events.length, 1);
    // bytes, not characters
    const wide = buf({ ...GOOD, userAgent: 'é'.repeat(100) });
    assertThrowsReason(wide, 'too-large', { ...OPTS, maxMessageBytes: wide.toString('utf8').length });
  });

  it('valid JSON that is not an audit event -> not-an-audit-event', () => {
    assertItemFails({ hello: 'world' }, 'not-an-audit-event');
    assertItemFails({ kind: 'Pod', apiVersion: 'v1', metadata: { name: 'p' } }, 'not-an-audit-event');
    assertItemFails({ kind: 'event', requestReceivedTimestamp: '2025-03-04T06:22:18Z' }, 'not-an-audit-event');
    assertItemFails({ apiVersion: 'audit.k8s.io', requestReceivedTimestamp: '2025-03-04T06:22:18Z' }, 'not-an-audit-event');
    assertItemFails({}, 'not-an-audit-event');
  });

  it('apiVersion audit.k8s.io/* without kind is still an Event', () => {
    const { kind: _k, ...noKind } = GOOD;
    assert.equal(normalizeEvent(noKind, OPTS).record.auditID, 'a-1');
  });

  it('normalizeEvent rejects non-objects with not-an-object', () => {
    for (const v of [undefined, null, 5, 'x', [GOOD]]) {
      assert.throws(() => normalizeEvent(v, OPTS), (err: unknown) => err instanceof BadInputError && err.reason === 'not-an-object');
    }
  });
});
