/**
 * Starts an ADDITIONAL, private redis-server on a free 127.0.0.1 port with its own temp dir, for
 * fault-injection tests (never touches the shared Redis on 6379).
 *
 *   const r = await startRedisInstance();             // { host: '127.0.0.1', port, url }
 *   new Redis({ host: r.host, port: r.port })
 *   await r.kill();      // SIGKILL (crash); restart() brings it back on the same port
 *   await r.restart();   // graceful stop if running, then start again
 *   await r.stop();      // graceful stop and delete the temp dir
 *
 * No persistence by default, so restart() comes back EMPTY; pass { appendOnly: true } to keep data
 * across kill()/restart() (AOF, appendfsync everysec: acknowledged writes survive a process kill).
 * Needs redis-server on PATH. Live instances are SIGKILLed when the Node process exits or gets
 * SIGINT/SIGTERM.
 *
 * { tls: { certFile, keyFile, caFile, authClients } } adds a TLS port (r.tlsPort, r.tlsUrl =
 * rediss://127.0.0.1:<tlsPort>) next to the plain one, which stays for readiness and admin use.
 * PEM files as made by test-pki.ts; redis-server must be built with TLS (Debian's is).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports';

export interface RedisInstanceOptions {
  /** AOF persistence so data survives kill()/restart(); default false (no persistence at all). */
  appendOnly?: boolean;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '64mb']. */
  extraArgs?: string[];
  /** Max wait for PING on start/restart (ms); default 20 000. */
  startTimeoutMs?: number;
  /** Wait after SIGTERM before SIGKILL (ms); default 10 000. */
  stopTimeoutMs?: number;
  /** Keep the temp dir after stop(); default false. */
  keepDir?: boolean;
  /** Also listen with TLS on a second free port. authClients: whether clients need a certificate (default 'no'). */
  tls?: { certFile: string; keyFile: string; caFile: string; authClients?: 'yes' | 'no' | 'optional' };
}

export interface RedisInstance {
  readonly host: string;
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** The TLS port (tls option), else undefined. */
  readonly tlsPort: number | undefined;
  /** rediss://127.0.0.1:<tlsPort> (tls option), else undefined. */
  readonly tlsUrl: string | undefined;
  readonly dir: string;
  readonly logFile: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Graceful stop (SIGTERM, SIGKILL after stopTimeoutMs) and removal of the temp dir. Final. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash; restart() brings it back on the same port. */
  kill(): Promise<void>;
  /** Graceful stop if running (no-op if killed), then start again on the same port and dir. */
  restart(): Promise<void>;
  /** Graceful stop that keeps the dir (restart() later). */
  shutdown(): Promise<void>;
  logTail(lines?: number): string;
}


const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves true if a Redis answers PING with +PONG on host:port within timeoutMs. */
export function redisPing(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (ok: boolean) => { clearTimeout(t); sock.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => { buf += d.toString('latin1'); if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

const live = new Set<ChildProcess>();
let hooksInstalled = false;
function killAllLive(): void {
  for (const c of live) { try { c.kill('SIGKILL'); } catch { /* already gone */ } }
  live.clear();
}
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllLive);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      killAllLive();
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig); // default action
    };
    process.on(sig, onSignal);
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => { child.removeListener('exit', onExit); resolve(false); }, ms);
    const onExit = () => { clearTimeout(t); resolve(true); };
    child.once('exit', onExit);
  });
}

function tail(file: string, lines: number): string {
  try { return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n'); } catch { return '(no log)'; }
}

export async function startRedisInstance(opts: RedisInstanceOptions = {}): Promise<RedisInstance> {
  const host = '127.0.0.1';
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const dir = mkdtempSync(path.join(tmpdir(), 'kade-redis-'));
  const logFile = path.join(dir, 'redis.log');
  const port = await freePort();
  let tlsPort: number | undefined;
  while (opts.tls !== undefined && (tlsPort === undefined || tlsPort === port)) tlsPort = await freePort();
  const tlsArgs = opts.tls === undefined ? [] : [
    '--tls-port', String(tlsPort), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile,
    '--tls-ca-cert-file', opts.tls.caFile, '--tls-auth-clients', opts.tls.authClients ?? 'no',
  ];
  const args = [
    '--port', String(port), '--bind', host, '--dir', dir, '--daemonize', 'no', '--save', '',
    '--appendonly', opts.appendOnly ? 'yes' : 'no', '--appendfsync', 'everysec',
    ...tlsArgs,
    ...(opts.extraArgs ?? []),
  ];
  installExitHooks();
  let child: ChildProcess | undefined;
  let stopped = false;
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  async function launch(): Promise<void> {
    const out = openSync(logFile, 'a');
    const c = spawn('redis-server', args, { stdio: ['ignore', out, out] });
    closeSync(out);
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    let spawnError: Error | undefined;
    c.once('error', (e) => { spawnError = e; });
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (spawnError) throw new Error(`cannot run redis-server (apt-get install redis-server): ${spawnError.message}`);
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`redis-server exited during startup (${c.exitCode ?? c.signalCode}):\n${tail(logFile, 20)}`);
      }
      if (await redisPing(host, port, 500)) return;
      if (Date.now() > deadline) {
        await terminate(c, 0);
        throw new Error(`redis-server not answering on ${host}:${port} after ${startTimeoutMs} ms:\n${tail(logFile, 20)}`);
      }
      await sleep(50);
    }
  }

  async function terminate(c: ChildProcess, graceMs: number): Promise<void> {
    if (c.exitCode !== null || c.signalCode !== null) return;
    if (graceMs > 0) {
      c.kill('SIGTERM');
      if (await waitExit(c, graceMs)) return;
    }
    c.kill('SIGKILL');
    await waitExit(c, 10_000);
  }

  try {
    await launch();
  } catch (e) {
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    tlsPort,
    tlsUrl: tlsPort === undefined ? undefined : `rediss://${host}:${tlsPort}`,
    dir,
    logFile,
    get pid() { return alive() ? child?.pid : undefined; },
    get running() { return alive(); },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child) await terminate(child, stopTimeoutMs);
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      if (child) await terminate(child, 0);
    },
    async shutdown() {
      if (child) await terminate(child, stopTimeoutMs);
    },
    async restart() {
      if (stopped) throw new Error('redis-instance: restart() after stop()');
      if (child) await terminate(child, stopTimeoutMs);
      await launch();
    },
    logTail(lines = 20) { return tail(logFile, lines); },
  };
}
