import { AuditRecord, emptyAuditRecord } from '../ingest/audit-record';
import { validateWindowSpec } from '../window/panes';
import { FieldAccessor, FieldValue, resolveField } from './fields';
import { capValue } from './cap-value';
import { AggregateSpec, ComparisonOp, ConditionClause, RulePlan } from './plan';

/** A source field that some aggregate reads, with the index that tags its members in Redis. */
export interface TrackedField {
  index: number;
  accessor: FieldAccessor;
  /** Some values() aggregate needs its members. */
  needValues: boolean;
  /** Some count_distinct aggregate reads it. */
  needDistinct: boolean;
  /** Its values go into the pane records in Redis (see CompiledPlan.valuesFromTopic). */
  stored: boolean;
  /** Stored in their short form (value-hash.ts: itself up to 8 bytes, else a 64-bit hash). */
  hashed: boolean;
}

/** Per-window aggregate inputs as the state store returns them. */
export interface WindowAggregates {
  count: number;
  /** Some pane reached the rule's count bound and dropped its sets: the rule cannot match. */
  pruned: boolean;
  /** Distinct count per tracked field index. */
  distinct: Map<number, number>;
}

export type GroupKey = Array<string | null>;

/** Largest K of a clause field the detector decides in memory (see CompiledPlan.clauseFields). */
export const MAX_MEMORY_K = 64;

/**
 * Largest count bound (pruneAt) under which a matching window's records are re-read from the
 * keyed topic for its values() (CompiledPlan.valuesFromTopic): at most this many per alert.
 */
export const MAX_REREAD_RECORDS = 1000;

/** A rule plan compiled into functions the router and detector call. */
export class CompiledPlan {
  readonly fields: TrackedField[];
  private readonly groupAccessors: FieldAccessor[];
  private readonly filterFns: Array<(r: AuditRecord) => boolean>;
  private readonly conditionFns: Array<(a: WindowAggregates) => boolean>;
  /** The condition's clauses on count (field -1) or on a count_distinct of a tracked field. */
  private readonly clauses: Array<{ field: number; op: ComparisonOp; value: number }>;
  /**
   * Tracked fields the condition compares a count_distinct of, each with the smallest K above
   * every constant it is compared with: knowing a window's distinct count exactly below K, or
   * only that it is >= K, decides every clause on the field (see couldMatch).
   */
  readonly clauseFields: Array<{ index: number; k: number }>;
  /** A pane whose own count reaches this can never be part of a match (0: no upper bound). */
  readonly pruneAt: number;
  /**
   * The condition bounds count() from above (pruneAt > 0), so a matching window holds fewer than
   * pruneAt records: its values() are computed from those records, re-read from the keyed topic by
   * the offsets its pane records keep, and Redis keeps only what count_distinct needs, in short
   * form. Without an upper bound a window's records are unbounded: values() stay in Redis.
   */
  readonly valuesFromTopic: boolean;
  /** The fields whose values go into the pane records (all, or the count_distinct ones). */
  readonly storedFields: TrackedField[];
  /** Stored fields that switch to a HyperLogLog above the exact threshold. */
  readonly switchable: number[];

  constructor(readonly plan: RulePlan) {
    validateWindowSpec(plan.window);
    if (plan.groupBy.length === 0) throw new Error(`rule ${plan.id}: groupBy must name at least one field`);
    this.groupAccessors = plan.groupBy.map(resolveField);
    this.filterFns = plan.filter.map((clause) => {
      const field = resolveField(clause.field);
      const allowed = new Set<FieldValue>(clause.op === '==' ? [clause.value] : clause.values);
      // ES|QL compares single values; a null or multi-valued field makes the clause null: filtered out.
      return (r: AuditRecord) => {
        const v = field.read(r);
        return v.length === 1 && allowed.has(v[0]);
      };
    });
    const byName = new Map<string, TrackedField>();
    for (const agg of plan.aggregates) {
      if (agg.fn === 'count') continue;
      if (agg.field === undefined) throw new Error(`rule ${plan.id}: aggregate ${agg.name} (${agg.fn}) needs a field`);
      let tf = byName.get(agg.field);
      if (tf === undefined) {
        tf = { index: byName.size, accessor: resolveField(agg.field), needValues: false, needDistinct: false, stored: true, hashed: false };
        byName.set(agg.field, tf);
      }
      if (agg.fn === 'values') tf.needValues = true;
      else tf.needDistinct = true;
    }
    this.fields = [...byName.values()];
    const aggByName = new Map(plan.aggregates.map((a) => [a.name, a]));
    this.conditionFns = plan.condition.map((clause) => {
      const agg = aggByName.get(clause.aggregate);
      if (agg === undefined) throw new Error(`rule ${plan.id}: condition names unknown aggregate ${clause.aggregate}`);
      if (agg.fn === 'values') throw new Error(`rule ${plan.id}: condition on values() aggregate ${agg.name} is not supported`);
      const read = agg.fn === 'count'
        ? (a: WindowAggregates) => a.count
        : ((idx: number) => (a: WindowAggregates) => a.distinct.get(idx) ?? 0)(byName.get(agg.field as string)!.index);
      const cmp = comparator(clause.op);
      return (a: WindowAggregates) => cmp(read(a), clause.value);
    });
    this.clauses = plan.condition.map((clause) => {
      const agg = aggByName.get(clause.aggregate) as AggregateSpec;
      return { field: agg.fn === 'count' ? -1 : (byName.get(agg.field as string) as TrackedField).index, op: clause.op, value: clause.value };
    });
    const ks = new Map<number, number>();
    for (const c of this.clauses) {
      if (c.field < 0) continue;
      ks.set(c.field, Math.max(ks.get(c.field) ?? 1, Math.floor(c.value) + 1));
    }
    // Far below the exact threshold, so a pane holding K values is exact in Redis too (no
    // HyperLogLog); and small (the detector keeps up to K - 1 values per pane in an array): a
    // field compared with a larger constant is left to Redis. Smallest K first: the detector
    // checks the cheapest unions first and stops at the first clause that cannot hold.
    this.clauseFields = [...ks].filter(([, k]) => k <= Math.min(MAX_MEMORY_K, plan.distinctExactThreshold / 2)).map(([index, k]) => ({ index, k }))
      .sort((a, b) => a.k - b.k);
    this.pruneAt = countUpperBound(plan.aggregates, plan.condition);
    this.valuesFromTopic = this.pruneAt > 0 && this.pruneAt <= MAX_REREAD_RECORDS;
    if (this.valuesFromTopic) {
      for (const f of this.fields) {
        f.stored = f.needDistinct;
        f.hashed = f.needDistinct;
      }
    }
    this.storedFields = this.fields.filter((f) => f.stored);
    // A field whose values() Redis does not have to return can become a HyperLogLog.
    this.switchable = this.storedFields.filter((f) => f.needDistinct && (!f.needValues || this.valuesFromTopic)).map((f) => f.index);
  }

