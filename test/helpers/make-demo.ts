/**
 * Builds demo/audit-demo.jsonl from the Apache-2.0 audit events in shared/corpus/audit
 * (see demo/NOTICE.md for sources and licences):
 *
 * - real events from liggitt/audit2rbac, falcosecurity/falco and sysdiglabs/aks-audit-log, with
 *   requestReceivedTimestamp/stageTimestamp rebased into one 20-minute span (added where
 *   missing); every other field is left as it was;
 * - a clearly labelled synthetic permission-enumeration attack built from audit2rbac's
 *   (system:admin, ::1) sequence with the authorization decision filled in (403 -> forbid,
 *   else allow) and a documentation-range attacker IP; it fires the rule once;
 * - a synthetic near miss: the same sequence from another IP without its one `secrets` request,
 *   so only 3 distinct resources: it must not fire.
 *
 * Deterministic: running it again on the same corpus gives the same file.
 *
 * Usage (after `npx tsc -p tsconfig.json`):
 *   node dist/test/helpers/make-demo.js [corpusDir] [outFile]
 */
import fs from 'node:fs';
import path from 'node:path';

type Event = Record<string, unknown>;

export const DEMO_START_MS = Date.UTC(2026, 0, 5, 10, 0, 0);
const SPAN_MS = 20 * 60_000;
/** The attack fills one minute so that one window alerts and the next five are suppressed. */
const ATTACK_MINUTE_MS = DEMO_START_MS + 8 * 60_000;
const NEAR_MISS_MINUTE_MS = DEMO_START_MS + 14 * 60_000;
const ATTACKER_IP = '203.0.113.66';
const NEAR_MISS_IP = '198.51.100.23';
const SYNTHETIC_USER_AGENT = 'kade-demo-synthetic/1.0 (replay of liggitt/audit2rbac testdata/demo.log)';
const SYNTHETIC_ANNOTATION = 'demo.kade/synthetic';
/** Longer original latencies (watches held open for minutes) are shortened to this. */
const MAX_LATENCY_MS = 60_000;

interface Timed {
  event: Event;
  receivedMs: number;
  micros: number;
  latencyMs: number;
}

interface Source {
  name: string;
  events: Event[];
}

export function readSources(corpusDir: string): Source[] {
  const falcoDir = path.join(corpusDir, 'falco-k8s-audit-trace-files');
  const falco = fs
    .readdirSync(falcoDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((f) => parseJsonOrNdjson(fs.readFileSync(path.join(falcoDir, f), 'utf8')));
  return [
    { name: 'audit2rbac', events: parseJsonOrNdjson(fs.readFileSync(path.join(corpusDir, 'audit2rbac', 'demo.log'), 'utf8')) },
    { name: 'falco', events: falco },
    {
      name: 'sysdiglabs',
      events: parseJsonOrNdjson(fs.readFileSync(path.join(corpusDir, 'sysdiglabs-aks-audit-log', 'events-extracted.jsonl'), 'utf8')),
    },
  ];
}

function parseJsonOrNdjson(text: string): Event[] {
  try {
    return [JSON.parse(text) as Event];
  } catch {
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Event);
  }
}

/** Original time in microseconds: requestReceivedTimestamp, else the legacy fields. */
function originalMicros(e: Event, field = 'requestReceivedTimestamp'): number | null {
  const meta = e.metadata as Record<string, unknown> | undefined;
  for (const v of [e[field], e.timestamp, meta?.creationTimestamp]) {
    if (typeof v !== 'string') continue;
    const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(v);
    if (m === null) continue;
    const seconds = Date.parse(`${m[1]}${m[3]}`);
    if (Number.isNaN(seconds)) continue;
    return seconds * 1000 + Number(((m[2] ?? '') + '000000').slice(0, 6));
  }
  return null;
}

