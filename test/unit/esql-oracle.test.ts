import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { oracleAlerts, parseRfc3339Ms, type OracleOptions } from '../helpers/esql-oracle';

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const P = 60_000;
const W = 360_000;
const OPTS: OracleOptions = { windowMs: W, hopMs: P, suppressMs: W };

type Ev = Record<string, unknown>;

function iso(ms: number, micros = 0): string {
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

interface EvSpec {
  t: number;
  micros?: number;
  uri: string;
  resource?: string | null;
  decision?: string | null;
  username?: string | null;
  ips?: string[] | null;
  verb?: string;
  stage?: string;
  code?: number;
  groups?: string[];
}

/** A raw audit Event; `resource: null` leaves objectRef out, `decision: null` the annotations. */
function ev(s: EvSpec): Ev {
  const e: Ev = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: `id-${s.t}-${s.uri}`,
    stage: s.stage ?? 'ResponseComplete',
    requestURI: s.uri,
    verb: s.verb ?? 'list',
    user: s.username === null ? {} : { username: s.username ?? 'mallory', groups: s.groups ?? ['system:authenticated'] },
    userAgent: 'kubectl/v1.29.2',
    responseStatus: { metadata: {}, code: s.code ?? (s.decision === 'forbid' ? 403 : 200) },
    requestReceivedTimestamp: iso(s.t, s.micros),
    stageTimestamp: iso(s.t + 5, s.micros),
  };
  if (s.ips !== null) e.sourceIPs = s.ips ?? ['203.0.113.9'];
  if (s.resource !== null) e.objectRef = { resource: s.resource ?? 'pods', namespace: 'default', apiVersion: 'v1' };
  if (s.decision !== null) e.annotations = { 'authorization.k8s.io/decision': s.decision ?? 'allow', 'authorization.k8s.io/reason': '' };
  return e;
}

interface BurstSpec {
  t?: number;
  uris?: number;
  resources?: number;
  count?: number;
  decisions?: string[];
  username?: string | null;
  ips?: string[] | null;
  cluster?: string;
}

/**
 * `count` events inside [t, t + 30 s): `resources` distinct resources, `uris` distinct URIs
 * (URIs beyond the resources are extra namespaces of resource 0), decisions cycled per event.
 */
function burst(b: BurstSpec = {}): Array<{ cluster: string; event: Ev }> {
  const { t = T0 + 10_000, uris = 8, resources = 5, count = 30, decisions = ['allow', 'forbid'], cluster = 'c1' } = b;
  assert.ok(uris >= resources && count >= uris);
  const out: Array<{ cluster: string; event: Ev }> = [];
  for (let i = 0; i < count; i++) {
    const u = i % uris;
    const resource = `res${u < resources ? u : 0}`;
    const uri = u < resources ? `/api/v1/${resource}` : `/api/v1/namespaces/ns${u}/${resource}`;
    const spec: EvSpec = { t: t + Math.floor((i * 30_000) / count), uri, resource, decision: decisions[i % decisions.length] };
    if (b.username !== undefined) spec.username = b.username;
    if (b.ips !== undefined) spec.ips = b.ips;
    out.push({ cluster, event: ev(spec) });
  }
  return out;
}

const run = (events: Array<{ cluster: string; event: Ev }>, opts: OracleOptions = OPTS) => oracleAlerts(events, opts);
const wrap = (events: Ev[], cluster = 'c1') => events.map((event) => ({ cluster, event }));

