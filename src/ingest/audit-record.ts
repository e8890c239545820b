/** A normalized audit Event: the TypeScript face of schemas/AuditRecord.avsc. */
export interface UserInfo {
  username: string | null;
  uid: string | null;
  groups: string[];
}

export interface ObjectReference {
  resource: string | null;
  subresource: string | null;
  namespace: string | null;
  name: string | null;
  apiGroup: string | null;
  apiVersion: string | null;
}

export interface ResponseStatus {
  code: number | null;
  status: string | null;
  reason: string | null;
  message: string | null;
}

export interface AuditRecord {
  auditID: string | null;
  apiVersion: string | null;
  level: string | null;
  stage: string | null;
  verb: string | null;
  requestURI: string | null;
  user: UserInfo;
  impersonatedUser: UserInfo | null;
  sourceIPs: string[];
  userAgent: string | null;
  objectRef: ObjectReference | null;
  responseStatus: ResponseStatus | null;
  /** Annotation values; empty strings are dropped (Elastic's pipeline drops them too). */
  annotations: Record<string, string>;
  /** Microseconds since the epoch. */
  requestReceivedTimestamp: number | null;
  stageTimestamp: number | null;
  dataStreamNamespace: string;
}

export function emptyAuditRecord(namespace: string): AuditRecord {
  return {
    auditID: null, apiVersion: null, level: null, stage: null, verb: null, requestURI: null,
    user: { username: null, uid: null, groups: [] }, impersonatedUser: null, sourceIPs: [],
    userAgent: null, objectRef: null, responseStatus: null, annotations: {},
    requestReceivedTimestamp: null, stageTimestamp: null, dataStreamNamespace: namespace,
  };
}
