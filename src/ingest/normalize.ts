import { AuditRecord, ObjectReference, ResponseStatus, UserInfo } from './audit-record';
import { BadInputError } from './errors';

export type TimeField = 'requestReceivedTimestamp' | 'stageTimestamp';

export interface NormalizeOptions {
  timeField: TimeField;
  /** Deeper JSON is rejected before parsing (default 64; audit Events nest about 10 deep). */
  maxJsonDepth?: number;
  /** data_stream.namespace of these records. */
  namespace: string;
  maxMessageBytes: number;
}

export interface NormalizedEvent {
  record: AuditRecord;
  /** Event time in ms since the epoch. */
  eventTime: number;
}

export interface ItemFailure {
  /** Position of the failed item inside the message (0 for a single Event). */
  index: number;
  error: BadInputError;
}

export interface DecodedMessage {
  /** Each good event with its position inside the message. */
  events: Array<NormalizedEvent & { index: number }>;
  failures: ItemFailure[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes one raw Kafka value: an audit Event, an EventList, or the Azure diagnostic envelope
 * ({records: [{properties: {log: "<Event JSON>"}}]} or one such record). A message that cannot be
 * read at all throws BadInputError; an EventList keeps its good items and reports each bad one.
 */
export function decodeRawMessage(value: Buffer | null, opts: NormalizeOptions): DecodedMessage {
  if (value === null || value.length === 0) throw new BadInputError('empty', 'record has no value');
  if (value.length > opts.maxMessageBytes) {
    throw new BadInputError('too-large', `record of ${value.length} bytes exceeds ${opts.maxMessageBytes}`);
  }
  let text: string;
  try {
    text = utf8.decode(value);
  } catch (cause) {
    throw new BadInputError('invalid-utf8', 'record value is not valid UTF-8', { cause });
  }
  const maxDepth = opts.maxJsonDepth ?? DEFAULT_MAX_DEPTH;
  const doc = parseJson(text, maxDepth);
  const out: DecodedMessage = { events: [], failures: [] };
  const items = unwrap(doc);
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    try {
      const event = typeof item === 'string' ? parseJson(item, maxDepth) : item;
      const { record, eventTime } = normalizeEvent(event, opts);
      out.events.push({ record, eventTime, index });
    } catch (err) {
      if (!(err instanceof BadInputError)) throw err;
      out.failures.push({ index, error: err });
    }
  }
  return out;
}

const DEFAULT_MAX_DEPTH = 64;

/** True if brackets outside strings nest deeper than max (a linear scan, no parse). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/**
 * True if the text holds at most `max` opening brackets, so it cannot nest deeper than `max`.
 * indexOf runs natively and an audit Event has a handful of brackets: this skips the char loop
 * of jsonDepthExceeds (as slow as JSON.parse itself) for nearly every record.
 */
export function fewBrackets(text: string, max: number): boolean {
  let n = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) if (++n > max) return false;
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) if (++n > max) return false;
  return true;
}