  /**
   * False only if no window whose count is `count` and whose distinct count of each tracked field
   * i lies in [lo[i], hi[i]] can match (an index missing from lo/hi: unknown, [0, infinity)). The
   * detector skips the exact evaluation of such windows.
   */
  couldMatch(count: number, lo: ArrayLike<number>, hi: ArrayLike<number>): boolean {
    if (!this.countCouldMatch(count)) return false;
    for (const c of this.clauses) {
      if (c.field >= 0 && !possible(c.op, lo[c.field] ?? 0, hi[c.field] ?? Infinity, c.value)) return false;
    }
    return true;
  }

  /** False only if no window with this count can match (the clauses on count alone). */
  countCouldMatch(count: number): boolean {
    for (const c of this.clauses) if (c.field < 0 && !possible(c.op, count, count, c.value)) return false;
    return true;
  }

  /** False only if no window whose distinct count of tracked field `field` lies in [lo, hi] can match. */
  fieldCouldMatch(field: number, lo: number, hi: number): boolean {
    for (const c of this.clauses) if (c.field === field && !possible(c.op, lo, hi, c.value)) return false;
    return true;
  }

  get id(): string { return this.plan.id; }

  /** The query's WHERE before STATS. */
  accepts(record: AuditRecord): boolean {
    for (const f of this.filterFns) if (!f(record)) return false;
    return true;
  }

  /**
   * The groups an event belongs to: the cross product of the distinct values of each BY field;
   * a null or missing value is a group of its own.
   */
  groupsOf(record: AuditRecord): GroupKey[] {
    let keys: GroupKey[] = [[]];
    for (const acc of this.groupAccessors) {
      const raw = acc.read(record);
      const values: Array<string | null> = raw.length === 0 ? [null] : [...new Set(raw.map((v) => capValue(String(v))))];
      if (values.length === 1) {
        for (const k of keys) k.push(values[0]);
      } else {
        const next: GroupKey[] = [];
        for (const k of keys) for (const v of values) next.push([...k, v]);
        keys = next;
      }
    }
    return keys;
  }

  /** Copies only what the aggregates need, to keep the internal topic small. */
  project(record: AuditRecord): AuditRecord {
    const out = emptyAuditRecord(record.dataStreamNamespace);
    for (const f of this.fields) f.accessor.project(record, out);
    return out;
  }

  /** The query's WHERE after STATS. */
  matches(a: WindowAggregates): boolean {
    if (a.pruned) return false;
    for (const f of this.conditionFns) if (!f(a)) return false;
    return true;
  }
}

/** Whether `x op value` holds for some x in [lo, hi]. */
function possible(op: ComparisonOp, lo: number, hi: number, value: number): boolean {
  switch (op) {
    case '==': return lo <= value && value <= hi;
    case '!=': return !(lo === value && hi === value);
    case '<': return lo < value;
    case '<=': return lo <= value;
    case '>': return hi > value;
    case '>=': return hi >= value;
  }
}

function comparator(op: ComparisonOp): (a: number, b: number) => boolean {
  switch (op) {
    case '==': return (a, b) => a === b;
    case '!=': return (a, b) => a !== b;
    case '<': return (a, b) => a < b;
    case '<=': return (a, b) => a <= b;
    case '>': return (a, b) => a > b;
    case '>=': return (a, b) => a >= b;
  }
}

/**
 * The smallest count K such that count >= K can never match (count < K or count <= K - 1 in the
 * condition), or 0 when the condition does not bound count() from above.
 */
function countUpperBound(aggregates: AggregateSpec[], condition: ConditionClause[]): number {
  const counts = new Set(aggregates.filter((a) => a.fn === 'count').map((a) => a.name));
  let bound = 0;
  for (const c of condition) {
    if (!counts.has(c.aggregate)) continue;
    let k = 0;
    if (c.op === '<') k = Math.ceil(c.value);
    else if (c.op === '<=') k = Math.floor(c.value) + 1;
    else if (c.op === '==') k = Math.floor(c.value) + 1;
    if (k > 0 && (bound === 0 || k < bound)) bound = k;
  }
  return bound;
}
