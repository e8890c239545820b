/**
 * Test oracle: a plain, deliberately naive re-computation of the seed ES|QL rule
 * (shared/rules-reference/seed-endpoint-permission-enumeration.esql) over raw audit Events,
 * on every sliding window [t - W, t) with t a multiple of the hop, plus kade's suppression.
 *
 * It shares no code with src/ on purpose: it is the independent answer the engine is checked
 * against, so it favours being obviously correct over being fast (it keeps every matching event
 * in memory and recomputes each window from scratch).
 *
 * Documented choices:
 * - `values()` aggregates are returned sorted (strings by UTF-16 code units, numbers ascending);
 *   ES|QL leaves the order unspecified. A `values()` with nothing to collect is an empty array
 *   (ES|QL would return null).
 * - Only the decision annotation treats "" as absent (Elastic's pipeline drops empty values);
 *   every other field takes strings verbatim, so "" would be a value of its own.
 * - An event whose time field is missing or not RFC 3339 cannot be placed in a window: it is
 *   skipped and counted in `eventsWithoutTime`.
 */

export interface OracleOptions {
  /** Window length, ms (the rule's look-back: 360000). */
  windowMs: number;
  /** Hop between window ends, ms (60000). */
  hopMs: number;
  /** Suppression period per (username, sourceIp), ms (360000). */
  suppressMs: number;
  timeField?: 'requestReceivedTimestamp' | 'stageTimestamp';
}

export interface OracleAlert {
  username: string | null;
  sourceIp: string | null;
  windowStart: number;
  windowEnd: number;
  /** The rule's Esql.* columns, keyed without the "Esql." prefix. */
  esql: Record<string, number | Array<string | number>>;
}

export interface OracleResult {
  alerts: OracleAlert[];
  suppressed: number;
  windowsEvaluated: number;
  /** Events that passed the rule's WHERE clause. */
  eventsMatched: number;
  eventsWithoutTime: number;
}

const ALLOWED_VERBS = new Set(['get', 'list', 'watch', 'create', 'update', 'patch']);
const DECISION_ANNOTATION = 'authorization.k8s.io/decision';

/** The fields the rule reads, pulled out of one raw Event. */
interface Row {
  timeMs: number;
  decision: string | null;
  verb: string;
  requestURI: string | null;
  resource: string | null;
  namespace: string | null;
  message: string | null;
  code: number | null;
  username: string | null;
  groups: string[];
  userAgent: string | null;
  dataStreamNamespace: string | null;
}

interface Group {
  username: string | null;
  sourceIp: string | null;
  rows: Row[];
}

export function oracleAlerts(
  events: Iterable<{ cluster: string; event: Record<string, unknown> }>,
  opts: OracleOptions,
): OracleResult {
  const timeField = opts.timeField ?? 'requestReceivedTimestamp';
  const groups = new Map<string, Group>();
  let eventsMatched = 0;
  let eventsWithoutTime = 0;

  for (const { cluster, event } of events) {
    // WHERE stage == "ResponseComplete" AND verb IN (...): exact, case-sensitive, null drops the row.
    if (event.stage !== 'ResponseComplete') continue;
    const verb = event.verb;
    if (typeof verb !== 'string' || !ALLOWED_VERBS.has(verb)) continue;
    eventsMatched++;

    const timeMs = parseRfc3339Ms(event[timeField]);
    if (timeMs === null) {
      eventsWithoutTime++;
      continue;
    }

    const user = asObject(event.user);
    const objectRef = asObject(event.objectRef);
    const responseStatus = asObject(event.responseStatus);
    const annotations = asObject(event.annotations);
    const decision = asString(annotations?.[DECISION_ANNOTATION]);
    const username = asString(user?.username);
    const code = responseStatus?.code;

    const row: Row = {
      timeMs,
      decision: decision === '' ? null : decision,
      verb,
      requestURI: asString(event.requestURI),
      resource: asString(objectRef?.resource),
      namespace: asString(objectRef?.namespace),
      message: asString(responseStatus?.message),
      code: typeof code === 'number' && Number.isFinite(code) ? code : null,
      username,
      groups: Array.isArray(user?.groups) ? user.groups.filter(isString) : [],
      userAgent: asString(event.userAgent),
      dataStreamNamespace: cluster,
    };

    // BY username, sourceIPs: one group per DISTINCT ip; no ip at all is the null key.
    const ips = Array.isArray(event.sourceIPs) ? [...new Set(event.sourceIPs.filter(isString))] : [];
    const keyIps: Array<string | null> = ips.length > 0 ? ips : [null];
    for (const sourceIp of keyIps) {
      const key = JSON.stringify([username, sourceIp]);
      let group = groups.get(key);
      if (group === undefined) {
        group = { username, sourceIp, rows: [] };
        groups.set(key, group);
      }
      group.rows.push(row);
    }
  }

  const alerts: OracleAlert[] = [];
  let suppressed = 0;
  let windowsEvaluated = 0;

  for (const group of groups.values()) {
    const rows = group.rows.sort((a, b) => a.timeMs - b.timeMs);
    const times = rows.map((r) => r.timeMs);
    let suppressedUntil = -Infinity;

    for (const windowEnd of windowEndsTouching(times, opts.windowMs, opts.hopMs)) {
      const windowStart = windowEnd - opts.windowMs;
      const inWindow = rows.slice(lowerBound(times, windowStart), lowerBound(times, windowEnd));
      windowsEvaluated++;
      if (!matches(inWindow)) continue;

      if (windowEnd < suppressedUntil) {
        suppressed++;
        continue;
      }
      suppressedUntil = windowEnd + opts.suppressMs;
      alerts.push({
        username: group.username,
        sourceIp: group.sourceIp,
        windowStart,
        windowEnd,
        esql: aggregate(inWindow),
      });
    }
  }

  alerts.sort(
    (a, b) =>
      a.windowEnd - b.windowEnd ||
      compareNullable(a.username, b.username) ||
      compareNullable(a.sourceIp, b.sourceIp),
  );
  return { alerts, suppressed, windowsEvaluated, eventsMatched, eventsWithoutTime };
}

