import { AuditRecord, emptyAuditRecord } from '../../src/ingest/audit-record';

/** A normalized record for detector-level tests (fields as the seed rule reads them). */
export function auditRecord(over: {
  username?: string | null; ip?: string; verb?: string; uri?: string; resource?: string | null;
  decision?: string | null; code?: number; namespace?: string;
}): AuditRecord {
  const r = emptyAuditRecord('default');
  r.stage = 'ResponseComplete';
  r.verb = over.verb ?? 'get';
  r.requestURI = over.uri ?? '/api/v1/pods';
  r.user = { username: over.username === undefined ? 'mallory' : over.username, uid: null, groups: ['system:authenticated'] };
  r.sourceIPs = over.ip === undefined ? ['203.0.113.9'] : [over.ip];
  r.userAgent = 'kubectl/v1.30';
  if (over.resource !== null) {
    r.objectRef = { resource: over.resource ?? 'pods', subresource: null, namespace: over.namespace ?? 'default', name: null, apiGroup: null, apiVersion: 'v1' };
  }
  r.responseStatus = { code: over.code ?? 200, status: null, reason: null, message: null };
  if (over.decision !== null) r.annotations['authorization.k8s.io/decision'] = over.decision ?? 'allow';
  return r;
}
