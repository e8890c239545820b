import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AuditRecord } from '../../src/ingest/audit-record';
import { normalizeEvent } from '../../src/ingest/normalize';
import { CompiledPlan, WindowAggregates } from '../../src/detect/compiled-plan';
import { resolveField } from '../../src/detect/fields';
import { AggregateSpec, ConditionClause, FilterClause } from '../../src/detect/plan';
import { loadRuleFile } from '../../src/rules/load-rules';
import { packageRoot } from '../../src/util/package-root';

/**
 * The seed rule's compiled plan (rules/endpoint-permission-enumeration.rule.json) against the
 * semantics of shared/DESIGN.md §2, and a cross-check of the hand-written plan against the ES|QL
 * text it claims to implement (rules/endpoint-permission-enumeration.esql).
 */

const RULES = path.join(packageRoot(), 'rules');
const RULE_FILE = path.join(RULES, 'endpoint-permission-enumeration.rule.json');
const ESQL_FILE = path.join(RULES, 'endpoint-permission-enumeration.esql');

const F = {
  decision: 'kubernetes.audit.annotations.authorization_k8s_io/decision',
  verb: 'kubernetes.audit.verb',
  uri: 'kubernetes.audit.requestURI',
  resource: 'kubernetes.audit.objectRef.resource',
  username: 'kubernetes.audit.user.username',
  sourceIPs: 'kubernetes.audit.sourceIPs',
};

type Raw = Record<string, unknown>;

const BASE: Raw = {
  kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: 'x', stage: 'ResponseComplete',
  requestURI: '/api/v1/namespaces/default/pods', verb: 'get',
  user: { username: 'alice', groups: ['system:authenticated'] }, sourceIPs: ['10.0.0.1'],
  objectRef: { resource: 'pods', namespace: 'default', apiVersion: 'v1' },
  responseStatus: { code: 200 }, requestReceivedTimestamp: '2025-03-04T06:22:18.819232Z',
  annotations: { 'authorization.k8s.io/decision': 'allow' },
};

/** A normalized record: BASE with overrides; a key set to undefined is removed from the Event. */
function rec(overrides: Raw = {}): AuditRecord {
  const e: Raw = { ...BASE, ...overrides };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return normalizeEvent(e, { timeField: 'requestReceivedTimestamp', namespace: 'default' }).record;
}

