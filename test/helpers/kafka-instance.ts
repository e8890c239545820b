/**
 * Starts an ADDITIONAL, private single-node Kafka 3.9.1 broker (KRaft, combined broker+controller)
 * for fault-injection tests: free ports, a fresh temp dir, the same jars as scripts/kafka.sh
 * (.kafka/libs-3.9.1, fetched with `bash scripts/kafka.sh fetch` when missing).
 *
 *   const k = await startKafkaInstance();
 *   new Kafka({ brokers: k.brokers })      // ['127.0.0.1:<port>']
 *   await k.kill();      // SIGKILL (crash); data kept, ports kept
 *   await k.restart();   // graceful stop if running, then start again on the same ports and data
 *   await k.stop();      // graceful stop (SIGTERM, SIGKILL after a timeout) and delete the temp dir
 *
 * Readiness = a kafkajs admin describeCluster() succeeds. A cold start takes ~3-5 s; a restart
 * after kill() takes ~10 s (the controller refuses the re-registration until the old broker
 * session expires, see docs/kafka-broker.md). Live instances are SIGKILLed when the Node
 * process exits or gets SIGINT/SIGTERM, so a crashed test run leaves no JVM behind.
 *
 * Security listeners (besides the PLAINTEXT one, which stays the inter-broker listener and the
 * readiness probe's):
 *
 *   startKafkaInstance({ sasl: { mechanisms: ['SCRAM-SHA-512', 'PLAIN'], users: { kade: 'secret' } } })
 *     -> k.saslBrokers: a SASL_PLAINTEXT listener. SCRAM credentials are created when the storage
 *        is formatted (StorageTool --add-scram, KRaft), PLAIN users are listed in its JAAS line.
 *   startKafkaInstance({ ssl: { keystoreFile, keystorePassword, truststoreFile, clientAuth: 'required' } })
 *     -> k.sslBrokers: an SSL listener with a PKCS#12 keystore (see test-pki.ts) and a PEM truststore.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';

export const KAFKA_VERSION = '3.9.1';

export interface KafkaInstanceOptions {
  /** Extra/overriding server.properties entries, e.g. { 'log.segment.bytes': 1048576 }. */
  serverProperties?: Record<string, string | number | boolean>;
  /** JVM heap flags; default ['-Xms128m', '-Xmx512m']. */
  heapOpts?: string[];
  /** Max wait for readiness (ms) on start and restart; default 90 000. */
  startTimeoutMs?: number;
  /** Wait after SIGTERM before SIGKILL (ms); default 30 000. */
  stopTimeoutMs?: number;
  /** Keep the temp dir after stop() (for debugging); default false. */
  keepDir?: boolean;
  /** Add a SASL_PLAINTEXT listener with these mechanisms and users (name -> password). */
  sasl?: { mechanisms: SaslMechanismName[]; users: Record<string, string> };
  /** Add an SSL listener: PKCS#12 keystore of the broker, PEM CA file trusted for client certificates. */
  ssl?: { keystoreFile: string; keystorePassword: string; truststoreFile?: string; clientAuth?: 'none' | 'requested' | 'required' };
}

export type SaslMechanismName = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

export interface KafkaInstance {
  /** ['127.0.0.1:<port>'] */
  readonly brokers: string[];
  /** ['127.0.0.1:<port>'] of the SASL_PLAINTEXT listener; [] without the sasl option. */
  readonly saslBrokers: string[];
  /** ['127.0.0.1:<port>'] of the SSL listener; [] without the ssl option. */
  readonly sslBrokers: string[];
  readonly port: number;
  readonly controllerPort: number;
  /** temp dir: server.properties, data/, broker.log */
  readonly dir: string;
  readonly logFile: string;
  readonly clusterId: string;
  /** pid of the broker JVM, undefined when not running */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Graceful stop (SIGTERM, SIGKILL after stopTimeoutMs) and removal of the temp dir. Final. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash. Data and ports are kept; restart() brings the broker back. */
  kill(): Promise<void>;
  /** Graceful stop if running (no-op if killed), then start again on the same ports and data. */
  restart(): Promise<void>;
  /** Graceful stop that keeps the data (restart() later). */
  shutdown(): Promise<void>;
  /** Last lines of the broker log. */
  logTail(lines?: number): string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'scripts', 'kafka.sh')) && existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`kafka-instance: no scripts/kafka.sh above ${__dirname}`);
    dir = parent;
  }
}