describe('esql-oracle', () => {
  describe('parseRfc3339Ms', () => {
    it('floors microseconds to the millisecond', () => {
      assert.equal(parseRfc3339Ms('2026-01-05T10:05:59.999999Z'), T0 + 5 * P + 59_999);
      assert.equal(parseRfc3339Ms('2026-01-05T10:00:00.000999Z'), T0);
      assert.equal(parseRfc3339Ms('2026-01-05T10:00:00Z'), T0);
      assert.equal(parseRfc3339Ms('2026-01-05T10:00:00.5Z'), T0 + 500);
    });

    it('applies offsets and rejects what is not RFC 3339', () => {
      assert.equal(parseRfc3339Ms('2026-01-05T11:30:00.000000+01:30'), T0);
      assert.equal(parseRfc3339Ms('2026-01-05 10:00:00Z'), null);
      assert.equal(parseRfc3339Ms(1767607200000), null);
      assert.equal(parseRfc3339Ms(undefined), null);
    });
  });

  describe('aggregates', () => {
    it('reports every Esql column of a matching group, values sorted', () => {
      const events: Ev[] = [
        ev({ t: T0 + 1000, uri: '/api/v1/pods', resource: 'pods', decision: 'allow', verb: 'list', groups: ['system:authenticated', 'oidc:x'] }),
        ev({ t: T0 + 2000, uri: '/api/v1/secrets', resource: 'secrets', decision: 'forbid', verb: 'list' }),
        ev({ t: T0 + 3000, uri: '/api/v1/nodes', resource: 'nodes', decision: 'forbid', verb: 'get' }),
        ev({ t: T0 + 4000, uri: '/apis/apps/v1/deployments', resource: 'deployments', decision: 'allow', verb: 'watch' }),
        ev({ t: T0 + 5000, uri: '/api', resource: null, decision: 'allow', verb: 'get' }),
        ev({ t: T0 + 6000, uri: '/apis', resource: null, decision: null, verb: 'get', code: 401 }),
      ];
      (events[1].responseStatus as Record<string, unknown>).message = 'secrets is forbidden';
      const { alerts } = run([...wrap(events.slice(0, 3), 'prod'), ...wrap(events.slice(3), 'dev')]);
      assert.equal(alerts.length, 1);
      assert.deepEqual(alerts[0], {
        username: 'mallory',
        sourceIp: '203.0.113.9',
        windowStart: T0 + P - W,
        windowEnd: T0 + P,
        esql: {
          document_count: 6,
          kubernetes_audit_annotations_authorization_k8s_io_decision_count_distinct: 2,
          kubernetes_audit_verb_count_distinct: 3,
          kubernetes_audit_requestURI_count_distinct: 6,
          kubernetes_audit_objectRef_resource_count_distinct: 4,
          kubernetes_audit_responseStatus_message_values: ['secrets is forbidden'],
          kubernetes_audit_verb_values: ['get', 'list', 'watch'],
          kubernetes_audit_responseStatus_code_values: [200, 401, 403],
          kubernetes_audit_objectRef_resource_values: ['deployments', 'nodes', 'pods', 'secrets'],
          kubernetes_audit_objectRef_namespace_values: ['default'],
          kubernetes_audit_user_username_values: ['mallory'],
          kubernetes_audit_user_groups_values: ['oidc:x', 'system:authenticated'],
          kubernetes_audit_requestURI_values: ['/api', '/api/v1/nodes', '/api/v1/pods', '/api/v1/secrets', '/apis', '/apis/apps/v1/deployments'],
          kubernetes_audit_userAgent_values: ['kubectl/v1.29.2'],
          data_stream_namespace_values: ['dev', 'prod'],
        },
      });
    });

    it('returns an empty array for a values() column with nothing to collect', () => {
      const events = burst().map(({ cluster, event }) => {
        const { userAgent: _ua, ...rest } = event;
        return { cluster, event: rest };
      });
      const { alerts } = run(events);
      assert.equal(alerts.length, 1);
      assert.deepEqual(alerts[0].esql.kubernetes_audit_userAgent_values, []);
      assert.deepEqual(alerts[0].esql.kubernetes_audit_responseStatus_message_values, []);
    });
  });

  describe('thresholds', () => {
    it('distinct URIs: 5 does not alert, 6 does', () => {
      assert.equal(run(burst({ uris: 5, resources: 4, count: 20 })).alerts.length, 0);
      assert.equal(run(burst({ uris: 6, resources: 4, count: 20 })).alerts.length, 1);
    });

    it('distinct resources: 3 does not alert, 4 does', () => {
      assert.equal(run(burst({ uris: 10, resources: 3, count: 30 })).alerts.length, 0);
      assert.equal(run(burst({ uris: 10, resources: 4, count: 30 })).alerts.length, 1);
    });

    it('event count: 74 alerts, 75 does not', () => {
      const at74 = run(burst({ count: 74 }));
      assert.equal(at74.alerts.length, 1);
      assert.equal(at74.alerts[0].esql.document_count, 74);
      assert.equal(run(burst({ count: 75 })).alerts.length, 0);
    });

    it('distinct decisions: one does not alert, two do, three do not (== 2)', () => {
      assert.equal(run(burst({ decisions: ['allow'] })).alerts.length, 0);
      assert.equal(run(burst({ decisions: ['forbid'] })).alerts.length, 0);
      assert.equal(run(burst({ decisions: ['allow', 'forbid'] })).alerts.length, 1);
      assert.equal(run(burst({ decisions: ['allow', 'forbid', 'deny'] })).alerts.length, 0);
    });

    it('an empty decision string is absent, not a second value', () => {
      assert.equal(run(burst({ decisions: ['allow', ''] })).alerts.length, 0);
      const both = run(burst({ decisions: ['allow', '', 'forbid'] }));
      assert.equal(both.alerts.length, 1);
      assert.equal(both.alerts[0].esql.kubernetes_audit_annotations_authorization_k8s_io_decision_count_distinct, 2);
    });

    it('events without annotations (401s) count in document_count only', () => {
      const unauthorized = (n: number) =>
        wrap(Array.from({ length: n }, (_, i) => ev({ t: T0 + 45_000 + i, uri: '/api/v1/res0', resource: 'res0', decision: null, code: 401 })));
      const at74 = run([...burst({ count: 64 }), ...unauthorized(10)]);
      assert.equal(at74.alerts.length, 1);
      assert.equal(at74.alerts[0].esql.document_count, 74);
      assert.deepEqual(at74.alerts[0].esql.kubernetes_audit_responseStatus_code_values, [200, 401, 403]);
      assert.equal(run([...burst({ count: 65 }), ...unauthorized(10)]).alerts.length, 0);
    });

    it('URIs without objectRef add to the URI count but not the resource count', () => {
      const resources = (n: number) =>
        Array.from({ length: n }, (_, i) => ev({ t: T0 + 1000 + i, uri: `/api/v1/r${i}`, resource: `r${i}`, decision: i % 2 === 0 ? 'allow' : 'forbid' }));
      const nonResource = (paths: string[]) => paths.map((uri, i) => ev({ t: T0 + 2000 + i, uri, resource: null, verb: 'get' }));
      // 4 resource URIs + /api, /apis: 6 URIs, 4 resources.
      const six = run(wrap([...resources(4), ...nonResource(['/api', '/apis'])]));
      assert.equal(six.alerts.length, 1);
      assert.equal(six.alerts[0].esql.kubernetes_audit_objectRef_resource_count_distinct, 4);
      assert.deepEqual(six.alerts[0].esql.kubernetes_audit_objectRef_namespace_values, ['default']);
      // 3 resources + 7 non-resource URIs: a missing objectRef must not be a 4th resource.
      const paths = ['/api', '/apis', '/version', '/healthz', '/openapi/v2', '/api/v1', '/apis/apps/v1'];
      assert.equal(run(wrap([...resources(3), ...nonResource(paths)])).alerts.length, 0);
    });
  });

  describe('grouping', () => {
    it('fans a multi-IP event out to each distinct IP, counting it fully in each', () => {
      const { alerts } = run(burst({ ips: ['203.0.113.9', '10.0.0.1'] }));
      assert.deepEqual(
        alerts.map((a) => [a.sourceIp, a.esql.document_count]),
        [['10.0.0.1', 30], ['203.0.113.9', 30]],
      );
    });

    it('counts a duplicated IP once: 74 events with ["ip", "ip"] still alert', () => {
      const { alerts } = run(burst({ count: 74, ips: ['10.0.0.1', '10.0.0.1'] }));
      assert.equal(alerts.length, 1);
      assert.equal(alerts[0].sourceIp, '10.0.0.1');
      assert.equal(alerts[0].esql.document_count, 74);
    });

    it('an event in two groups can push one over 75 while the other alerts', () => {
      const both = burst({ count: 40, ips: ['A', 'B'] });
      const onlyA = burst({ t: T0 + 20_000, count: 35, ips: ['A'] });
      const { alerts } = run([...both, ...onlyA]);
      assert.deepEqual(alerts.map((a) => a.sourceIp), ['B']);
    });

    it('a missing username is a null group of its own, and it alerts', () => {
      const { alerts } = run([...burst({ username: null }), ...burst({ username: 'mallory', decisions: ['allow'] })]);
      assert.equal(alerts.length, 1);
      assert.equal(alerts[0].username, null);
      assert.deepEqual(alerts[0].esql.kubernetes_audit_user_username_values, []);
    });

    it('missing and empty sourceIPs both go to the null IP group, and it alerts', () => {
      const missing = burst({ ips: null, count: 20 });
      const empty = burst({ ips: [], count: 20, t: T0 + 12_000 });
      const { alerts } = run([...missing, ...empty]);
      assert.equal(alerts.length, 1);
      assert.equal(alerts[0].sourceIp, null);
      assert.equal(alerts[0].esql.document_count, 40);
    });

    it('groups across clusters and lists each as a data_stream namespace', () => {
      const { alerts } = run([...burst({ cluster: 'eu', decisions: ['allow'] }), ...burst({ cluster: 'us', decisions: ['forbid'], t: T0 + 20_000 })]);
      assert.equal(alerts.length, 1);
      assert.deepEqual(alerts[0].esql.data_stream_namespace_values, ['eu', 'us']);
    });
  });

  describe('WHERE clause', () => {
    it('keeps only ResponseComplete and the six read/write verbs, exactly and case-sensitively', () => {
      const base = burst({ uris: 5, resources: 3, count: 20 });
      const extra = (spec: Partial<EvSpec>, i: number): Ev => ev({ t: T0 + 40_000 + i, uri: `/api/v1/extra${i}`, resource: `extra${i}`, decision: 'forbid', ...spec });
      const noise = [
        extra({ stage: 'RequestReceived' }, 0),
        extra({ stage: 'ResponseStarted' }, 1),
        extra({ stage: 'Panic' }, 2),
        extra({ verb: 'delete' }, 3),
        extra({ verb: 'deletecollection' }, 4),
        extra({ verb: 'proxy' }, 5),
        extra({ verb: 'connect' }, 6),
        extra({ verb: 'GET' }, 7),
        extra({ stage: 'responsecomplete' }, 8),
      ];
      const noVerb = extra({}, 9);
      delete noVerb.verb;
      const noStage = extra({}, 10);
      delete noStage.stage;
      const result = run([...base, ...wrap([...noise, noVerb, noStage])]);
      assert.equal(result.alerts.length, 0);
      assert.equal(result.eventsMatched, 20);
      // Control: the same extras as plain ResponseComplete lists do push it over.
      assert.equal(run([...base, ...wrap([extra({}, 0), extra({}, 1)])]).alerts.length, 1);
    });

    it('skips, and counts, events without a parseable time', () => {
      const events = burst();
      (events[0].event as Ev).requestReceivedTimestamp = 'yesterday';
      const result = run(events);
      assert.equal(result.eventsWithoutTime, 1);
      assert.equal(result.alerts[0].esql.document_count, 29);
    });
  });

  describe('windows', () => {
    // 5 URIs on 3 resources, all allowed, plus one essential forbid on a 4th resource.
    const rest = (from: number): Ev[] =>
      ['/api/v1/a', '/api/v1/b', '/api/v1/c', '/api/v1/namespaces/x/a', '/api/v1/namespaces/y/b'].map((uri, i) =>
        ev({ t: from + i * 1000, uri, resource: uri.slice(-1), decision: 'allow' }),
      );
    const essential = (t: number, micros = 0): Ev => ev({ t, micros, uri: '/api/v1/secrets', resource: 'secrets', decision: 'forbid' });

    it('includes an event exactly at the window start t - W', () => {
      const { alerts } = run(wrap([essential(T0), ...rest(T0 + W - 30_000)]));
      assert.deepEqual(alerts.map((a) => [a.windowStart, a.windowEnd]), [[T0, T0 + W]]);
    });

    it('excludes an event exactly at the window end t: it belongs to the next windows', () => {
      assert.equal(run(wrap([...rest(T0), essential(T0 + W)])).alerts.length, 0);
    });

    it('includes an event 1 µs before t (floored to t - 1 ms)', () => {
      const { alerts } = run(wrap([...rest(T0), essential(T0 + W - 1, 999)]));
      assert.deepEqual(alerts.map((a) => a.windowEnd), [T0 + W]);
    });

    it('evaluates every hop-aligned window that holds an event of the group', () => {
      assert.equal(run(wrap([essential(T0 + 30_000)])).windowsEvaluated, 6);
      // Two events 10 minutes apart touch 12 distinct windows.
      assert.equal(run(wrap([essential(T0 + 30_000), essential(T0 + 630_000)])).windowsEvaluated, 12);
    });

    it('windows on stageTimestamp when asked', () => {
      const events = wrap([...rest(T0), essential(T0 + W - 3)]); // stageTimestamp = + 5 ms
      assert.deepEqual(run(events).alerts.map((a) => a.windowEnd), [T0 + W]);
      assert.equal(run(events, { ...OPTS, timeField: 'stageTimestamp' }).alerts.length, 0);
    });
  });

  describe('suppression', () => {
    it('suppresses the re-matches of one burst: one alert, five suppressed', () => {
      const result = run(burst());
      assert.deepEqual(result.alerts.map((a) => a.windowEnd), [T0 + P]);
      assert.equal(result.suppressed, 5);
    });

    it('a re-match 3 minutes later is suppressed until the period ends', () => {
      const result = run([...burst({ t: T0 + 5000 }), ...burst({ t: T0 + 3 * P + 5000 })]);
      // Windows +1..+9 min all match; +2..+6 and +8,+9 are suppressed, +7 starts a new period.
      assert.deepEqual(result.alerts.map((a) => a.windowEnd), [T0 + P, T0 + 7 * P]);
      assert.equal(result.suppressed, 7);
    });

    it('a re-match more than 6 minutes after the alert alerts again', () => {
      const result = run([...burst({ t: T0 + 5000 }), ...burst({ t: T0 + 10 * P + 5000 })]);
      assert.deepEqual(result.alerts.map((a) => a.windowEnd), [T0 + P, T0 + 11 * P]);
      assert.equal(result.suppressed, 10);
    });

    it('is kept per (username, sourceIp)', () => {
      const result = run([...burst({ ips: ['A'] }), ...burst({ ips: ['B'], t: T0 + 2 * P + 5000 }), ...burst({ username: 'eve', ips: ['A'] })]);
      assert.deepEqual(
        result.alerts.map((a) => [a.username, a.sourceIp, a.windowEnd]),
        [['eve', 'A', T0 + P], ['mallory', 'A', T0 + P], ['mallory', 'B', T0 + 3 * P]],
      );
    });

    it('with suppressMs 0 alerts every matching window', () => {
      const result = run(burst(), { ...OPTS, suppressMs: 0 });
      assert.equal(result.alerts.length, 6);
      assert.equal(result.suppressed, 0);
    });
  });

  describe('demo/audit-demo.jsonl', () => {
    const file = findUp(path.join('demo', 'audit-demo.jsonl'));

    it('fires exactly once, for the labelled synthetic attacker', function () {
      assert.ok(file !== undefined, 'demo/audit-demo.jsonl ships with kade');
      const lines = fs.readFileSync(file as string, 'utf8').split('\n').filter((l) => l.trim() !== '');
      const events = lines.map((l) => ({ cluster: 'demo', event: JSON.parse(l) as Ev }));
      const times = events.map((e) => parseRfc3339Ms(e.event.requestReceivedTimestamp));
      assert.ok(times.every((t) => t !== null), 'every event has a requestReceivedTimestamp');
      assert.ok(times.every((t, i) => i === 0 || (t as number) >= (times[i - 1] as number)), 'sorted by requestReceivedTimestamp');
      const span = (times[times.length - 1] as number) - (times[0] as number);
      assert.ok(span <= 20 * P, `spans ${span} ms`);

      const { alerts } = run(events);
      assert.equal(alerts.length, 1);
      const attacker = events.filter(
        (e) => Array.isArray(e.event.sourceIPs) && (e.event.sourceIPs as string[]).includes(alerts[0].sourceIp as string),
      );
      assert.ok(attacker.length > 0 && attacker.every((e) => String(e.event.auditID).startsWith('synthetic-')));
    });
  });
});

function findUp(relative: string): string | undefined {
  for (const start of [__dirname, process.cwd()]) {
    let dir = start;
    for (;;) {
      const candidate = path.join(dir, relative);
      if (fs.existsSync(candidate)) return candidate;
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return undefined;
}
