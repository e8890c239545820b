import { Alert } from './alert';

const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

function show(v: unknown): string {
  if (v === null) return '-';
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map(String).sort().join(', ');
  return String(v);
}

/** A readable, multi-line rendering of an alert for a terminal. */
export function formatAlert(a: Alert): string {
  const group = a.groupFields.map((f, i) => `${f}=${a.groupValues[i] ?? 'null'}`).join('  ');
  const threat = a.threat.map((t) => `${t.tacticId} ${t.tacticName} / ${t.techniqueIds.join(',')}`).join('; ');
  const lines = [
    `ALERT ${a.ruleName}  [${a.severity}, risk ${a.riskScore}, ${threat}]`,
    `  ${group}`,
    `  window ${iso(a.windowStart)} .. ${iso(a.windowEnd)}  id ${a.id}`,
  ];
  const counts = Object.entries(a.esql).filter(([, v]) => typeof v === 'number');
  lines.push(`  ${counts.map(([k, v]) => `${k}=${String(v)}`).join('  ')}`);
  for (const [k, v] of Object.entries(a.esql)) if (typeof v !== 'number') lines.push(`  ${k}: ${show(v)}`);
  return lines.join('\n');
}