let libsReady: Promise<string> | undefined;

/** Path of the broker jars; runs `bash scripts/kafka.sh fetch` (a no-op when they are present). */
export function kafkaLibs(): Promise<string> {
  libsReady ??= new Promise<string>((resolve, reject) => {
    const root = repoRoot();
    execFile('bash', [path.join(root, 'scripts', 'kafka.sh'), 'fetch'], { timeout: 600_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kafka.sh fetch failed: ${err.message}\n${stdout}${stderr}`));
        else resolve(path.join(root, '.kafka', `libs-${KAFKA_VERSION}`));
      });
  });
  libsReady.catch(() => { libsReady = undefined; });
  return libsReady;
}

/** Free TCP ports on 127.0.0.1 (held together while probing, so they are distinct). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

// --- cleanup of live JVMs when the test process goes away --------------------------------------

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

function runJava(args: string[], logFile: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const out = openSync(logFile, 'a');
    const child = spawn('java', args, { stdio: ['ignore', out, out] });
    closeSync(out);
    child.once('error', reject);
    child.once('exit', (code, signal) => code === 0 ? resolve()
      : reject(new Error(`java ${args.slice(-5).join(' ')} exited with ${code ?? signal}\n${tail(logFile, 30)}`)));
  });
}

/** A JAAS/SCRAM-safe value: the tests choose the names and passwords, so refuse quoting trouble. */
function plainWord(what: string, v: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(v)) throw new Error(`kafka-instance: ${what} ${JSON.stringify(v)}: use letters, digits, . _ - only`);
  return v;
}

/** server.properties entries and StorageTool arguments of the SASL_PLAINTEXT and SSL listeners. */
function securityListeners(opts: KafkaInstanceOptions, saslPort: number, sslPort: number): {
  listeners: string[]; protocols: string[]; properties: Record<string, string>; formatArgs: string[];
} {
  const out = { listeners: [] as string[], protocols: [] as string[], properties: {} as Record<string, string>, formatArgs: [] as string[] };
  if (opts.sasl !== undefined) {
    const { mechanisms, users } = opts.sasl;
    const entries = Object.entries(users).map(([n, p]) => [plainWord('user', n), plainWord('password', p)]);
    out.listeners.push(`SASL_PLAINTEXT://127.0.0.1:${saslPort}`);
    out.protocols.push('SASL_PLAINTEXT:SASL_PLAINTEXT');
    out.properties['sasl.enabled.mechanisms'] = mechanisms.join(',');
    out.properties['listener.name.sasl_plaintext.sasl.enabled.mechanisms'] = mechanisms.join(',');
    for (const m of mechanisms) {
      const prefix = `listener.name.sasl_plaintext.${m.toLowerCase()}.sasl.jaas.config`;
      if (m === 'PLAIN') {
        out.properties[prefix] = `org.apache.kafka.common.security.plain.PlainLoginModule required ${entries.map(([n, p]) => `user_${n}="${p}"`).join(' ')};`;
      } else {
        out.properties[prefix] = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
        // KRaft: SCRAM credentials are metadata records, written at format time (Kafka >= 3.5).
        for (const [n, p] of entries) out.formatArgs.push('--add-scram', `${m}=[name=${n},password=${p}]`);
      }
    }
  }
  if (opts.ssl !== undefined) {
    const ssl = opts.ssl;
    out.listeners.push(`SSL://127.0.0.1:${sslPort}`);
    out.protocols.push('SSL:SSL');
    out.properties['listener.name.ssl.ssl.keystore.type'] = 'PKCS12';
    out.properties['listener.name.ssl.ssl.keystore.location'] = ssl.keystoreFile;
    out.properties['listener.name.ssl.ssl.keystore.password'] = plainWord('keystore password', ssl.keystorePassword);
    out.properties['listener.name.ssl.ssl.client.auth'] = ssl.clientAuth ?? 'none';
    if (ssl.truststoreFile !== undefined) {
      out.properties['listener.name.ssl.ssl.truststore.type'] = 'PEM';
      out.properties['listener.name.ssl.ssl.truststore.location'] = ssl.truststoreFile;
    }
  }
  return out;
}

export async function startKafkaInstance(opts: KafkaInstanceOptions = {}): Promise<KafkaInstance> {
  const libs = await kafkaLibs();
  const root = repoRoot();
  const logOpt = `-Dlog4j.configuration=file:${path.join(root, 'scripts', 'kafka-runtime', 'log4j.properties')}`;
  const classpath = `${libs}/*`; // one argv element: the JVM expands the wildcard, not a shell
  const startTimeoutMs = opts.startTimeoutMs ?? 90_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  const heapOpts = opts.heapOpts ?? ['-Xms128m', '-Xmx512m'];

  const dir = mkdtempSync(path.join(tmpdir(), 'kade-kafka-'));
  const dataDir = path.join(dir, 'data');
  const cfgFile = path.join(dir, 'server.properties');
  const logFile = path.join(dir, 'broker.log');
  const [port, controllerPort, saslPort, sslPort] = await freePorts(4);
  const brokers = [`127.0.0.1:${port}`];
  const extra = securityListeners(opts, saslPort, sslPort);

  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: [`PLAINTEXT://127.0.0.1:${port}`, `CONTROLLER://127.0.0.1:${controllerPort}`, ...extra.listeners].join(','),
    'advertised.listeners': [`PLAINTEXT://127.0.0.1:${port}`, ...extra.listeners].join(','),
    'inter.broker.listener.name': 'PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': ['CONTROLLER:PLAINTEXT', 'PLAINTEXT:PLAINTEXT', ...extra.protocols].join(','),
    'log.dirs': dataDir,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'num.partitions': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'auto.create.topics.enable': false,
    'group.initial.rebalance.delay.ms': 0,
    'group.min.session.timeout.ms': 1000,
    'broker.session.timeout.ms': 4000,
    'broker.heartbeat.interval.ms': 1000,
    'log.cleaner.dedupe.buffer.size': 33554432,
    ...extra.properties,
    ...opts.serverProperties,
  };
  writeFileSync(cfgFile, Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');

  let clusterId: string;
  do { clusterId = randomBytes(16).toString('base64url'); } while (clusterId.startsWith('-'));
  try {
    await runJava(['-Xmx256m', logOpt, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', cfgFile, ...extra.formatArgs], logFile);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  installExitHooks();
  let child: ChildProcess | undefined;
  let stopped = false;

  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  async function launch(): Promise<void> {
    const out = openSync(logFile, 'a');
    const c = spawn('java', [
      ...heapOpts, '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:+ExplicitGCInvokesConcurrent',
      '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true', logOpt, '-cp', classpath, 'kafka.Kafka', cfgFile,
    ], { stdio: ['ignore', out, out] }); // to a file, not a pipe: an unread pipe would block the JVM
    closeSync(out);
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    let spawnError: Error | undefined;
    c.once('error', (e) => { spawnError = e; });

    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (spawnError) throw spawnError;
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`kafka broker exited during startup (${c.exitCode ?? c.signalCode}); log ${logFile}:\n${tail(logFile, 40)}`);
      }
      const admin = new Kafka({
        clientId: 'kafka-instance-probe', brokers, logLevel: logLevel.NOTHING,
        connectionTimeout: 1000, requestTimeout: 3000, retry: { retries: 0 },
      }).admin();
      try {
        await admin.connect();
        await admin.describeCluster();
        return;
      } catch (e) {
        if (Date.now() > deadline) {
          await terminate(c, 0);
          throw new Error(`kafka broker not ready after ${startTimeoutMs} ms (${(e as Error).message}); log ${logFile}:\n${tail(logFile, 40)}`);
        }
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
      await sleep(250);
    }
  }

  /** SIGTERM (graceful controlled shutdown), SIGKILL after graceMs; graceMs 0 = SIGKILL at once. */
  async function terminate(c: ChildProcess, graceMs: number): Promise<void> {
    if (c.exitCode !== null || c.signalCode !== null) return;
    if (graceMs > 0) {
      c.kill('SIGTERM');
      if (await waitExit(c, graceMs)) return;
    }
    c.kill('SIGKILL');
    await waitExit(c, 30_000);
  }

  try {
    await launch();
  } catch (e) {
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    brokers,
    saslBrokers: opts.sasl === undefined ? [] : [`127.0.0.1:${saslPort}`],
    sslBrokers: opts.ssl === undefined ? [] : [`127.0.0.1:${sslPort}`],
    port,
    controllerPort,
    dir,
    logFile,
    clusterId,
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
      if (stopped) throw new Error('kafka-instance: restart() after stop()');
      if (child) await terminate(child, stopTimeoutMs);
      await launch();
    },
    logTail(lines = 40) { return tail(logFile, lines); },
  };
}
