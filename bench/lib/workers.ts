import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { KadeConfig, loadConfig } from '../../src/config/load';
import { packageRoot } from '../../src/util/package-root';
import { envOf } from '../../test/helpers/kade-process';

export const CLI = path.join(packageRoot(), 'dist', 'src', 'cli.js');
export const NOOP = path.join(packageRoot(), 'dist', 'bench', 'noop-consumer.js');
/** bench/client-worker.ts: one Kafka client workload per process (BENCH_* environment). */
export const CLIENT_WORKER = path.join(packageRoot(), 'dist', 'bench', 'client-worker.js');

/** Starts bench/client-worker.ts with the brokers and quiet logging; `extra` sets its BENCH_* workload. */
export function spawnClientWorker(name: string, brokers: string[], logDir: string, extra: Record<string, string>): Worker {
  return spawnWorker({
    name,
    script: CLIENT_WORKER,
    env: {
      ...process.env,
      KADE_KAFKA_BROKERS: brokers.join(','),
      KADE_LOG_LEVEL: 'warn',
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
      BENCH_BROKERS: brokers.join(','),
      ...extra,
    },
    logDir,
  });
}

/** A child node process: kade (router/detector) or the no-op consumer. */
export interface Worker {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  httpPort: number | null;
  startedAt: number;
  exited: Promise<number | null>;
  /** SIGTERM, SIGKILL after timeoutMs; resolves the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface SpawnOptions {
  name: string;
  script: string;
  args?: string[];
  env: NodeJS.ProcessEnv;
  nodeArgs?: string[];
  logDir: string;
  httpPort?: number | null;
}

export function spawnWorker(o: SpawnOptions): Worker {
  const logFile = path.join(o.logDir, `${o.name}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script, ...(o.args ?? [])], {
    env: o.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: packageRoot(),
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  if (child.pid === undefined) throw new Error(`could not spawn ${o.name}`);
  return {
    name: o.name,
    child,
    pid: child.pid,
    logFile,
    httpPort: o.httpPort ?? null,
    startedAt: Date.now(),
    exited,
    async stop(timeoutMs = 45_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export function isAlive(w: Worker): boolean {
  return w.child.exitCode === null && w.child.signalCode === null;
}

/** Peak and current resident set size (bytes) of a live process, from /proc/<pid>/status. */
export function memoryOf(pid: number): { peakRss: number; rss: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN) * 1024;
    return { peakRss: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return null;
  }
}

/** User + system CPU seconds of a live process, from /proc/<pid>/stat (clock ticks of 1/100 s). */
export function cpuSecondsOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** A strictly validated kade config built from overrides only (no ambient KADE_* variables). */
export function benchConfig(overrides: Record<string, unknown>): KadeConfig {
  return loadConfig({ env: {}, overrides }).config;
}

/** The KADE_* environment of a child kade process running this config. */
export function kadeEnv(config: KadeConfig, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...envOf(config),
    KADE_TOPIC_DLQ: config.topics.dlq,
    KADE_DETECTOR_TICK_MS: String(config.detector.tickMs),
    KADE_DETECTOR_STATE_TTL_SECONDS: String(config.detector.stateTtlSeconds),
    KADE_HTTP_PORT: String(config.http.port),
    KADE_LOG_LEVEL: config.log.level,
    ...extra,
  };
}

/** GET /metrics of a kade worker, parsed into "name{labels}" -> value. */
export function scrapeMetrics(port: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => {
        const out = new Map<string, number>();
        for (const line of body.split('\n')) {
          if (line.startsWith('#') || line.trim() === '') continue;
          const sp = line.lastIndexOf(' ');
          out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
        }
        resolve(out);
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('metrics scrape timed out')));
  });
}

export function metric(m: Map<string, number> | null, name: string, labels: Record<string, string> = {}): number {
  if (m === null) return Number.NaN;
  let sum = 0;
  let found = false;
  for (const [k, v] of m) {
    const brace = k.indexOf('{');
    const n = brace < 0 ? k : k.slice(0, brace);
    if (n !== name) continue;
    const lbl = brace < 0 ? '' : k.slice(brace);
    if (Object.entries(labels).every(([lk, lv]) => lbl.includes(`${lk}="${lv}"`))) {
      sum += v;
      found = true;
    }
  }
  // A counter never incremented is absent from the exposition: that is a 0.
  return found ? sum : 0;
}
