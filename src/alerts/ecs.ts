import { ecsAliases } from '../detect/fields';
import { Alert } from './alert';

/** Sets a dotted path in a nested object (ECS documents are nested). */
function setPath(doc: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = doc;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * The alert as an ECS-shaped document: what an Elastic user sees for the same rule (the BY
 * fields and the Esql.* columns), plus the ECS fields SIEMs index on.
 */
export function toEcs(alert: Alert): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    '@timestamp': iso(alert.createdAt),
    event: {
      kind: 'alert',
      id: alert.id,
      module: 'kade',
      dataset: 'kade.alerts',
      start: iso(alert.windowStart),
      end: iso(alert.windowEnd),
      risk_score: alert.riskScore,
      severity: alert.riskScore,
    },
    rule: { id: alert.ruleId, uuid: alert.ruleId, name: alert.ruleName, version: String(alert.ruleVersion) },
    kibana: { alert: { severity: alert.severity, risk_score: alert.riskScore } },
    threat: {
      framework: alert.threat[0]?.framework ?? 'MITRE ATT&CK',
      tactic: {
        id: alert.threat.map((t) => t.tacticId),
        name: alert.threat.map((t) => t.tacticName),
        reference: alert.threat.map((t) => t.tacticReference),
      },
      technique: {
        id: alert.threat.flatMap((t) => t.techniqueIds),
        name: alert.threat.flatMap((t) => t.techniqueNames),
        reference: alert.threat.flatMap((t) => t.techniqueReferences),
      },
    },
  };
  alert.groupFields.forEach((field, i) => {
    const value = alert.groupValues[i];
    setPath(doc, field, value);
    for (const alias of ecsAliases(field)) setPath(doc, alias, value);
  });
  setPath(doc, 'kade.window', { start: alert.windowStart, end: alert.windowEnd });
  doc.Esql = { ...alert.esql };
  return doc;
}
