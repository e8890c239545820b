import { readFileSync } from 'node:fs';
import { packageRoot } from '../../src/util/package-root';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotFunction {
  name: string;
  location: string;
  selfMs: number;
  /** Share of busy (non-idle) time. */
  selfShare: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  /** The part summarized, in ms from the profile's start (the whole profile when absent). */
  window?: { fromMs: number; toMs: number };
  busyMs: number;
  idleMs: number;
  gcMs: number;
  programMs: number;
  top: HotFunction[];
  /** Self time grouped by where the code lives: kade src, a node_modules package, node internals. */
  byArea: Array<{ area: string; selfMs: number; selfShare: number }>;
}

const ROOT_URL = `file://${packageRoot()}/`;

function location(url: string, line: number): string {
  let u = url;
  if (u.startsWith(ROOT_URL)) u = u.slice(ROOT_URL.length);
  else if (u.startsWith(packageRoot())) u = u.slice(packageRoot().length + 1);
  if (u === '') return '(native)';
  return `${u}:${line + 1}`;
}

function area(url: string): string {
  let u = url;
  if (u.startsWith(ROOT_URL)) u = u.slice(ROOT_URL.length);
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1];
  if (u.startsWith('dist/src/')) return `kade ${u.slice('dist/src/'.length).split('/')[0]}/`;
  if (u.startsWith('node:') || u === '') return 'node internals / native';
  return u.split('/').slice(0, 2).join('/');
}

/**
 * Self time per function of a .cpuprofile (sample deltas attributed to the sampled node). With a
 * window (ms from the profile's start, which is the process's start) only samples inside it
 * count: a worker's measured interval, without its start-up (module loading, connecting,
 * joining the group) and shutdown.
 */
export function summarizeProfile(file: string, topN = 15, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; attribute the interval after a sample to it.
  let at = 0;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window !== undefined && (at < window.fromMs * 1000 || at >= window.toMs * 1000)) continue;
    const dt = i + 1 < deltas.length ? deltas[i + 1] : 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const fn = new Map<string, { name: string; location: string; us: number }>();
  const areas = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let program = 0;
  let all = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    all += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') { idle += us; continue; }
    if (functionName === '(garbage collector)') gc += us;
    if (functionName === '(program)') program += us;
    const name = functionName === '' ? '(anonymous)' : functionName;
    const loc = location(url, lineNumber);
    const key = `${name}@${loc}`;
    const e = fn.get(key);
    if (e === undefined) fn.set(key, { name, location: loc, us });
    else e.us += us;
    const a = functionName.startsWith('(') ? functionName : area(url);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const busy = all - idle;
  const top = [...fn.values()].sort((x, y) => y.us - x.us).slice(0, topN)
    .map((e) => ({ name: e.name, location: e.location, selfMs: e.us / 1000, selfShare: busy > 0 ? e.us / busy : 0 }));
  const byArea = [...areas].sort((x, y) => y[1] - x[1]).slice(0, 12)
    .map(([a, us]) => ({ area: a, selfMs: us / 1000, selfShare: busy > 0 ? us / busy : 0 }));
  return {
    file,
    wallMs: (prof.endTime - prof.startTime) / 1000,
    window,
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    gcMs: gc / 1000,
    programMs: program / 1000,
    top,
    byArea,
  };
}