function parseJson(text: string, maxDepth: number): unknown {
  if (!fewBrackets(text, maxDepth) && jsonDepthExceeds(text, maxDepth)) throw new BadInputError('too-deep', `JSON nests deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(text);
  } catch (cause) {
    // A RangeError here is nesting too deep for the parser: still bad input, never a crash.
    throw new BadInputError('invalid-json', `value is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

/** The Events inside a decoded document (strings are Event JSON still to parse). */
function unwrap(doc: unknown): unknown[] {
  if (!isObject(doc)) {
    if (Array.isArray(doc)) return doc;
    throw new BadInputError('not-an-object', `expected a JSON object, got ${describe(doc)}`);
  }
  if (doc.kind === 'EventList') {
    if (!Array.isArray(doc.items)) throw new BadInputError('invalid-field', 'EventList.items must be an array');
    return doc.items;
  }
  if (Array.isArray(doc.records)) return doc.records.map(azureLog);
  if (isObject(doc.properties) && typeof doc.properties.log === 'string') return [doc.properties.log];
  return [doc];
}

function azureLog(record: unknown): unknown {
  if (isObject(record) && isObject(record.properties) && typeof record.properties.log === 'string') return record.properties.log;
  return record;
}

/** Normalizes one audit.k8s.io Event (v1 or v1beta1); throws BadInputError when it is not one. */
export function normalizeEvent(event: unknown, opts: Pick<NormalizeOptions, 'timeField' | 'namespace'>): NormalizedEvent {
  if (!isObject(event)) throw new BadInputError('not-an-object', `expected an audit Event object, got ${describe(event)}`);
  const apiVersion = optString(event, 'apiVersion');
  if (event.kind !== 'Event' && !(apiVersion !== null && apiVersion.startsWith('audit.k8s.io/'))) {
    if (isObject(event.protoPayload)) throw new BadInputError('unsupported-format', 'GKE Cloud Logging entries are not supported yet');
    throw new BadInputError('not-an-audit-event', 'object is neither kind Event nor apiVersion audit.k8s.io/*');
  }
  const requestReceived = optTime(event, 'requestReceivedTimestamp');
  const stage = optTime(event, 'stageTimestamp');
  const legacy = optTime(event, 'timestamp');
  const created = isObject(event.metadata) ? optTime(event.metadata, 'creationTimestamp', 'metadata.') : null;
  const chosen = opts.timeField === 'stageTimestamp' ? stage ?? requestReceived : requestReceived ?? stage;
  const micros = chosen ?? legacy ?? created;
  if (micros === null) throw new BadInputError('missing-event-time', `event has no ${opts.timeField} (nor any other timestamp)`);

  const record: AuditRecord = {
    auditID: optString(event, 'auditID'),
    apiVersion,
    level: optString(event, 'level'),
    stage: optString(event, 'stage'),
    verb: optString(event, 'verb'),
    requestURI: optString(event, 'requestURI'),
    user: userInfo(event.user, 'user') ?? { username: null, uid: null, groups: [] },
    impersonatedUser: userInfo(event.impersonatedUser, 'impersonatedUser'),
    sourceIPs: stringArray(event.sourceIPs, 'sourceIPs'),
    userAgent: optString(event, 'userAgent'),
    objectRef: objectRef(event.objectRef),
    responseStatus: responseStatus(event.responseStatus),
    annotations: annotations(event.annotations),
    requestReceivedTimestamp: requestReceived ?? legacy,
    stageTimestamp: stage ?? legacy,
    dataStreamNamespace: opts.namespace,
  };
  return { record, eventTime: Math.floor(micros / 1000) };
}

function userInfo(value: unknown, path: string): UserInfo | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw wrongType(path, 'an object', value);
  return {
    username: optString(value, 'username', `${path}.`),
    uid: optString(value, 'uid', `${path}.`),
    groups: stringArray(value.groups, `${path}.groups`),
  };
}

function objectRef(value: unknown): ObjectReference | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw wrongType('objectRef', 'an object', value);
  const p = 'objectRef.';
  return {
    resource: optString(value, 'resource', p),
    subresource: optString(value, 'subresource', p),
    namespace: optString(value, 'namespace', p),
    name: optString(value, 'name', p),
    apiGroup: optString(value, 'apiGroup', p),
    apiVersion: optString(value, 'apiVersion', p),
  };
}

function responseStatus(value: unknown): ResponseStatus | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw wrongType('responseStatus', 'an object', value);
  const code = value.code;
  if (code !== undefined && code !== null && !(typeof code === 'number' && Number.isInteger(code) && code >= INT32_MIN && code <= INT32_MAX)) {
    throw wrongType('responseStatus.code', 'a 32-bit integer', code);
  }
  const p = 'responseStatus.';
  return {
    code: typeof code === 'number' ? code : null,
    status: optString(value, 'status', p),
    reason: optString(value, 'reason', p),
    message: optString(value, 'message', p),
  };
}