describe('rule plan: endpoint-permission-enumeration', () => {
  let plan: CompiledPlan;
  before(() => { plan = loadRuleFile(RULE_FILE); });

  const fieldIndex = (name: string): number => {
    const tf = plan.fields.find((f) => f.accessor.name === name);
    assert.ok(tf, `plan tracks ${name}`);
    return tf.index;
  };
  const accessor = (name: string) => {
    const tf = plan.fields.find((f) => f.accessor.name === name);
    assert.ok(tf, `plan tracks ${name}`);
    return tf.accessor;
  };

  it('loads with the rule id, and carries its ES|QL text', () => {
    assert.equal(plan.id, 'a337c3f8-e264-4eb4-9998-22669ca52791');
    assert.equal(plan.plan.esql, readFileSync(ESQL_FILE, 'utf8'));
  });

  describe('groupsOf (BY username, sourceIPs)', () => {
    it('fans a multi-valued sourceIPs out to each DISTINCT value, IPv6 included', () => {
      assert.deepEqual(plan.groupsOf(rec({ sourceIPs: ['10.0.0.1', '10.0.0.1', '2001:db8::1'] })),
        [['alice', '10.0.0.1'], ['alice', '2001:db8::1']]);
    });

    it('a single IP is one group', () => {
      assert.deepEqual(plan.groupsOf(rec()), [['alice', '10.0.0.1']]);
      assert.deepEqual(plan.groupsOf(rec({ sourceIPs: ['::1'] })), [['alice', '::1']]);
    });

    it('three distinct IPs are three groups, in first-seen order', () => {
      assert.deepEqual(plan.groupsOf(rec({ sourceIPs: ['192.168.99.1', '::1', '10.0.0.1', '::1'] })),
        [['alice', '192.168.99.1'], ['alice', '::1'], ['alice', '10.0.0.1']]);
    });

    it('missing username -> [null, ip]', () => {
      assert.deepEqual(plan.groupsOf(rec({ user: undefined })), [[null, '10.0.0.1']]);
      assert.deepEqual(plan.groupsOf(rec({ user: { groups: ['system:unauthenticated'] } })), [[null, '10.0.0.1']]);
      assert.deepEqual(plan.groupsOf(rec({ user: { username: null } })), [[null, '10.0.0.1']]);
    });

    it('missing sourceIPs -> [user, null]', () => {
      assert.deepEqual(plan.groupsOf(rec({ sourceIPs: undefined })), [['alice', null]]);
      assert.deepEqual(plan.groupsOf(rec({ sourceIPs: [] })), [['alice', null]]);
    });

    it('both missing -> [null, null]', () => {
      assert.deepEqual(plan.groupsOf(rec({ user: undefined, sourceIPs: undefined })), [[null, null]]);
    });

    it('missing username with several IPs -> one null-user group per IP', () => {
      assert.deepEqual(plan.groupsOf(rec({ user: undefined, sourceIPs: ['1.1.1.1', '2.2.2.2'] })),
        [[null, '1.1.1.1'], [null, '2.2.2.2']]);
    });

    it('returns fresh arrays (callers may keep them)', () => {
      const r = rec({ sourceIPs: ['1.1.1.1', '2.2.2.2'] });
      const a = plan.groupsOf(r);
      a[0].push('mutated');
      assert.deepEqual(plan.groupsOf(r), [['alice', '1.1.1.1'], ['alice', '2.2.2.2']]);
    });
  });

  describe('accepts (WHERE stage == "ResponseComplete" and verb in (...))', () => {
    for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch']) {
      it(`accepts ResponseComplete + ${verb}`, () => assert.equal(plan.accepts(rec({ verb })), true));
    }
    for (const verb of ['delete', 'deletecollection', 'proxy', 'GET', 'List', 'Watch', 'PATCH', ' get', 'get ', '']) {
      it(`rejects verb ${JSON.stringify(verb)}`, () => assert.equal(plan.accepts(rec({ verb })), false));
    }
    it('rejects a missing verb', () => assert.equal(plan.accepts(rec({ verb: undefined })), false));
    for (const stage of ['RequestReceived', 'ResponseStarted', 'Panic', 'responsecomplete', 'RESPONSECOMPLETE', '']) {
      it(`rejects stage ${JSON.stringify(stage)}`, () => assert.equal(plan.accepts(rec({ stage })), false));
    }
    it('rejects a missing stage', () => assert.equal(plan.accepts(rec({ stage: undefined })), false));
    it('does not look at the decision, user, IPs or objectRef', () => {
      assert.equal(plan.accepts(rec({ annotations: undefined, user: undefined, sourceIPs: undefined, objectRef: undefined })), true);
    });
  });

  describe('field reads', () => {
    it('the decision annotation reads through its dedotted name', () => {
      assert.deepEqual(accessor(F.decision).read(rec()), ['allow']);
      assert.deepEqual(accessor(F.decision).read(rec({ annotations: { 'authorization.k8s.io/decision': 'forbid' } })), ['forbid']);
    });

    it('an empty decision annotation counts as absent (reads [])', () => {
      const empty = rec({ annotations: { 'authorization.k8s.io/decision': '', 'authorization.k8s.io/reason': '' } });
      assert.deepEqual(empty.annotations, {});
      // after a record that had one (the accessor caches the key it matched)
      assert.deepEqual(accessor(F.decision).read(rec()), ['allow']);
      assert.deepEqual(accessor(F.decision).read(empty), []);
      assert.deepEqual(resolveField(F.decision).read(empty), []);
      assert.deepEqual(accessor(F.decision).read(rec({ annotations: undefined })), []);
    });

    it('a URI without objectRef has a requestURI value but no resource value', () => {
      for (const uri of ['/api', '/apis', '/healthz', '/openapi/v2?timeout=32s', '/version']) {
        const r = rec({ requestURI: uri, objectRef: undefined });
        assert.deepEqual(accessor(F.uri).read(r), [uri]);
        assert.deepEqual(accessor(F.resource).read(r), []);
        assert.equal(plan.accepts(r), true, 'non-resource URLs still pass the filter');
      }
    });

    it('an objectRef without resource reads no resource', () => {
      assert.deepEqual(accessor(F.resource).read(rec({ objectRef: { namespace: 'default' } })), []);
    });

    it('the plan tracks exactly the fields the aggregates read, each once', () => {
      const names = plan.fields.map((f) => f.accessor.name).sort();
      const fromAggs = [...new Set(plan.plan.aggregates.filter((a) => a.field !== undefined).map((a) => a.field as string))].sort();
      assert.deepEqual(names, fromAggs);
      assert.deepEqual(plan.fields.map((f) => f.index), plan.fields.map((_, i) => i));
      for (const name of [F.decision, F.uri, F.resource, F.verb]) {
        assert.equal(plan.fields.find((f) => f.accessor.name === name)?.needDistinct, true, name);
      }
    });
  });

  describe('matches (WHERE after STATS)', () => {
    const aggs = (over: Partial<{ count: number; decision: number; uris: number; resources: number; pruned: boolean }> = {}): WindowAggregates => {
      const v = { count: 20, decision: 2, uris: 6, resources: 4, pruned: false, ...over };
      return {
        count: v.count,
        pruned: v.pruned,
        distinct: new Map([
          [fieldIndex(F.decision), v.decision],
          [fieldIndex(F.uri), v.uris],
          [fieldIndex(F.resource), v.resources],
          [fieldIndex(F.verb), 3],
        ]),
      };
    };

    it('matches just inside every bound', () => assert.equal(plan.matches(aggs({ count: 74 })), true));
    it('requestURI: 6 distinct matches, 5 does not', () => {
      assert.equal(plan.matches(aggs({ uris: 6 })), true);
      assert.equal(plan.matches(aggs({ uris: 5 })), false);
    });
    it('objectRef.resource: 4 distinct matches, 3 does not', () => {
      assert.equal(plan.matches(aggs({ resources: 4 })), true);
      assert.equal(plan.matches(aggs({ resources: 3 })), false);
    });
    it('count: 74 matches, 75 does not', () => {
      assert.equal(plan.matches(aggs({ count: 74 })), true);
      assert.equal(plan.matches(aggs({ count: 75 })), false);
      assert.equal(plan.matches(aggs({ count: 1000 })), false);
    });
    it('decision: exactly two distinct values; one (or three) does not match', () => {
      assert.equal(plan.matches(aggs({ decision: 2 })), true);
      assert.equal(plan.matches(aggs({ decision: 1 })), false);
      assert.equal(plan.matches(aggs({ decision: 0 })), false);
      assert.equal(plan.matches(aggs({ decision: 3 })), false);
    });
    it('a missing distinct entry counts as 0', () => {
      const a = aggs();
      a.distinct.delete(fieldIndex(F.decision));
      assert.equal(plan.matches(a), false);
    });
    it('a pruned window never matches', () => assert.equal(plan.matches(aggs({ pruned: true })), false));
    it('pruneAt === 75 (count < 75)', () => assert.equal(plan.pruneAt, 75));
  });

  describe('couldMatch (bounds of a window that the detector decides without Redis)', () => {
    const bounds = (v: Partial<{ decision: [number, number]; uris: [number, number]; resources: [number, number] }>): [number[], number[]] => {
      const lo: number[] = [];
      const hi: number[] = [];
      const full = { decision: [2, 2], uris: [6, 6], resources: [4, 4], ...v } as Record<string, [number, number]>;
      for (const [name, key] of [[F.decision, 'decision'], [F.uri, 'uris'], [F.resource, 'resources']] as const) {
        lo[fieldIndex(name)] = full[key][0];
        hi[fieldIndex(name)] = full[key][1];
      }
      return [lo, hi];
    };

    it('tracks the compared count_distinct fields with K above every constant (decision 3, URI 6, resource 4)', () => {
      const ks = new Map(plan.clauseFields.map((f) => [f.index, f.k]));
      assert.deepEqual(ks, new Map([[fieldIndex(F.decision), 3], [fieldIndex(F.uri), 6], [fieldIndex(F.resource), 4]]));
    });
    it('agrees with matches() on exact values, at every bound', () => {
      for (const count of [0, 74, 75]) for (const d of [1, 2, 3]) for (const u of [5, 6]) for (const r of [3, 4]) {
        const [lo, hi] = bounds({ decision: [d, d], uris: [u, u], resources: [r, r] });
        const exact = plan.matches({ count, pruned: false, distinct: new Map([[fieldIndex(F.decision), d], [fieldIndex(F.uri), u], [fieldIndex(F.resource), r]]) });
        assert.equal(plan.couldMatch(count, lo, hi), exact, `count ${count}, decision ${d}, uris ${u}, resources ${r}`);
      }
    });
    it('is true whenever some value inside the bounds matches; unknown fields never decide', () => {
      assert.equal(plan.couldMatch(10, ...bounds({ uris: [3, Infinity] })), true);
      assert.equal(plan.couldMatch(10, ...bounds({ uris: [0, 5] })), false);
      assert.equal(plan.couldMatch(10, ...bounds({ decision: [3, Infinity] })), false);
      assert.equal(plan.couldMatch(10, ...bounds({ decision: [1, 3] })), true);
      assert.equal(plan.couldMatch(10, [], []), true);
      assert.equal(plan.couldMatch(75, [], []), false);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Cross-check: the plan against the ES|QL text.

interface ParsedEsql {
  ruleId: string | null;
  filter: FilterClause[];
  aggregates: AggregateSpec[];
  groupBy: string[];
  condition: ConditionClause[];
  keep: string[];
}

const unquote = (s: string): string => s.trim().replace(/^`(.*)`$/, '$1');

function parseLiteral(s: string): string | number {
  const t = s.trim();
  const str = /^"(.*)"$/.exec(t);
  if (str) return str[1];
  assert.match(t, /^-?\d+(\.\d+)?$/, `literal ${t}`);
  return Number(t);
}

/** A deliberately small parser for the shape of this one rule: FROM | WHERE | STATS ... BY | WHERE | KEEP. */
function parseEsql(text: string): ParsedEsql {
  const ruleId = /^\/\/\s*rule_id:\s*(\S+)/m.exec(text)?.[1] ?? null;
  const query = text.split('\n').filter((l) => !l.trim().startsWith('//')).join(' ').trim();
  const commands = query.split(/\s+\|\s+/).map((c) => c.trim());
  const cmd = (c: string) => c.split(/\s+/)[0].toLowerCase();
  assert.deepEqual(commands.map(cmd), ['from', 'where', 'stats', 'where', 'keep'], 'query shape');

  const filter: FilterClause[] = commands[1].replace(/^where\s+/i, '').split(/\s+and\s+/i).map((clause) => {
    const eq = /^(\S+)\s*==\s*(.+)$/.exec(clause);
    if (eq) return { field: unquote(eq[1]), op: '==', value: parseLiteral(eq[2]) };
    const inn = /^(\S+)\s+in\s*\((.*)\)$/i.exec(clause);
    assert.ok(inn, `unsupported WHERE clause: ${clause}`);
    return { field: unquote(inn[1]), op: 'in', values: inn[2].split(',').map(parseLiteral) };
  });

  const stats = /^stats\s+(.*)\s+by\s+(.*)$/i.exec(commands[2]);
  assert.ok(stats, 'STATS ... BY');
  const aggregates: AggregateSpec[] = stats[1].split(/,\s*(?=Esql\.)/).map((a) => {
    const m = /^(\S+)\s*=\s*(\w+)\((.*)\)$/.exec(a.trim());
    assert.ok(m, `aggregate ${a}`);
    const fn = m[2].toLowerCase();
    assert.ok(fn === 'count' || fn === 'count_distinct' || fn === 'values', `aggregate function ${fn}`);
    const arg = m[3].trim();
    return arg === '' || arg === '*' ? { name: m[1], fn } : { name: m[1], fn, field: unquote(arg) };
  });
  const groupBy = stats[2].split(',').map(unquote);

  const condition: ConditionClause[] = commands[3].replace(/^where\s+/i, '').split(/\s+and\s+/i).map((clause) => {
    const m = /^(\S+)\s*(==|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)$/.exec(clause.trim());
    assert.ok(m, `unsupported post-STATS clause: ${clause}`);
    return { aggregate: m[1], op: m[2] as ConditionClause['op'], value: Number(m[3]) };
  });
  const keep = commands[4].replace(/^keep\s+/i, '').split(',').map(unquote);
  return { ruleId, filter, aggregates, groupBy, condition, keep };
}

const byName = <T extends { name?: string; aggregate?: string }>(xs: T[]): T[] =>
  [...xs].sort((a, b) => String(a.name ?? a.aggregate).localeCompare(String(b.name ?? b.aggregate)));

function compareToPlan(parsed: ParsedEsql, plan: CompiledPlan): void {
  const p = plan.plan;
  assert.equal(parsed.ruleId, p.id, 'rule_id');
  assert.deepEqual(parsed.filter, p.filter, 'WHERE before STATS');
  assert.deepEqual(byName(parsed.aggregates), byName(p.aggregates.map((a) => ({ ...a }))), 'STATS aggregates');
  assert.equal(parsed.aggregates.length, p.aggregates.length);
  assert.deepEqual(parsed.groupBy, p.groupBy, 'BY fields (order matters: it is the group key order)');
  assert.deepEqual(byName(parsed.condition), byName(p.condition), 'WHERE after STATS');
}

describe('rule plan: cross-check against the ES|QL text', () => {
  const text = readFileSync(ESQL_FILE, 'utf8');
  let plan: CompiledPlan;
  before(() => { plan = loadRuleFile(RULE_FILE); });

  it('the parser reads the expected shape (sanity of the parser itself)', () => {
    const q = parseEsql(text);
    assert.equal(q.aggregates.length, 15);
    assert.equal(q.filter.length, 2);
    assert.equal(q.condition.length, 4);
    assert.deepEqual(q.aggregates[1], {
      name: 'Esql.kubernetes_audit_annotations_authorization_k8s_io_decision_count_distinct',
      fn: 'count_distinct', field: 'kubernetes.audit.annotations.authorization_k8s_io/decision',
    });
    assert.deepEqual(q.keep, ['Esql.*', 'kubernetes.audit.user.username', 'kubernetes.audit.sourceIPs']);
  });

  it('the plan implements exactly the text: filter, aggregates, BY fields, condition', () => {
    compareToPlan(parseEsql(text), plan);
  });

  it('every field the text names resolves to an accessor', () => {
    const q = parseEsql(text);
    const fields = [...q.filter.map((f) => f.field), ...q.groupBy, ...q.aggregates.flatMap((a) => (a.field ? [a.field] : []))];
    for (const f of fields) assert.doesNotThrow(() => resolveField(f), f);
  });

  it('KEEP keeps the BY fields', () => {
    const q = parseEsql(text);
    for (const f of q.groupBy) assert.ok(q.keep.includes(f), f);
  });

  // The cross-check must notice an edit on either side.
  const mutations: Array<[string, string, string]> = [
    ['threshold', 'requestURI_count_distinct > 5', 'requestURI_count_distinct > 6'],
    ['operator', 'document_count < 75', 'document_count <= 75'],
    ['decision count', 'decision_count_distinct == 2', 'decision_count_distinct >= 2'],
    ['filter verb', '"patch")', '"patch", "delete")'],
    ['stage', '"ResponseComplete"', '"ResponseStarted"'],
    ['BY order', 'by kubernetes.audit.user.username, kubernetes.audit.sourceIPs', 'by kubernetes.audit.sourceIPs, kubernetes.audit.user.username'],
    ['aggregate field', 'values(kubernetes.audit.userAgent)', 'values(user_agent.original)'],
    ['aggregate fn', 'Esql.kubernetes_audit_verb_count_distinct = count_distinct(', 'Esql.kubernetes_audit_verb_count_distinct = values('],
  ];
  /** Edits the query lines only (the // header quotes parts of the query too). */
  const mutate = (from: string, to: string): string => {
    let hits = 0;
    const out = text.split('\n').map((line) => {
      if (line.trim().startsWith('//') || !line.includes(from)) return line;
      hits++;
      return line.replace(from, to);
    }).join('\n');
    assert.equal(hits, 1, `mutation anchor ${from} is in the query`);
    assert.notEqual(out, text);
    return out;
  };
  for (const [label, from, to] of mutations) {
    it(`fails when the text is edited (${label})`, () => {
      assert.throws(() => compareToPlan(parseEsql(mutate(from, to)), plan), assert.AssertionError);
    });
  }
  it('fails when the plan is edited (threshold, filter, dropped aggregate)', () => {
    const q = parseEsql(text);
    const edits: Array<(p: CompiledPlan['plan']) => void> = [
      (p) => { p.condition = p.condition.map((c) => (c.op === '>' && c.value === 3 ? { ...c, value: 2 } : c)); },
      (p) => { p.filter = p.filter.slice(1); },
      (p) => { p.aggregates = p.aggregates.slice(0, -1); },
      (p) => { p.groupBy = [...p.groupBy].reverse(); },
    ];
    for (const edit of edits) {
      const copy = JSON.parse(JSON.stringify(plan.plan)) as CompiledPlan['plan'];
      edit(copy);
      assert.throws(() => compareToPlan(q, new CompiledPlan(copy)), assert.AssertionError);
    }
  });
});
