import { createHash } from 'node:crypto';
import { CompiledPlan, GroupKey, WindowAggregates } from '../detect/compiled-plan';
import { FieldValue } from '../detect/fields';

export type EsqlValue = number | FieldValue[] | null;

/** A rule match for one group over one window: the TypeScript face of schemas/Alert.avsc. */
export interface Alert {
  id: string;
  ruleId: string;
  ruleName: string;
  ruleVersion: number;
  severity: string;
  riskScore: number;
  threat: Array<{
    framework: string; tacticId: string; tacticName: string; tacticReference: string;
    techniqueIds: string[]; techniqueNames: string[]; techniqueReferences: string[];
  }>;
  groupFields: string[];
  groupValues: GroupKey;
  windowStart: number;
  windowEnd: number;
  createdAt: number;
  /** The query's Esql.* columns without the prefix; values() are arrays in no particular order. */
  esql: Record<string, EsqlValue>;
}

/** hash(rule id, rule version, group key, window end): the same match always has the same id. */
export function alertId(ruleId: string, ruleVersion: number, groupKey: GroupKey, windowEnd: number): string {
  return createHash('sha256')
    .update(JSON.stringify([ruleId, ruleVersion, groupKey, windowEnd]))
    .digest('hex')
    .slice(0, 32);
}

const ESQL_PREFIX = 'Esql.';

export function buildAlert(
  plan: CompiledPlan,
  groupKey: GroupKey,
  windowEnd: number,
  aggregates: WindowAggregates,
  members: Map<number, string[]>,
  createdAt: number,
): Alert {
  const p = plan.plan;
  const fieldIndex = new Map(plan.fields.map((f) => [f.accessor.name, f]));
  const esql: Record<string, EsqlValue> = {};
  for (const agg of p.aggregates) {
    const name = agg.name.startsWith(ESQL_PREFIX) ? agg.name.slice(ESQL_PREFIX.length) : agg.name;
    if (agg.fn === 'count') {
      esql[name] = aggregates.count;
      continue;
    }
    const field = fieldIndex.get(agg.field as string)!;
    if (agg.fn === 'count_distinct') {
      esql[name] = aggregates.distinct.get(field.index) ?? 0;
    } else {
      const raw = members.get(field.index) ?? [];
      const values = field.accessor.type === 'integer' ? raw.map(Number) : raw;
      // ES|QL's values() of nothing is null.
      esql[name] = values.length === 0 ? null : values;
    }
  }
  return {
    id: alertId(p.id, p.version, groupKey, windowEnd),
    ruleId: p.id,
    ruleName: p.name,
    ruleVersion: p.version,
    severity: p.severity,
    riskScore: p.riskScore,
    threat: p.threat.map((t) => ({
      framework: t.framework,
      tacticId: t.tactic.id,
      tacticName: t.tactic.name,
      tacticReference: t.tactic.reference,
      techniqueIds: t.technique.map((x) => x.id),
      techniqueNames: t.technique.map((x) => x.name),
      techniqueReferences: t.technique.map((x) => x.reference),
    })),
    groupFields: [...p.groupBy],
    groupValues: groupKey,
    windowStart: windowEnd - p.window.sizeMs,
    windowEnd,
    createdAt,
    esql,
  };
}
