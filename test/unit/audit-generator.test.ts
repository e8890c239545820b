import assert from 'node:assert/strict';
import {
  ATTACK_KINDS,
  HOP_MS,
  SUPPRESS_MS,
  WINDOW_MS,
  generateAuditStream,
  planAttacks,
  type GeneratedEvent,
  type GeneratorOptions,
} from '../helpers/audit-generator';
import { oracleAlerts, parseRfc3339Ms } from '../helpers/esql-oracle';

const RULE = { windowMs: WINDOW_MS, hopMs: HOP_MS, suppressMs: SUPPRESS_MS };
const RFC3339_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const NON_RESOURCE = /^\/(api|apis|api\/v1|apis\/[^/]+\/[^/]+|version|healthz|livez|readyz|openapi\/v[23]|\.env)?(\?.*)?$/;

function take(opts: GeneratorOptions, n = opts.events): GeneratedEvent[] {
  const out: GeneratedEvent[] = [];
  for (const e of generateAuditStream(opts)) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

const receivedMs = (e: GeneratedEvent): number => parseRfc3339Ms(e.event.requestReceivedTimestamp) as number;

/** The largest amount by which an event is older than one emitted before it. */
function maxDisorder(events: GeneratedEvent[]): number {
  let newest = -Infinity;
  let worst = 0;
  for (const e of events) {
    const t = receivedMs(e);
    worst = Math.max(worst, newest - t);
    newest = Math.max(newest, t);
  }
  return worst;
}

const key = (username: string | null, sourceIp: string | null, windowEnd: number): string => JSON.stringify([username, sourceIp, windowEnd]);

describe('audit-generator', () => {
  describe('determinism and shape', () => {
    it('produces the same stream for the same seed, and a different one for another', () => {
      const a = take({ seed: 7, events: 10_000 }).map((e) => JSON.stringify(e));
      const b = take({ seed: 7, events: 10_000 }).map((e) => JSON.stringify(e));
      const c = take({ seed: 8, events: 10_000 }).map((e) => JSON.stringify(e));
      assert.deepEqual(a, b);
      assert.notDeepEqual(a.slice(0, 100), c.slice(0, 100));
      assert.deepEqual(planAttacks({ seed: 7, events: 20_000 }), planAttacks({ seed: 7, events: 20_000 }));
    });

    it('yields exactly `events` events, lazily', () => {
      assert.equal(take({ seed: 1, events: 3_000 }, Infinity).length, 3_000);
      const started = Date.now();
      assert.equal(take({ seed: 1, events: 50_000_000 }, 1_000).length, 1_000);
      assert.ok(Date.now() - started < 2_000, 'a huge stream starts without materializing it');
    });

    it('writes audit.k8s.io/v1 Events the way kube-apiserver does', () => {
      const events = take({ seed: 3, events: 20_000 });
      for (const { cluster, event: e } of events) {
        assert.equal(e.kind, 'Event');
        assert.equal(e.apiVersion, 'audit.k8s.io/v1');
        assert.match(String(e.auditID), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.match(String(e.requestReceivedTimestamp), RFC3339_MICRO);
        assert.match(String(e.stageTimestamp), RFC3339_MICRO);
        assert.ok(cluster.length > 0);
        const path = String(e.requestURI);
        const ref = e.objectRef as Record<string, string> | undefined;
        if (ref === undefined) assert.match(path, NON_RESOURCE, 'only non-resource URLs lack objectRef');
        else assert.ok(path.includes(`/${ref.resource}`), `${path} names ${ref.resource}`);
        if (e.stage === 'RequestReceived') {
          assert.equal(e.responseStatus, undefined);
          assert.equal(e.annotations, undefined);
        }
        const code = (e.responseStatus as Record<string, number> | undefined)?.code;
        if (code === 401) assert.equal(e.annotations, undefined, '401s never reach authorization');
      }
    });

    it('contains every oddity the rule has to cope with', () => {
      const events = take({ seed: 1, events: 50_000 });
      const has = (pred: (e: Record<string, unknown>) => boolean): boolean => events.some(({ event }) => pred(event));
      const ips = (e: Record<string, unknown>): string[] | undefined => e.sourceIPs as string[] | undefined;
      const user = (e: Record<string, unknown>): Record<string, unknown> => e.user as Record<string, unknown>;
      const decision = (e: Record<string, unknown>): unknown => (e.annotations as Record<string, unknown> | undefined)?.['authorization.k8s.io/decision'];
      assert.ok(has((e) => user(e).username === undefined), 'no username');
      assert.ok(has((e) => user(e).username === 'system:anonymous'), 'anonymous');
      assert.ok(has((e) => ips(e) === undefined), 'no sourceIPs');
      assert.ok(has((e) => Array.isArray(ips(e)) && ips(e)?.length === 0), 'empty sourceIPs');
      assert.ok(has((e) => (ips(e)?.length ?? 0) > 1 && new Set(ips(e)).size > 1), 'proxy chain');
      assert.ok(has((e) => (ips(e)?.length ?? 0) > 1 && new Set(ips(e)).size === 1), 'duplicate IPs');
      assert.ok(has((e) => ips(e)?.some((ip) => ip.includes(':')) === true), 'IPv6');
      for (const stage of ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic']) assert.ok(has((e) => e.stage === stage), stage);
      for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'proxy', 'connect']) {
        assert.ok(has((e) => e.verb === verb), verb);
      }
      assert.ok(has((e) => decision(e) === ''), 'empty decision');
      assert.ok(has((e) => decision(e) === 'forbid'), 'forbid');
      assert.ok(has((e) => e.stage === 'ResponseComplete' && e.annotations === undefined), 'no annotations');
      assert.ok(has((e) => e.impersonatedUser !== undefined), 'impersonation');
      assert.ok(has((e) => String(user(e).username).startsWith('system:node:')), 'kubelets');
      assert.equal(new Set(events.map((e) => e.cluster)).size, 3);
    });
  });

  describe('time', () => {
    it('keeps event-time disorder within maxJitterMs', () => {
      for (const maxJitterMs of [0, 500, 2000]) {
        const events = take({ seed: 5, events: 30_000, maxJitterMs });
        const disorder = maxDisorder(events);
        assert.ok(disorder <= maxJitterMs, `disorder ${disorder} > ${maxJitterMs}`);
        if (maxJitterMs > 0) assert.ok(disorder > maxJitterMs / 4, `jitter ${maxJitterMs} is exercised (${disorder})`);
      }
    });

    it('advances event time at eventsPerSecond from startMs', () => {
      const startMs = Date.UTC(2026, 1, 1, 0, 0, 0);
      const events = take({ seed: 2, events: 40_000, eventsPerSecond: 100, startMs });
      const first = Math.min(...events.slice(0, 100).map(receivedMs));
      const last = receivedMs(events[events.length - 1]);
      assert.ok(first >= startMs && first < startMs + 1_000);
      const seconds = (last - first) / 1000;
      assert.ok(seconds > 360 && seconds < 400, `40k events at 100/s took ${seconds} s of event time`);
    });
  });

  describe('attacks', () => {
    const opts: GeneratorOptions = { seed: 1, events: 50_000 };
    const attacks = planAttacks(opts);

    it('plans at least `attacks` bursts, covering every threshold and edge', () => {
      assert.ok(attacks.length >= 60);
      const kinds = new Set(attacks.map((a) => a.kind));
      for (const kind of ATTACK_KINDS) assert.ok(kinds.has(kind), `missing ${kind}`);
      for (const kind of [
        'uris-5', 'uris-6', 'resources-3', 'resources-4', 'count-74', 'count-75', 'decision-allow-only', 'decision-empty-string',
        'nonresource-uris-6', 'nonresource-resources-3', 'multi-ip-proxy', 'multi-ip-duplicate-74', 'null-username', 'null-ip-missing',
        'straddle-minute', 'edge-left-inclusive', 'edge-right-exclusive', 'spread-8min-no-match', 'repeat-after-3min', 'repeat-after-10min',
      ]) {
        assert.ok(kinds.has(kind), `missing ${kind}`);
      }
      assert.ok(attacks.some((a) => a.expectAlert === true) && attacks.some((a) => a.expectAlert === false));
      assert.ok(attacks.some((a) => a.username === null));
    });

    it('scales with the attacks option and fits attacks inside the stream', () => {
      assert.equal(planAttacks({ seed: 1, events: 200_000, attacks: 100 }).length, 100);
      const events = take(opts);
      const end = receivedMs(events[events.length - 1]);
      for (const a of attacks) assert.ok(a.endMs < end, `${a.id} ends before the stream does`);
      assert.equal(planAttacks({ seed: 1, events: 2_000 }).length, 0, 'a stream too short for any attack has none');
    });

    for (const actorsScale of [1, 4]) {
      it(`the oracle alerts exactly as planned and never on background (actorsScale ${actorsScale})`, () => {
        const scaled = { ...opts, actorsScale };
        const planned = planAttacks(scaled);
        const events = take(scaled);
        const result = oracleAlerts(events, RULE);

        const expected = new Set<string>();
        let expectedSuppressed = 0;
        for (const a of planned) {
          for (const g of a.expected) {
            for (const t of g.alertWindowEnds) expected.add(key(g.username, g.sourceIp, t));
            expectedSuppressed += g.suppressed;
          }
        }
        const actual = new Set(result.alerts.map((a) => key(a.username, a.sourceIp, a.windowEnd)));
        assert.deepEqual([...actual].filter((k) => !expected.has(k)), [], 'unexpected alerts');
        assert.deepEqual([...expected].filter((k) => !actual.has(k)), [], 'missed alerts');
        assert.equal(result.suppressed, expectedSuppressed);

        for (const a of planned) {
          const fired = result.alerts.some((x) => a.expected.some((g) => g.username === x.username && g.sourceIp === x.sourceIp));
          assert.equal(fired, a.expectAlert, `${a.id}: ${a.description}`);
        }
        const background = /^system:(node:(?!rogue-)|kube-|serviceaccount:kube-system:|apiserver)/;
        assert.deepEqual(result.alerts.filter((a) => background.test(a.username ?? '')), []);
      });
    }

    it('actorsScale adds distinct actors at the same event count', () => {
      const actors = (scale: number): number => {
        const keys = new Set<string>();
        for (const { event } of take({ seed: 1, events: 20_000, actorsScale: scale })) {
          const username = (event.user as Record<string, unknown>).username;
          keys.add(JSON.stringify([username, event.sourceIPs]));
        }
        return keys.size;
      };
      assert.ok(actors(5) > 2.5 * actors(1));
    });
  });
});