function annotations(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw wrongType('annotations', 'an object', value);
  const out: Record<string, string> = {};
  for (const key in value) {
    const v = value[key];
    if (typeof v !== 'string') throw wrongType(`annotations["${key}"]`, 'a string', v);
    // An empty annotation is absent: Elastic's ingest pipeline drops empty values.
    if (v.length > 0) out[key] = v;
  }
  return out;
}

function stringArray(value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw wrongType(path, 'an array of strings', value);
  for (const v of value) if (typeof v !== 'string') throw wrongType(path, 'an array of strings', v);
  return value as string[];
}

function optString(obj: Record<string, unknown>, key: string, prefix = ''): string | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw wrongType(prefix + key, 'a string', v);
  return v;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|z|+hh:mm|-hh:mm)`, as kube-apiserver
 * writes them) to microseconds since the epoch; sub-microsecond digits are dropped. Impossible
 * dates and times (Feb 30, 24:00, :60, offsets past 23:59) are null, and so are years before 0100
 * (the earlier Date-based parser could not represent them either). Hand-written: it runs up to four
 * times per event, and a regex, Date.parse and a split cost several times more.
 */
export function parseTimestampMicros(text: string): number | null {
  const n = text.length;
  if (n < 20 || n > 35) return null;
  const y = digits(text, 0, 4);
  const mo = digits(text, 5, 2);
  const d = digits(text, 8, 2);
  const h = digits(text, 11, 2);
  const mi = digits(text, 14, 2);
  const se = digits(text, 17, 2);
  if ((y | mo | d | h | mi | se) < 0) return null;
  if (text.charCodeAt(4) !== 0x2d || text.charCodeAt(7) !== 0x2d || text.charCodeAt(10) !== 0x54
    || text.charCodeAt(13) !== 0x3a || text.charCodeAt(16) !== 0x3a) return null;
  if (y < 100 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || se > 59) return null;
  let i = 19;
  let micros = 0;
  if (text.charCodeAt(i) === 0x2e) {
    i++;
    const first = i;
    for (; i < n; i++) {
      const c = text.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      if (i - first < 6) micros = micros * 10 + c;
    }
    const count = i - first;
    if (count < 1 || count > 9) return null;
    for (let k = count; k < 6; k++) micros *= 10;
  }
  let offsetMinutes = 0;
  const z = text.charCodeAt(i);
  if (z === 0x5a || z === 0x7a) {
    if (i + 1 !== n) return null;
  } else if (z === 0x2b || z === 0x2d) {
    if (i + 6 !== n || text.charCodeAt(i + 3) !== 0x3a) return null;
    const oh = digits(text, i + 1, 2);
    const om = digits(text, i + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return null;
    offsetMinutes = z === 0x2b ? oh * 60 + om : -(oh * 60 + om);
  } else {
    return null;
  }
  const seconds = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offsetMinutes * 60;
  return seconds * 1000 * 1000 + micros;
}

/** The value of `len` ASCII digits at `at`, or -1 when one is not a digit. */
function digits(text: string, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) {
    const c = text.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

function daysInMonth(y: number, mo: number): number {
  if (mo === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, mo: number, d: number): number {
  const yy = mo <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function optTime(obj: Record<string, unknown>, key: string, prefix = ''): number | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw wrongType(prefix + key, 'an RFC 3339 timestamp', v);
  const micros = parseTimestampMicros(v);
  if (micros === null) throw new BadInputError('invalid-timestamp', `${prefix}${key} is not an RFC 3339 timestamp: ${truncate(v)}`);
  return micros;
}

function wrongType(path: string, expected: string, got: unknown): BadInputError {
  return new BadInputError('wrong-type', `${path} must be ${expected}, got ${describe(got)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string (${truncate(v)})`;
  return typeof v;
}

function truncate(s: string): string {
  return s.length > 40 ? `${JSON.stringify(s.slice(0, 40))}...` : JSON.stringify(s);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
