import { AuditRecord } from '../ingest/audit-record';

/**
 * Field names as the Elastic Kubernetes integration indexes an audit Event, resolved onto
 * kade's AuditRecord. This is the integration's mapping, not any rule's: a rule names its fields
 * the way its ES|QL text does, and this module is the only place that knows where each lives.
 */
export type FieldValue = string | number;
export type FieldType = 'keyword' | 'integer';

export interface FieldAccessor {
  name: string;
  type: FieldType;
  /** Values of the field in one record; empty when null or missing (multi-valued fields give several). */
  read(record: AuditRecord): FieldValue[];
  /** The same without an array per call (hot loop): one value, several, or null/undefined for none. */
  readRaw(record: AuditRecord): FieldValue | FieldValue[] | null | undefined;
  /** Copies what this field needs from src into dst (projection onto the internal topic). */
  project(src: AuditRecord, dst: AuditRecord): void;
  /** Where the field lives in the AuditRecord Avro schema (read straight from its bytes, see keyed-scan.ts). */
  path: FieldPath;
}

/**
 * A field's place in AuditRecord: nested record fields by name; with mapKey, the entries of the
 * map at that path whose key it accepts.
 */
export interface FieldPath {
  fields: string[];
  mapKey?: (key: string) => boolean;
}

const AUDIT = 'kubernetes.audit.';

type Reader = (r: AuditRecord) => FieldValue | FieldValue[] | null | undefined;

interface Def {
  type: FieldType;
  read: Reader;
  project: (src: AuditRecord, dst: AuditRecord) => void;
  path: FieldPath;
}

const top = <K extends keyof AuditRecord>(key: K): Def => ({
  type: 'keyword',
  read: (r) => r[key] as unknown as FieldValue | FieldValue[] | null,
  project: (s, d) => { d[key] = s[key]; },
  path: { fields: [key] },
});

const sub = <K extends 'objectRef' | 'responseStatus' | 'user' | 'impersonatedUser'>(
  key: K, field: string, type: FieldType = 'keyword',
): Def => ({
  type,
  read: (r) => {
    const o = r[key] as unknown as Record<string, FieldValue | FieldValue[] | null> | null;
    return o === null ? null : o[field];
  },
  project: (s, d) => {
    const from = s[key] as unknown as Record<string, unknown> | null;
    if (from === null) return;
    const to = (d[key] ?? (d[key] = emptyOf(key) as AuditRecord[K])) as unknown as Record<string, unknown>;
    to[field] = from[field];
  },
  path: { fields: [key, field] },
});

function emptyOf(key: 'objectRef' | 'responseStatus' | 'user' | 'impersonatedUser'): unknown {
  switch (key) {
    case 'objectRef': return { resource: null, subresource: null, namespace: null, name: null, apiGroup: null, apiVersion: null };
    case 'responseStatus': return { code: null, status: null, reason: null, message: null };
    default: return { username: null, uid: null, groups: [] };
  }
}

