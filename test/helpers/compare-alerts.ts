import { Alert } from '../../src/alerts/alert';
import { OracleAlert } from './esql-oracle';

/** One alert reduced to what the contract fixes: group, window end and every Esql value (sets sorted). */
export interface CanonicalAlert {
  group: Array<string | null>;
  windowEnd: number;
  esql: Record<string, number | Array<string | number>>;
}

function sortValues(v: unknown): number | Array<string | number> {
  if (v === null || v === undefined) return []; // ES|QL's null values() ~ the oracle's []
  if (Array.isArray(v)) return [...(v as Array<string | number>)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return v as number;
}

export function canonicalKade(a: Alert): CanonicalAlert {
  const esql: CanonicalAlert['esql'] = {};
  for (const k of Object.keys(a.esql).sort()) esql[k] = sortValues(a.esql[k]);
  return { group: a.groupValues, windowEnd: a.windowEnd, esql };
}

export function canonicalOracle(o: OracleAlert): CanonicalAlert {
  const esql: CanonicalAlert['esql'] = {};
  for (const k of Object.keys(o.esql).sort()) esql[k] = sortValues(o.esql[k]);
  return { group: [o.username, o.sourceIp], windowEnd: o.windowEnd, esql };
}

export function alertKey(a: CanonicalAlert): string {
  return JSON.stringify([a.group, a.windowEnd]);
}

/** Differences between two alert sets, for assertion messages (empty when equal). */
export function diffAlerts(actual: CanonicalAlert[], expected: CanonicalAlert[], max = 10): string[] {
  const byKey = (xs: CanonicalAlert[]): Map<string, CanonicalAlert> => new Map(xs.map((x) => [alertKey(x), x]));
  const a = byKey(actual);
  const e = byKey(expected);
  const out: string[] = [];
  if (a.size !== actual.length) out.push(`kade produced ${actual.length - a.size} duplicate (group, window) alerts`);
  for (const [k, x] of e) {
    const y = a.get(k);
    if (y === undefined) out.push(`missing ${k} ${JSON.stringify(x.esql).slice(0, 300)}`);
    else if (JSON.stringify(y.esql) !== JSON.stringify(x.esql)) out.push(`different Esql for ${k}:\n  kade   ${JSON.stringify(y.esql)}\n  oracle ${JSON.stringify(x.esql)}`);
  }
  for (const k of a.keys()) if (!e.has(k)) out.push(`unexpected ${k} ${JSON.stringify(a.get(k)?.esql).slice(0, 300)}`);
  return out.slice(0, max).concat(out.length > max ? [`... and ${out.length - max} more`] : []);
}