/** Spreads one source's events, in their original order, evenly across the demo span. */
function rebase(source: Source, phase: number): Timed[] {
  const ordered = source.events
    .map((event, i) => ({ event, i, t: originalMicros(event) ?? 0 }))
    .sort((a, b) => a.t - b.t || a.i - b.i);
  const usable = SPAN_MS - 60_000;
  return ordered.map(({ event, t }, i) => {
    const received = originalMicros(event, 'requestReceivedTimestamp');
    const stage = typeof event.stageTimestamp === 'string' ? originalMicros(event, 'stageTimestamp') : null;
    const latencyUs = received !== null && stage !== null && stage >= received ? stage - received : 2_000;
    return {
      event,
      receivedMs: DEMO_START_MS + 30_000 + Math.floor(((i + phase) * usable) / ordered.length),
      micros: t % 1000,
      latencyMs: Math.min(Math.floor(latencyUs / 1000), MAX_LATENCY_MS),
    };
  });
}

/** The audit2rbac sequence re-issued by an attacker, decisions filled in, squeezed into one minute. */
function synthetic(audit2rbac: Event[], label: string, ip: string, minuteMs: number, keep: (e: Event) => boolean): Timed[] {
  const ordered = audit2rbac
    .filter((e) => (e.user as Record<string, unknown> | undefined)?.username === 'system:admin')
    .filter(keep)
    .map((e, i) => ({ e, i, t: originalMicros(e) ?? 0 }))
    .sort((a, b) => a.t - b.t || a.i - b.i);
  return ordered.map(({ e }, i) => {
    const code = (e.responseStatus as Record<string, unknown> | undefined)?.code;
    const event: Event = {
      ...e,
      auditID: `synthetic-${label}-${String(e.auditID)}`,
      sourceIPs: [ip],
      userAgent: SYNTHETIC_USER_AGENT,
      annotations: {
        'authorization.k8s.io/decision': code === 403 ? 'forbid' : 'allow',
        'authorization.k8s.io/reason': '',
        [SYNTHETIC_ANNOTATION]: `${label}: decision derived from responseStatus.code; not a real event`,
      },
    };
    return { event, receivedMs: minuteMs + 5_000 + Math.floor((i * 45_000) / ordered.length), micros: 0, latencyMs: 3 };
  });
}

function stamp(t: Timed): Event {
  const fmt = (ms: number, micros: number): string => `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
  // Assigning keeps an existing key's position; new keys go last, as kube-apiserver puts them.
  const out: Event = { ...t.event };
  out.requestReceivedTimestamp = fmt(t.receivedMs, t.micros);
  out.stageTimestamp = fmt(t.receivedMs + t.latencyMs, t.micros);
  return out;
}

export function buildDemo(corpusDir: string): Event[] {
  const sources = readSources(corpusDir);
  const real = sources.flatMap((s, k) => rebase(s, (k + 1) / (sources.length + 1)));
  const audit2rbac = sources[0].events;
  const isSecrets = (e: Event): boolean => (e.objectRef as Record<string, unknown> | undefined)?.resource === 'secrets';
  const attack = synthetic(audit2rbac, 'attack', ATTACKER_IP, ATTACK_MINUTE_MS, () => true);
  const nearMiss = synthetic(audit2rbac, 'nearmiss', NEAR_MISS_IP, NEAR_MISS_MINUTE_MS, (e) => !isSecrets(e));
  return [...real, ...attack, ...nearMiss]
    .map((t, i) => ({ t, i }))
    .sort((a, b) => a.t.receivedMs - b.t.receivedMs || a.t.micros - b.t.micros || a.i - b.i)
    .map(({ t }) => stamp(t));
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..', '..');
  const corpusDir = process.argv[2] ?? path.resolve(root, '..', 'shared', 'corpus', 'audit');
  const outFile = process.argv[3] ?? path.join(root, 'demo', 'audit-demo.jsonl');
  const events = buildDemo(corpusDir);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  process.stdout.write(`wrote ${events.length} events to ${outFile}\n`);
}