const DEFS: Record<string, Def> = {
  [`${AUDIT}auditID`]: top('auditID'),
  [`${AUDIT}apiVersion`]: top('apiVersion'),
  [`${AUDIT}level`]: top('level'),
  [`${AUDIT}stage`]: top('stage'),
  [`${AUDIT}verb`]: top('verb'),
  [`${AUDIT}requestURI`]: top('requestURI'),
  [`${AUDIT}sourceIPs`]: top('sourceIPs'),
  [`${AUDIT}userAgent`]: top('userAgent'),
  [`${AUDIT}user.username`]: sub('user', 'username'),
  [`${AUDIT}user.uid`]: sub('user', 'uid'),
  [`${AUDIT}user.groups`]: sub('user', 'groups'),
  [`${AUDIT}impersonatedUser.username`]: sub('impersonatedUser', 'username'),
  [`${AUDIT}impersonatedUser.uid`]: sub('impersonatedUser', 'uid'),
  [`${AUDIT}impersonatedUser.groups`]: sub('impersonatedUser', 'groups'),
  [`${AUDIT}objectRef.resource`]: sub('objectRef', 'resource'),
  [`${AUDIT}objectRef.subresource`]: sub('objectRef', 'subresource'),
  [`${AUDIT}objectRef.namespace`]: sub('objectRef', 'namespace'),
  [`${AUDIT}objectRef.name`]: sub('objectRef', 'name'),
  [`${AUDIT}objectRef.apiGroup`]: sub('objectRef', 'apiGroup'),
  [`${AUDIT}objectRef.apiVersion`]: sub('objectRef', 'apiVersion'),
  [`${AUDIT}responseStatus.code`]: sub('responseStatus', 'code', 'integer'),
  [`${AUDIT}responseStatus.status`]: sub('responseStatus', 'status'),
  [`${AUDIT}responseStatus.reason`]: sub('responseStatus', 'reason'),
  [`${AUDIT}responseStatus.message`]: sub('responseStatus', 'message'),
  // ECS fields the integration derives from the audit Event.
  'user.name': sub('user', 'username'),
  'user.id': sub('user', 'uid'),
  'user_agent.original': top('userAgent'),
  'source.ip': top('sourceIPs'),
  'client.ip': top('sourceIPs'),
  'event.action': top('verb'),
  'orchestrator.namespace': sub('objectRef', 'namespace'),
  'orchestrator.resource.type': sub('objectRef', 'resource'),
  'orchestrator.resource.name': sub('objectRef', 'name'),
  'data_stream.namespace': top('dataStreamNamespace'),
};

const ANNOTATIONS = `${AUDIT}annotations.`;

/**
 * The integration "dedots" annotation keys (authorization.k8s.io/decision becomes
 * authorization_k8s_io/decision); a name under kubernetes.audit.annotations. matches the
 * annotation whose dedotted key equals it.
 */
function annotationDef(dedotted: string): Def {
  let cachedKeys: string[] | null = null;
  const matches = (key: string): boolean => key.replace(/\./g, '_') === dedotted;
  return {
    type: 'keyword',
    read: (r) => {
      // Fast path: the common case is the one original key the name came from.
      if (cachedKeys !== null) {
        for (const k of cachedKeys) {
          const v = r.annotations[k];
          if (v !== undefined) return v;
        }
      }
      for (const [k, v] of Object.entries(r.annotations)) {
        if (matches(k)) {
          cachedKeys = cachedKeys === null ? [k] : cachedKeys.includes(k) ? cachedKeys : [...cachedKeys, k];
          return v;
        }
      }
      return null;
    },
    project: (s, d) => {
      for (const [k, v] of Object.entries(s.annotations)) if (matches(k)) d.annotations[k] = v;
    },
    path: { fields: ['annotations'], mapKey: matches },
  };
}

/** Resolves a field name as an ES|QL query over logs-kubernetes.audit_logs-* names it. */
export function resolveField(name: string): FieldAccessor {
  const def = name.startsWith(ANNOTATIONS) ? annotationDef(name.slice(ANNOTATIONS.length)) : DEFS[name];
  if (def === undefined) throw new Error(`unknown field "${name}": kade does not map it onto the audit Event`);
  return {
    name,
    type: def.type,
    read: (record) => {
      const v = def.read(record);
      if (v === null || v === undefined) return [];
      return Array.isArray(v) ? v : [v];
    },
    readRaw: def.read,
    project: def.project,
    path: def.path,
  };
}

export function knownFields(): string[] {
  return Object.keys(DEFS);
}

/** ECS fields the integration copies from an audit field (the pipeline's derived fields). */
const ECS_ALIASES: Record<string, string[]> = {
  [`${AUDIT}user.username`]: ['user.name'],
  [`${AUDIT}user.uid`]: ['user.id'],
  [`${AUDIT}sourceIPs`]: ['source.ip', 'client.ip'],
  [`${AUDIT}userAgent`]: ['user_agent.original'],
  [`${AUDIT}verb`]: ['event.action'],
};

export function ecsAliases(name: string): string[] {
  return ECS_ALIASES[name] ?? [];
}
