import { ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../src/util/package-root';
import { KadeConfig } from '../../src/config/load';

export const CLI = path.join(packageRoot(), 'dist', 'src', 'cli.js');

/** The KADE_* environment that makes a child process use this config. */
export function envOf(config: KadeConfig): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KADE_KAFKA_BROKERS: config.kafka.brokers.join(','),
    KADE_TOPIC_RAW: config.topics.raw,
    KADE_TOPIC_KEYED: config.topics.keyed,
    KADE_TOPIC_ALERTS: config.topics.alerts,
    KADE_TOPIC_RAW_PARTITIONS: String(config.topics.rawPartitions),
    KADE_TOPIC_KEYED_PARTITIONS: String(config.topics.keyedPartitions),
    KADE_ROUTER_GROUP_ID: config.router.groupId,
    KADE_DETECTOR_GROUP_ID: config.detector.groupId,
    KADE_DETECTOR_LATENESS_MS: String(config.detector.latenessMs),
    KADE_DETECTOR_IDLE_TIMEOUT_MS: String(config.detector.idleTimeoutMs),
    KADE_ALERTS_FORMAT: config.alerts.format,
    KADE_ALERTS_SUPPRESSION_MS: String(config.alerts.suppressionMs),
    KADE_KAFKA_SSL_ENABLED: String(config.kafka.ssl.enabled),
    KADE_KAFKA_SSL_CA_FILE: config.kafka.ssl.caFile,
    KADE_KAFKA_SSL_CERT_FILE: config.kafka.ssl.certFile,
    KADE_KAFKA_SSL_KEY_FILE: config.kafka.ssl.keyFile,
    KADE_KAFKA_SSL_REJECT_UNAUTHORIZED: String(config.kafka.ssl.rejectUnauthorized),
    KADE_KAFKA_SASL_MECHANISM: config.kafka.sasl.mechanism,
    KADE_KAFKA_SASL_USERNAME: config.kafka.sasl.username,
    KADE_KAFKA_SASL_PASSWORD: config.kafka.sasl.password,
    KADE_REDIS_URL: config.redis.url,
    KADE_REDIS_USERNAME: config.redis.username,
    KADE_REDIS_PASSWORD: config.redis.password,
    KADE_REDIS_TLS_CA_FILE: config.redis.tls.caFile,
    KADE_REDIS_TLS_CERT_FILE: config.redis.tls.certFile,
    KADE_REDIS_TLS_KEY_FILE: config.redis.tls.keyFile,
    KADE_REDIS_TLS_REJECT_UNAUTHORIZED: String(config.redis.tls.rejectUnauthorized),
    KADE_REDIS_KEY_PREFIX: config.redis.keyPrefix,
    KADE_LOG_LEVEL: process.env.KADE_TEST_LOG_LEVEL ?? 'info',
    KAFKAJS_NO_PARTITIONER_WARNING: '1',
  };
}

export interface KadeProcess {
  child: ChildProcess;
  logFile: string;
  /** SIGTERM and wait for the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Runs the built CLI as a separate process; its logs go to a file under /tmp. */
export function spawnKade(args: string[], config: KadeConfig, tag: string, extraEnv: NodeJS.ProcessEnv = {}): KadeProcess {
  const logFile = path.join('/tmp', `kade-${tag}-${process.pid}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...envOf(config), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logFile,
    exited,
    async stop(timeoutMs = 30_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Reads one Prometheus counter (summed over the given label filter) from a process's /metrics. */
export async function scrapeCounter(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export { freePort } from './ports';

const exec = promisify(execFile);

/** Runs the built CLI to completion (log level warn): its exit code and output, never a throw. */
export async function runKade(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env: { ...env, KADE_LOG_LEVEL: 'warn' }, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