/** The rule's post-STATS WHERE clause. */
function matches(rows: Row[]): boolean {
  return (
    countDistinct(rows.map((r) => r.decision)) === 2 &&
    countDistinct(rows.map((r) => r.requestURI)) > 5 &&
    countDistinct(rows.map((r) => r.resource)) > 3 &&
    rows.length < 75
  );
}

/** The STATS columns, named as the query names them (minus "Esql."). */
function aggregate(rows: Row[]): Record<string, number | Array<string | number>> {
  return {
    document_count: rows.length,
    kubernetes_audit_annotations_authorization_k8s_io_decision_count_distinct: countDistinct(
      rows.map((r) => r.decision),
    ),
    kubernetes_audit_verb_count_distinct: countDistinct(rows.map((r) => r.verb)),
    kubernetes_audit_requestURI_count_distinct: countDistinct(rows.map((r) => r.requestURI)),
    kubernetes_audit_objectRef_resource_count_distinct: countDistinct(rows.map((r) => r.resource)),
    kubernetes_audit_responseStatus_message_values: stringValues(rows.map((r) => r.message)),
    kubernetes_audit_verb_values: stringValues(rows.map((r) => r.verb)),
    kubernetes_audit_responseStatus_code_values: numberValues(rows.map((r) => r.code)),
    kubernetes_audit_objectRef_resource_values: stringValues(rows.map((r) => r.resource)),
    kubernetes_audit_objectRef_namespace_values: stringValues(rows.map((r) => r.namespace)),
    kubernetes_audit_user_username_values: stringValues(rows.map((r) => r.username)),
    kubernetes_audit_user_groups_values: stringValues(rows.flatMap((r) => r.groups)),
    kubernetes_audit_requestURI_values: stringValues(rows.map((r) => r.requestURI)),
    kubernetes_audit_userAgent_values: stringValues(rows.map((r) => r.userAgent)),
    data_stream_namespace_values: stringValues(rows.map((r) => r.dataStreamNamespace)),
  };
}

/**
 * Every window end t (a multiple of hopMs) whose window [t - W, t) holds at least one of the
 * given times, ascending. An event at time e lies in the windows with e < t <= e + W.
 */
function windowEndsTouching(times: number[], windowMs: number, hopMs: number): number[] {
  const ends = new Set<number>();
  for (const e of times) {
    const first = Math.floor(e / hopMs) * hopMs + hopMs;
    for (let t = first; t <= e + windowMs; t += hopMs) ends.add(t);
  }
  return [...ends].sort((a, b) => a - b);
}

/** First index i with sorted[i] >= value. */
function lowerBound(sorted: number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function countDistinct<T>(values: Array<T | null>): number {
  return new Set(values.filter((v) => v !== null)).size;
}

function stringValues(values: Array<string | null>): string[] {
  return [...new Set(values.filter(isString))].sort();
}

function numberValues(values: Array<number | null>): number[] {
  return [...new Set(values.filter((v): v is number => v !== null))].sort((a, b) => a - b);
}

function compareNullable(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i;

/** RFC 3339 to epoch ms, fractional seconds floored to the millisecond; null if unparseable. */
export function parseRfc3339Ms(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const m = RFC3339.exec(value);
  if (m === null) return null;
  const [, y, mo, d, h, mi, s, frac = '', zone] = m;
  const ms = Number((frac + '000').slice(0, 3));
  let offsetMin = 0;
  if (zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    offsetMin = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  return Number.isNaN(utc) ? null : utc - offsetMin * 60_000;
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function asString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}
